//! Resource limits from the spec, with a clear error when one cannot be raised.

use nix::errno::Errno;
use oci_spec::runtime::PosixRlimit;

use crate::error::{Error, Result};

/// One rlimit to set: (name, resource number, soft, hard).
#[derive(Debug, Clone)]
pub struct Rlimit {
    pub name: String,
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

fn resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as i32)
}

/// Converts the spec's rlimits.
pub fn from_spec(list: &[PosixRlimit]) -> Result<Vec<Rlimit>> {
    list.iter()
        .map(|r| {
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let res = resource(&name)
                .ok_or_else(|| Error::InvalidSpec(format!("unknown rlimit {name:?}")))?;
            if r.soft() > r.hard() {
                return Err(Error::InvalidSpec(format!(
                    "{name} soft limit {} is above its hard limit {}",
                    r.soft(),
                    r.hard()
                )));
            }
            Ok(Rlimit {
                name,
                resource: res,
                soft: r.soft(),
                hard: r.hard(),
            })
        })
        .collect()
}

fn show(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// Sets each limit on the calling process.
pub fn apply(list: &[Rlimit]) -> Result<()> {
    for r in list {
        let want = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(r.resource as _, &want) } == 0 {
            continue;
        }
        let e = Errno::last();
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into a valid rlimit struct.
        unsafe { libc::getrlimit(r.resource as _, &mut cur) };
        if e == Errno::EPERM && r.hard > cur.rlim_max {
            return Err(Error::Init(format!(
                "{} hard limit {} exceeds the allowed maximum {} (raising a hard limit needs CAP_SYS_RESOURCE)",
                r.name,
                show(r.hard),
                show(cur.rlim_max)
            )));
        }
        return Err(Error::sys(
            format!("setrlimit {} {}/{}", r.name, show(r.soft), show(r.hard)),
            e,
        ));
    }
    Ok(())
}
