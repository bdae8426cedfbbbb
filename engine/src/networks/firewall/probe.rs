//! Whether berth's nft table is still as the last sync left it, asked of the kernel
//! over nfnetlink (two requests on one socket, a few tens of microseconds) instead of
//! an `nft list table` process per sync: the table must exist and hold as many rules as
//! the script that made it. Someone running `nft delete table` or `nft flush table`
//! on it is seen by the next sync, which applies the script again.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_RULE_TABLE: u16 = 1;
const NFPROTO_INET: u8 = 1;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;

/// What the kernel holds of table `inet <name>`: `None` when there is no such table,
/// else its rule count.
pub fn inet_table_rules(name: &str) -> io::Result<Option<usize>> {
    let sock = Socket::open()?;
    // The table: its NEWTABLE answer, or ENOENT.
    sock.send(NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, 1, name)?;
    let mut found = false;
    let mut missing = false;
    sock.receive(1, |kind, payload| match kind {
        NFT_MSG_NEWTABLE => {
            found = true;
            Ok(false)
        }
        NLMSG_ERROR => {
            let code = error_code(payload);
            if code == -libc::ENOENT {
                missing = true;
            } else if code != 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
            Ok(true)
        }
        _ => Ok(false),
    })?;
    if missing || !found {
        return Ok(None);
    }
    // Its rules: a dump restricted to the table (and counted only when the answer
    // names it, should a kernel not filter).
    sock.send(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, 2, name)?;
    let mut rules = 0;
    sock.receive(2, |kind, payload| match kind {
        NFT_MSG_NEWRULE => {
            if attr(payload.get(4..).unwrap_or_default(), NFTA_RULE_TABLE)
                .is_some_and(|t| t.split(|b| *b == 0).next() == Some(name.as_bytes()))
            {
                rules += 1;
            }
            Ok(false)
        }
        NLMSG_DONE => Ok(true),
        NLMSG_ERROR => {
            let code = error_code(payload);
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(Some(rules))
}

/// The errno of an NLMSG_ERROR payload (0 for an ACK).
fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .unwrap_or(-libc::EIO)
}

/// The value of attribute `kind` among netlink attributes `attrs`.
fn attr(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == kind {
            return Some(&attrs[4..len]);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // A kernel that never answers must not hang a sync.
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: setsockopt(2) with a pointer to a live timeval and its size.
        let rc = unsafe {
            libc::setsockopt(
                owned.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket(owned))
    }

    /// One nftables request for table `name` (family inet).
    fn send(&self, msg: u16, flags: u16, seq: u32, name: &str) -> io::Result<()> {
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        let attr_len = 4 + value.len();
        let total = NLMSG_HDRLEN + 4 + ((attr_len + 3) & !3);
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(&(total as u32).to_ne_bytes());
        buf.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, resource id 0.
        buf.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
        // NFTA_TABLE_NAME and NFTA_RULE_TABLE are both attribute 1.
        debug_assert_eq!(NFTA_TABLE_NAME, NFTA_RULE_TABLE);
        buf.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        buf.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
        buf.extend_from_slice(&value);
        buf.resize(total, 0);
        // SAFETY: buf is a live buffer of buf.len() bytes; sending to the kernel (the
        // socket's default destination, pid 0).
        let n = unsafe { libc::send(self.0.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the answers to request `seq`, handing each message's type (the nftables
    /// message number, or NLMSG_ERROR/NLMSG_DONE) and payload to `each` until it says
    /// the answer is complete.
    fn receive(
        &self,
        seq: u32,
        mut each: impl FnMut(u16, &[u8]) -> io::Result<bool>,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: recv(2) into a live buffer of buf.len() bytes.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a truncated netlink message",
                    ));
                }
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let got_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                let kind = match kind {
                    NLMSG_ERROR | NLMSG_DONE => kind,
                    k if k >> 8 == NFNL_SUBSYS_NFTABLES => k & 0xff,
                    _ => u16::MAX,
                };
                if got_seq == seq && each(kind, &rest[NLMSG_HDRLEN..len])? {
                    return Ok(());
                }
                let next = ((len + 3) & !3).min(rest.len());
                rest = &rest[next..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_past_padding() {
        // A 5-byte attribute (padded to 8) then the one asked for.
        let mut a = vec![5, 0, 7, 0, b'x', 0, 0, 0];
        a.extend_from_slice(&[8, 0, 1, 0, b'a', b'b', b'c', 0]);
        assert_eq!(attr(&a, 1), Some(&b"abc\0"[..]));
        assert_eq!(attr(&a, 9), None);
        assert_eq!(attr(&[2, 0, 1, 0], 1), None);
    }

    fn nft(script: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft -f: {script}");
    }

    /// Against the kernel: a table of our own (no hooks, so no traffic sees it) seen
    /// with its rules, flushed, deleted.
    #[test]
    fn sees_a_table_its_flush_and_its_deletion() {
        if !nix::unistd::Uid::effective().is_root() || which_nft().is_none() {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let name = format!("berth_probe_{}", std::process::id());
        assert_eq!(inet_table_rules(&name).unwrap(), None);
        nft(&format!(
            "table inet {name} {{\n  chain a {{\n    ip saddr 10.9.0.0/16 drop\n    ip daddr 10.9.0.1 accept\n  }}\n  chain b {{\n    tcp dport 9 drop\n  }}\n}}\n"
        ));
        let got = inet_table_rules(&name);
        // A table of the same name in another family is not ours.
        nft(&format!(
            "table ip {name} {{\n  chain c {{\n    ip saddr 10.8.0.0/16 drop\n  }}\n}}\n"
        ));
        let with_ip = inet_table_rules(&name);
        let started = std::time::Instant::now();
        for _ in 0..200 {
            inet_table_rules(&name).unwrap();
        }
        let each = started.elapsed() / 200;
        nft(&format!(
            "delete table ip {name}\nflush table inet {name}\n"
        ));
        let flushed = inet_table_rules(&name);
        nft(&format!("delete table inet {name}\n"));
        assert_eq!(got.unwrap(), Some(3));
        assert_eq!(with_ip.unwrap(), Some(3));
        assert_eq!(flushed.unwrap(), Some(0));
        assert_eq!(inet_table_rules(&name).unwrap(), None);
        eprintln!("one probe: {each:?}");
    }

    fn which_nft() -> Option<()> {
        std::process::Command::new("nft")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| ())
    }
}
