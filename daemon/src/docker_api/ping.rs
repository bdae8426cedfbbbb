//! `GET|HEAD /_ping`: liveness and version negotiation.

use super::{Reply, API_VERSION};

/// Docker clients read `API-Version` from the ping to negotiate down to it.
pub fn handle(head: bool) -> Reply {
    let reply = if head {
        Reply::text("")
    } else {
        Reply::text("OK")
    };
    reply
        .header("api-version", API_VERSION)
        .header("ostype", "linux")
        .header("docker-experimental", "false")
        .header("cache-control", "no-cache, no-store, must-revalidate")
        .header("pragma", "no-cache")
}
