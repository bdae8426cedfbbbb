//! A volume as Docker's API shows it (`Volume` in its swagger).

use berth_engine::volumes::Volume;
use serde_json::{json, Value};

pub fn volume(v: &Volume) -> Value {
    json!({
        "CreatedAt": v.record.created_at,
        "Driver": v.record.driver,
        "Labels": v.record.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.record.name,
        "Options": v.record.options,
        "Scope": "local",
    })
}
