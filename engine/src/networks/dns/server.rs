//! One listener pair (UDP and TCP port 53 on a network's gateway address) and how it
//! answers: names of the network's containers from its table, other names with a dot
//! forwarded to the upstream resolvers, queries from outside the subnet refused.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::codec;

/// How long a record is cached by clients (Docker's embedded server says 600 s).
const TTL: u32 = 600;
/// How long an upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the listener threads look whether they are to stop.
const POLL: Duration = Duration::from_millis(200);

/// What the servers answer from, shared by all of them: by client address (a
/// running container's address on one of its networks), the names it may resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub clients: BTreeMap<Ipv4Addr, Client>,
    /// The resolvers other names go to.
    pub upstreams: Vec<SocketAddr>,
}

/// One container as a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// Lowercase names (container names, aliases, hostnames, short ids) of the
    /// containers on its networks, and their addresses on those networks (IPv6 ones
    /// too, on networks with IPv6: AAAA answers).
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Its `--dns` servers: its upstreams instead of the table's.
    pub upstreams: Vec<SocketAddr>,
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Reply(Vec<u8>),
    Forward(Vec<SocketAddr>),
    Drop,
}

/// Decides an answer for `msg` from `client`.
pub fn resolve(table: &Table, client: Ipv4Addr, msg: &[u8]) -> Outcome {
    let Some(client) = table.clients.get(&client) else {
        return codec::bare_error(msg, codec::REFUSED).map_or(Outcome::Drop, Outcome::Reply);
    };
    let q = match codec::parse_query(msg) {
        Ok(q) => q,
        Err(_) => {
            return codec::bare_error(msg, codec::FORMERR).map_or(Outcome::Drop, Outcome::Reply)
        }
    };
    if q.is_internet() {
        if let Some(addrs) = client.names.get(&q.name) {
            let addrs: Vec<IpAddr> = addrs
                .iter()
                .copied()
                .filter(|a| match q.qtype {
                    codec::TYPE_A => a.is_ipv4(),
                    codec::TYPE_AAAA => a.is_ipv6(),
                    _ => false,
                })
                .collect();
            return Outcome::Reply(codec::answer(&q, codec::NOERROR, &addrs, TTL));
        }
        // A single label is a container's name or nothing: never sent out.
        if !q.name.contains('.') {
            return Outcome::Reply(codec::answer(&q, codec::NXDOMAIN, &[], TTL));
        }
    }
    let upstreams = if client.upstreams.is_empty() {
        &table.upstreams
    } else {
        &client.upstreams
    };
    if upstreams.is_empty() {
        return Outcome::Reply(codec::answer(&q, codec::SERVFAIL, &[], TTL));
    }
    Outcome::Forward(upstreams.clone())
}

/// Sends `msg` to each upstream in turn over UDP; the first answer, or SERVFAIL.
pub fn forward(msg: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            continue;
        };
        if sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || sock.connect(up).is_err()
            || sock.send(msg).is_err()
        {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 2 && buf[..2] == msg[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    codec::bare_error(msg, codec::SERVFAIL)
}

/// A running listener pair.
pub struct Server {
    pub gateway: Ipv4Addr,
    /// 53, or what the system gave for 0 (tests).
    pub port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds UDP and TCP port 53 on `gateway` (`port` in tests).
    pub fn start(
        gateway: Ipv4Addr,
        port: u16,
        table: Arc<RwLock<Table>>,
    ) -> std::io::Result<Server> {
        let udp = UdpSocket::bind((gateway, port))?;
        let port = udp.local_addr()?.port();
        let tcp = TcpListener::bind((gateway, port))?;
        udp.set_read_timeout(Some(POLL))?;
        tcp.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            spawn_udp(udp, table.clone(), stop.clone())?,
            spawn_tcp(tcp, table.clone(), stop.clone())?,
        ];
        Ok(Server {
            gateway,
            port,
            stop,
            threads,
        })
    }

    /// Closes both sockets (waits for the threads holding them).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn current(table: &RwLock<Table>) -> Table {
    table.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn spawn_udp(
    sock: UdpSocket,
    table: Arc<RwLock<Table>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("berth-dns-udp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let SocketAddr::V4(from4) = from else {
                    continue;
                };
                let msg = buf[..n].to_vec();
                match resolve(&current(&table), *from4.ip(), &msg) {
                    Outcome::Reply(r) => {
                        let _ = sock.send_to(&r, from);
                    }
                    Outcome::Forward(ups) => {
                        let Ok(reply_sock) = sock.try_clone() else {
                            continue;
                        };
                        let _ = std::thread::Builder::new()
                            .name("berth-dns-fwd".into())
                            .spawn(move || {
                                if let Some(r) = forward(&msg, &ups) {
                                    let _ = reply_sock.send_to(&r, from);
                                }
                            });
                    }
                    Outcome::Drop => {}
                }
            }
        })
}

fn spawn_tcp(
    listener: TcpListener,
    table: Arc<RwLock<Table>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("berth-dns-tcp".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, SocketAddr::V4(from))) => {
                        let table = table.clone();
                        let _ = std::thread::Builder::new()
                            .name("berth-dns-conn".into())
                            .spawn(move || serve_tcp(conn, *from.ip(), &table));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(POLL / 2),
                }
            }
        })
}

/// Length-prefixed messages until the client closes or idles for 10 s.
fn serve_tcp(mut conn: TcpStream, client: Ipv4Addr, table: &RwLock<Table>) {
    if conn.set_nonblocking(false).is_err()
        || conn
            .set_read_timeout(Some(Duration::from_secs(10)))
            .is_err()
    {
        return;
    }
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let reply = match resolve(&current(table), client, &msg) {
            Outcome::Reply(r) => r,
            Outcome::Forward(ups) => match forward(&msg, &ups) {
                Some(r) => r,
                None => return,
            },
            Outcome::Drop => return,
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        if conn.write_all(&n.to_be_bytes()).is_err() || conn.write_all(&reply).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut c = Client::default();
        c.names.insert(
            "web".into(),
            vec![
                Ipv4Addr::new(10, 9, 0, 2).into(),
                "fd00:9::2".parse().unwrap(),
            ],
        );
        c.names
            .insert("v4only".into(), vec![Ipv4Addr::new(10, 9, 0, 3).into()]);
        let mut t = Table::default();
        t.clients.insert(Ipv4Addr::LOCALHOST, c);
        t
    }

    #[test]
    fn answers_names_refuses_strangers_and_keeps_single_labels_home() {
        let t = table();
        let local = Ipv4Addr::LOCALHOST;
        let q = codec::query(7, "WEB", codec::TYPE_A);
        let Outcome::Reply(r) = resolve(&t, local, &q) else {
            panic!("not answered")
        };
        assert_eq!(
            codec::read_answer(&r),
            Some((codec::NOERROR, vec![Ipv4Addr::new(10, 9, 0, 2)]))
        );
        // AAAA of a name with an IPv6 address: that address only.
        let Outcome::Reply(r) = resolve(&t, local, &codec::query(7, "web", codec::TYPE_AAAA))
        else {
            panic!("not answered")
        };
        assert_eq!(
            codec::read_answer_all(&r),
            Some((codec::NOERROR, vec!["fd00:9::2".parse().unwrap()]))
        );
        // AAAA of a known name without one: no data, not NXDOMAIN.
        let Outcome::Reply(r) = resolve(&t, local, &codec::query(7, "v4only", 28)) else {
            panic!("not answered")
        };
        assert_eq!(codec::read_answer(&r), Some((codec::NOERROR, vec![])));
        let Outcome::Reply(r) = resolve(&t, local, &codec::query(7, "db", codec::TYPE_A)) else {
            panic!("not answered")
        };
        assert_eq!(codec::read_answer(&r), Some((codec::NXDOMAIN, vec![])));
        // Outside the subnet: refused.
        let Outcome::Reply(r) = resolve(&t, Ipv4Addr::new(10, 0, 0, 1), &q) else {
            panic!("not answered")
        };
        assert_eq!(r[3] & 0x0f, codec::REFUSED);
        // No upstream: SERVFAIL, nothing sent.
        let Outcome::Reply(r) = resolve(&t, local, &codec::query(7, "a.example", 1)) else {
            panic!("not answered")
        };
        assert_eq!(r[3] & 0x0f, codec::SERVFAIL);
    }

    #[test]
    fn forwards_to_a_loopback_upstream_over_udp_and_tcp() {
        // A fake upstream on loopback answering every query with 192.0.2.7.
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = up.recv_from(&mut buf) {
                let q = codec::parse_query(&buf[..n]).unwrap();
                let a = codec::answer(&q, codec::NOERROR, &[Ipv4Addr::new(192, 0, 2, 7).into()], 5);
                let _ = up.send_to(&a, from);
            }
        });
        let mut t = table();
        t.upstreams = vec![up_addr];
        let server = Server::start(Ipv4Addr::LOCALHOST, 0, Arc::new(RwLock::new(t))).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(&codec::query(9, "www.example", 1), addr).unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(
            codec::read_answer(&buf[..n]),
            Some((codec::NOERROR, vec![Ipv4Addr::new(192, 0, 2, 7)]))
        );
        c.send_to(&codec::query(10, "web", 1), addr).unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(
            codec::read_answer(&buf[..n]),
            Some((codec::NOERROR, vec![Ipv4Addr::new(10, 9, 0, 2)]))
        );
        // TCP: a length-prefixed query, forwarded.
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let q = codec::query(11, "www.example", 1);
        t.write_all(&u16::try_from(q.len()).unwrap().to_be_bytes())
            .unwrap();
        t.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        t.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
        t.read_exact(&mut r).unwrap();
        assert_eq!(
            codec::read_answer(&r),
            Some((codec::NOERROR, vec![Ipv4Addr::new(192, 0, 2, 7)]))
        );
        server.stop();
        // Closed: the port can be bound again.
        UdpSocket::bind(addr).unwrap();
        TcpListener::bind(addr).unwrap();
    }
}
