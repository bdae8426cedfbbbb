//! The few parts of the DNS message format (RFC 1035) the embedded server needs: the
//! header and first question of a query, and an answer with A or AAAA records. Everything
//! else of a query passes through to the upstream resolvers untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Response codes.
pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const REFUSED: u8 = 5;

/// Query types.
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// A query's header fields and its first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The header's second 16 bits (opcode, RD, …) as sent.
    pub flags: u16,
    /// Lowercase, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as it was on the wire (echoed in the answer).
    question: Vec<u8>,
}

/// Reads a query: one question with an uncompressed name (what resolvers send).
pub fn parse_query(msg: &[u8]) -> Result<Query, &'static str> {
    if msg.len() < 12 {
        return Err("short header");
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Err("not a query");
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount != 1 {
        return Err("not one question");
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *msg.get(pos).ok_or("truncated name")? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err("compressed or bad label");
        }
        let label = msg.get(pos..pos + len).ok_or("truncated label")?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
        if pos > 12 + 255 {
            return Err("name too long");
        }
    }
    let tail = msg.get(pos..pos + 4).ok_or("truncated question")?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Ok(Query {
        id,
        flags,
        name: labels.join("."),
        qtype,
        qclass,
        question: msg[12..pos + 4].to_vec(),
    })
}

impl Query {
    /// Whether the question is an IN-class one (the only class containers have).
    pub fn is_internet(&self) -> bool {
        self.qclass == CLASS_IN
    }
}

/// An answer to `q` with `rcode` and, for NOERROR, A records of the IPv4 `addrs` and
/// AAAA records of the IPv6 ones (none: the name exists, but not with this type).
pub fn answer(q: &Query, rcode: u8, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + q.question.len() + addrs.len() * 16);
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, the query's opcode and RD, AA (berth is the authority for its names), RA.
    let flags = 0x8000 | (q.flags & 0x7900) | 0x0400 | 0x0080 | u16::from(rcode & 0x0f);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    let ancount = u16::try_from(addrs.len()).unwrap_or(0);
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    for a in addrs.iter().take(usize::from(ancount)) {
        // The name: a pointer to the question's, at offset 12.
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (rtype, data) = match a {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(4).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// An error answer to a message whose question could not be read: the header alone.
pub fn bare_error(msg: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if msg.len() < 4 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let flags = 0x8000 | (flags & 0x7900) | 0x0080 | u16::from(rcode & 0x0f);
    let mut out = vec![msg[0], msg[1]];
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// A query for `name` and `qtype` (tests, and the fake upstream of the e2e tests).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap_or(63).min(63));
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The rcode and A addresses of an answer (tests).
pub fn read_answer(msg: &[u8]) -> Option<(u8, Vec<Ipv4Addr>)> {
    let (rcode, all) = read_answer_all(msg)?;
    let v4 = all
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    Some((rcode, v4))
}

/// The rcode and the A and AAAA addresses of an answer (tests).
pub fn read_answer_all(msg: &[u8]) -> Option<(u8, Vec<IpAddr>)> {
    let q = parse_query_header_skipping(msg)?;
    let rcode = msg[3] & 0x0f;
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = q;
    let mut addrs = Vec::new();
    for _ in 0..ancount {
        // Names in answers: a pointer, or labels.
        loop {
            let b = *msg.get(pos)?;
            if b & 0xc0 == 0xc0 {
                pos += 2;
                break;
            }
            pos += 1 + usize::from(b);
            if b == 0 {
                break;
            }
        }
        let rr = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([rr[0], rr[1]]);
        let rdlen = usize::from(u16::from_be_bytes([rr[8], rr[9]]));
        let data = msg.get(pos + 10..pos + 10 + rdlen)?;
        if rtype == TYPE_A && rdlen == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]).into());
        } else if rtype == TYPE_AAAA && rdlen == 16 {
            let mut b = [0u8; 16];
            b.copy_from_slice(data);
            addrs.push(Ipv6Addr::from(b).into());
        }
        pos += 10 + rdlen;
    }
    Some((rcode, addrs))
}

/// The offset past the first question of a message.
fn parse_query_header_skipping(msg: &[u8]) -> Option<usize> {
    if msg.len() < 12 {
        return None;
    }
    let mut pos = 12;
    loop {
        let len = usize::from(*msg.get(pos)?);
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    Some(pos + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_round_trips_into_an_answer() {
        let msg = query(0x1234, "Web.Example.", TYPE_A);
        let q = parse_query(&msg).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name, "web.example");
        assert_eq!(q.qtype, TYPE_A);
        assert!(q.is_internet());
        let ip = Ipv4Addr::new(10, 1, 0, 2);
        let a = answer(&q, NOERROR, &[ip.into()], 600);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert!(a[2] & 0x80 != 0, "QR set");
        assert!(a[2] & 0x01 != 0, "RD echoed");
        assert_eq!(read_answer(&a), Some((NOERROR, vec![ip])));
        let nx = answer(&q, NXDOMAIN, &[], 600);
        assert_eq!(read_answer(&nx), Some((NXDOMAIN, vec![])));
        let q6 = parse_query(&query(9, "web", TYPE_AAAA)).unwrap();
        let ip6: IpAddr = "fd00:db8::2".parse().unwrap();
        let a6 = answer(&q6, NOERROR, &[ip6], 600);
        assert_eq!(read_answer_all(&a6), Some((NOERROR, vec![ip6])));
    }

    #[test]
    fn bad_messages_are_refused_not_panicked_on() {
        assert!(parse_query(&[]).is_err());
        assert!(parse_query(&[0; 11]).is_err());
        let mut msg = query(1, "a", TYPE_A);
        msg.truncate(msg.len() - 2);
        assert!(parse_query(&msg).is_err());
        let mut two = query(1, "a", TYPE_A);
        two[5] = 2;
        assert!(parse_query(&two).is_err());
        let mut response = query(1, "a", TYPE_A);
        response[2] |= 0x80;
        assert!(parse_query(&response).is_err());
        let e = bare_error(&two, FORMERR).unwrap();
        assert_eq!(e.len(), 12);
        assert_eq!(e[3] & 0x0f, FORMERR);
        assert!(bare_error(&[1], FORMERR).is_none());
    }
}
