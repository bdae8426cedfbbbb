//! Subnets of bridge networks: IPv4 parsing, overlap, the gateway and the pool free
//! subnets are taken from (Docker's default pool order), and the host's routes a
//! default subnet must not cover; IPv6 subnets (`--ipv6`), which are always given
//! (Docker's default pools are IPv4 only).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 network in CIDR notation, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// `a.b.c.d/n`; the address must be the network's (host bits zero), as Docker
    /// checks it (`invalid subnet … : it should be …`).
    pub fn parse(s: &str) -> Result<Ipv4Net, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| {
            if addr.contains(':') {
                format!("{s}: an IPv6 subnet where an IPv4 one is expected")
            } else {
                format!("invalid CIDR address: {s}")
            }
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let net = Ipv4Net::new(addr, prefix);
        if net.addr != addr {
            return Err(format!("invalid subnet {s}: it should be {net}"));
        }
        Ok(net)
    }

    /// The network of `addr` with `prefix` bits.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    fn first(self) -> u32 {
        u32::from(self.addr)
    }

    fn last(self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.first()
    }

    pub fn overlaps(self, other: Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// Whether all of `other` lies inside this network.
    pub fn covers(self, other: Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The first host address, Docker's default gateway.
    pub fn first_host(self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + u32::from(self.prefix < 31))
    }

    /// The last host address (below the broadcast, below /31).
    pub fn last_host(self) -> Ipv4Addr {
        Ipv4Addr::from(self.last() - u32::from(self.prefix < 31))
    }

    /// A host address: inside, neither the network's nor (below /31) its broadcast.
    pub fn is_host(self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        self.contains(ip) && (self.prefix >= 31 || (n != self.first() && n != self.last()))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv6 network in CIDR notation, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Net {
    /// `x::/n`; the address must be the network's, as Docker checks it.
    pub fn parse(s: &str) -> Result<Ipv6Net, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let net = Ipv6Net::new(addr, prefix);
        if net.addr != addr {
            return Err(format!("invalid subnet {s}: it should be {net}"));
        }
        Ok(net)
    }

    pub fn new(addr: Ipv6Addr, prefix: u8) -> Ipv6Net {
        Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(prefix)),
            prefix,
        }
    }

    fn first(self) -> u128 {
        u128::from(self.addr)
    }

    fn last(self) -> u128 {
        self.first() | !mask6(self.prefix)
    }

    pub fn contains(self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == self.first()
    }

    pub fn overlaps(self, other: Ipv6Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    pub fn covers(self, other: Ipv6Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The first address after the network's own (the subnet-router anycast one),
    /// Docker's default IPv6 gateway.
    pub fn first_host(self) -> Ipv6Addr {
        Ipv6Addr::from(self.first() + u128::from(self.prefix < 127))
    }

    /// The last address of the network (IPv6 has no broadcast).
    pub fn last_host(self) -> Ipv6Addr {
        Ipv6Addr::from(self.last())
    }

    /// An address a container or the gateway may have: inside, not the network's own.
    pub fn is_host(self, ip: Ipv6Addr) -> bool {
        self.contains(ip) && (self.prefix >= 127 || u128::from(ip) != self.first())
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What checking a network's gateway and range asks of its subnet, either family.
pub trait Subnet: Copy + fmt::Display + Sized {
    type Addr: std::str::FromStr + Copy;
    fn parse_net(s: &str) -> Result<Self, String>;
    fn covers_net(self, other: Self) -> bool;
    fn first_host_addr(self) -> Self::Addr;
    fn is_host_addr(self, ip: Self::Addr) -> bool;
}

impl Subnet for Ipv4Net {
    type Addr = Ipv4Addr;
    fn parse_net(s: &str) -> Result<Self, String> {
        Ipv4Net::parse(s)
    }
    fn covers_net(self, other: Self) -> bool {
        self.covers(other)
    }
    fn first_host_addr(self) -> Ipv4Addr {
        self.first_host()
    }
    fn is_host_addr(self, ip: Ipv4Addr) -> bool {
        self.is_host(ip)
    }
}

impl Subnet for Ipv6Net {
    type Addr = Ipv6Addr;
    fn parse_net(s: &str) -> Result<Self, String> {
        Ipv6Net::parse(s)
    }
    fn covers_net(self, other: Self) -> bool {
        self.covers(other)
    }
    fn first_host_addr(self) -> Ipv6Addr {
        self.first_host()
    }
    fn is_host_addr(self, ip: Ipv6Addr) -> bool {
        self.is_host(ip)
    }
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Docker's default address pools in order: 172.17–31.0.0/16, then the /20s of
/// 192.168.0.0/16.
pub fn default_pool() -> impl Iterator<Item = Ipv4Net> {
    let sixteens = (17..=31u8).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0..16u8).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens.chain(twenties)
}

/// The first subnet of the pool that overlaps none of `taken`.
pub fn first_free(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pool().find(|c| !taken.iter().any(|t| t.overlaps(*c)))
}

/// The host's IPv4 routes other than default routes (`/proc/net/route`), which a
/// subnet berth picks by itself must not overlap (Docker's rule for its pools).
pub fn host_routes() -> Vec<Ipv4Net> {
    std::fs::read_to_string("/proc/net/route")
        .map(|text| parse_routes(&text))
        .unwrap_or_default()
}

/// `/proc/net/route`: destination and mask as little-endian hex.
fn parse_routes(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let m = u32::from_str_radix(f.get(7)?, 16).ok()?;
            let prefix = m.count_ones() as u8;
            (prefix > 0).then(|| Ipv4Net::new(Ipv4Addr::from(dst.to_le_bytes()), prefix))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_refuse() {
        let n = Ipv4Net::parse("10.1.0.0/16").unwrap();
        assert_eq!(n.to_string(), "10.1.0.0/16");
        assert_eq!(n.first_host(), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(
            Ipv4Net::parse("10.1.2.0/16").unwrap_err(),
            "invalid subnet 10.1.2.0/16: it should be 10.1.0.0/16"
        );
        assert!(Ipv4Net::parse("10.1.0.0").is_err());
        assert!(Ipv4Net::parse("10.1.0.0/33").is_err());
        assert!(Ipv4Net::parse("fd00::/64").unwrap_err().contains("IPv6"));
    }

    #[test]
    fn ipv6_subnets() {
        let n = Ipv6Net::parse("fd00:db8:1::/64").unwrap();
        assert_eq!(n.to_string(), "fd00:db8:1::/64");
        assert_eq!(n.first_host().to_string(), "fd00:db8:1::1");
        assert_eq!(
            Ipv6Net::parse("fd00:db8:1::5/64").unwrap_err(),
            "invalid subnet fd00:db8:1::5/64: it should be fd00:db8:1::/64"
        );
        assert!(Ipv6Net::parse("10.0.0.0/8").is_err());
        assert!(Ipv6Net::parse("fd00::/129").is_err());
        let wide = Ipv6Net::parse("fd00:db8::/32").unwrap();
        let other = Ipv6Net::parse("fd00:db9::/64").unwrap();
        assert!(wide.overlaps(n) && n.overlaps(wide) && !wide.overlaps(other));
        assert!(wide.covers(n) && !n.covers(wide));
        assert!(n.is_host("fd00:db8:1::2".parse().unwrap()));
        assert!(!n.is_host("fd00:db8:1::".parse().unwrap()));
        assert!(!n.is_host("fd00:db8:2::2".parse().unwrap()));
        assert_eq!(
            n.last_host().to_string(),
            "fd00:db8:1:0:ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn overlap_cover_hosts() {
        let a = Ipv4Net::parse("10.1.0.0/16").unwrap();
        let b = Ipv4Net::parse("10.1.128.0/24").unwrap();
        let c = Ipv4Net::parse("10.2.0.0/16").unwrap();
        assert!(a.overlaps(b) && b.overlaps(a) && !a.overlaps(c));
        assert!(a.covers(b) && !b.covers(a) && !a.covers(c));
        assert!(a.is_host(Ipv4Addr::new(10, 1, 0, 1)));
        assert!(!a.is_host(Ipv4Addr::new(10, 1, 0, 0)));
        assert!(!a.is_host(Ipv4Addr::new(10, 1, 255, 255)));
        assert!(!a.is_host(Ipv4Addr::new(10, 2, 0, 1)));
    }

    #[test]
    fn pool_skips_taken() {
        let taken = [
            Ipv4Net::parse("172.17.0.0/16").unwrap(),
            Ipv4Net::parse("172.18.5.0/24").unwrap(),
        ];
        assert_eq!(first_free(&taken).unwrap().to_string(), "172.19.0.0/16");
        let all: Vec<Ipv4Net> = default_pool().collect();
        assert_eq!(all.len(), 31);
        assert!(first_free(&all).is_none());
        assert_eq!(all[15].to_string(), "192.168.0.0/20");
    }

    #[test]
    fn routes_from_proc() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            br0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = parse_routes(text);
        assert_eq!(
            r.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["192.0.2.0/24", "172.17.0.0/16"]
        );
    }
}
