//! Reading a DNS-SD advertisement from the mDNS packets themselves (RFC
//! 6762/6763), not through a resolver: the suite sends its own queries,
//! parses every answer with a strict DNS parser and keeps each record as
//! received, so a server is judged on what it put on the wire — a missing
//! A record is missing, not filled in from a cache or another responder.

use crate::core::discovery::{received_instances, same_name, MdnsRecord, ReceivedInstance};
use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, TYPE};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// The mDNS IPv4 group and port (RFC 6762 §3).
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const PORT: u16 = 5353;

/// What a bounded round of queries brought back.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every DNS-SD-relevant record received, in arrival order.
    pub records: Vec<MdnsRecord>,
    /// Response packets received (parsed or not).
    pub packets: usize,
    /// Packets that are not valid DNS messages: sender and parse error.
    pub malformed: Vec<String>,
    /// How the suite listened: on the shared mDNS port, or as a one-shot
    /// querier on a port of its own (RFC 6762 §5.1) when 5353 was taken.
    pub listened_on: u16,
    /// The interfaces (name and IPv4 address) the queries went out on.
    pub asked_on: Vec<(String, Ipv4Addr)>,
}

/// The IPv4 interfaces with a route to `target`: its own interface when it
/// is a local address (loopback included), every interface whose subnet
/// holds it, and the one the kernel's route to it leaves by. Queries go
/// out on each, so a server advertising on one interface only is asked
/// where it listens, whatever the default interface is.
pub fn interfaces_towards(target: std::net::IpAddr) -> Vec<(String, Ipv4Addr)> {
    let std::net::IpAddr::V4(t) = target else {
        return Vec::new();
    };
    let ifs: Vec<(String, Ipv4Addr, Ipv4Addr)> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) => Some((i.name, a.ip, a.netmask)),
            _ => None,
        })
        .collect();
    let routed = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((t, 9)).map(|()| s))
        .and_then(|s| s.local_addr())
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            _ => None,
        });
    let mut out: Vec<(String, Ipv4Addr)> = Vec::new();
    for (name, ip, mask) in ifs {
        let same_subnet = u32::from(ip) & u32::from(mask) == u32::from(t) & u32::from(mask);
        let loopback_target = t.is_loopback() && ip.is_loopback();
        let routes = ip == t || same_subnet || loopback_target || Some(ip) == routed;
        if routes && !out.iter().any(|(_, a)| *a == ip) {
            out.push((name, ip));
        }
    }
    out
}

impl Collected {
    /// The instances of `service` the records describe.
    pub fn instances(&self, service: &str) -> Vec<ReceivedInstance> {
        received_instances(&self.records, service)
    }
}

fn socket(interfaces: &[(String, Ipv4Addr)]) -> std::io::Result<(UdpSocket, u16)> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    let shared = s
        .bind(&SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            PORT,
        )))
        .is_ok();
    if !shared {
        // Another mDNS stack holds the port without sharing it: ask as a
        // one-shot querier; responders answer such a port by unicast.
        s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
    }
    if interfaces.is_empty() {
        s.join_multicast_v4(&GROUP, &Ipv4Addr::UNSPECIFIED)?;
    }
    for (_, ip) in interfaces {
        // One membership per interface (a second join of the same one is
        // refused by the kernel and harmless).
        let _ = s.join_multicast_v4(&GROUP, ip);
    }
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(255)?;
    let udp: UdpSocket = s.into();
    let port = udp.local_addr()?.port();
    Ok((udp, port))
}

fn query(names: &[(String, TYPE)]) -> Result<Vec<u8>, String> {
    let mut p = Packet::new_query(0);
    for (n, t) in names {
        let name = Name::new(n).map_err(|e| format!("query name {n}: {e}"))?;
        p.questions.push(Question::new(
            name,
            QTYPE::TYPE(*t),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
    }
    p.build_bytes_vec().map_err(|e| e.to_string())
}

fn name_of(n: &Name<'_>) -> String {
    format!("{n}.")
}

/// The DNS-SD records of one response packet.
fn records_of(p: &Packet<'_>) -> Vec<MdnsRecord> {
    p.answers
        .iter()
        .chain(&p.additional_records)
        .filter_map(|rr| {
            let name = name_of(&rr.name);
            Some(match &rr.rdata {
                RData::PTR(t) => MdnsRecord::Ptr {
                    name,
                    target: name_of(&t.0),
                },
                RData::SRV(s) => MdnsRecord::Srv {
                    name,
                    port: s.port,
                    target: name_of(&s.target),
                },
                RData::TXT(t) => MdnsRecord::Txt {
                    name,
                    entries: t
                        .iter_raw()
                        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect(),
                },
                RData::A(a) => MdnsRecord::Addr {
                    name,
                    ip: IpAddr::from(Ipv4Addr::from(a.address)),
                },
                RData::AAAA(a) => MdnsRecord::Addr {
                    name,
                    ip: IpAddr::from(std::net::Ipv6Addr::from(a.address)),
                },
                _ => return None,
            })
        })
        .collect()
}

/// Asks for `service` over IPv4 mDNS and collects answers for at most
/// `limit`. It asks again for whatever an instance still lacks (SRV and
/// TXT of the instance, A/AAAA of its SRV target) and stops early once
/// `done` accepts the instances received so far.
pub fn collect(
    service: &str,
    limit: Duration,
    towards: Option<std::net::IpAddr>,
    mut done: impl FnMut(&[ReceivedInstance]) -> bool,
) -> Result<Collected, String> {
    let interfaces = towards.map(interfaces_towards).unwrap_or_default();
    let (sock, port) =
        socket(&interfaces).map_err(|e| format!("cannot open an mDNS socket: {e}"))?;
    let dest = SocketAddr::from((GROUP, PORT));
    let raw: socket2::SockRef<'_> = (&sock).into();
    let send = |q: &[(String, TYPE)]| -> Result<(), String> {
        let bytes = query(q)?;
        if interfaces.is_empty() {
            return sock
                .send_to(&bytes, dest)
                .map(|_| ())
                .map_err(|e| format!("cannot send an mDNS query: {e}"));
        }
        let mut sent = 0;
        let mut last = String::new();
        for (name, ip) in &interfaces {
            let out = raw
                .set_multicast_if_v4(ip)
                .and_then(|()| sock.send_to(&bytes, dest));
            match out {
                Ok(_) => sent += 1,
                Err(e) => last = format!("{name} ({ip}): {e}"),
            }
        }
        if sent == 0 {
            return Err(format!(
                "cannot send an mDNS query on any interface: {last}"
            ));
        }
        Ok(())
    };
    send(&[(service.to_string(), TYPE::PTR)])?;
    let started = Instant::now();
    let mut out = Collected {
        listened_on: port,
        asked_on: interfaces.clone(),
        ..Collected::default()
    };
    let mut next_ask = started + Duration::from_millis(700);
    let mut asked = 1u32;
    let mut buf = vec![0u8; 9000];
    loop {
        let now = Instant::now();
        if now >= started + limit {
            break;
        }
        if now >= next_ask && asked < 6 {
            // Ask once more for the type, and for what each instance lacks.
            let mut q = vec![(service.to_string(), TYPE::PTR)];
            for i in out.instances(service) {
                if i.srv.is_none() {
                    q.push((i.fullname.clone(), TYPE::SRV));
                }
                if i.txt.is_none() {
                    q.push((i.fullname.clone(), TYPE::TXT));
                }
                if let Some((_, host)) = &i.srv {
                    if i.addresses.is_empty() {
                        q.push((host.clone(), TYPE::A));
                        q.push((host.clone(), TYPE::AAAA));
                    }
                }
            }
            send(&q)?;
            asked += 1;
            next_ask = now + Duration::from_millis(700);
        }
        let wait = (started + limit)
            .min(next_ask)
            .saturating_duration_since(now)
            .max(Duration::from_millis(10));
        sock.set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("mDNS receive: {e}")),
        };
        let data = &buf[..n];
        // Queries (ours and others') are not answers.
        if simple_dns::header_buffer::has_flags(data, PacketFlag::RESPONSE) != Ok(true) {
            continue;
        }
        out.packets += 1;
        match Packet::parse(data) {
            Ok(p) => {
                let recs = records_of(&p);
                let relevant = recs.iter().any(|r| match r {
                    MdnsRecord::Ptr { name, .. } => same_name(name, service),
                    _ => true,
                });
                if relevant {
                    out.records.extend(recs);
                }
            }
            Err(e) => out.malformed.push(format!("{from}: {e}")),
        }
        if done(&out.instances(service)) {
            break;
        }
    }
    Ok(out)
}

/// A hand-written mDNS responder that answers every query naming one of
/// its records' names with exactly `records` — for test-only faults that a
/// real mDNS stack refuses to publish (an SRV with no address records).
/// Stops when dropped.
pub struct RawResponder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn to_wire(r: &MdnsRecord) -> Option<simple_dns::ResourceRecord<'static>> {
    use simple_dns::rdata::{self, A, AAAA, SRV, TXT};
    use simple_dns::{CharacterString, ResourceRecord};
    let name = |n: &str| Name::new(n).ok().map(Name::into_owned);
    let (owner, data) = match r {
        MdnsRecord::Ptr { name: n, target } => (n, RData::PTR(rdata::PTR(name(target)?))),
        MdnsRecord::Srv {
            name: n,
            port,
            target,
        } => (
            n,
            RData::SRV(SRV {
                priority: 0,
                weight: 0,
                port: *port,
                target: name(target)?,
            }),
        ),
        MdnsRecord::Txt { name: n, entries } => {
            let mut t = TXT::new();
            for (k, v) in entries {
                let mut s = k.clone();
                if let Some(v) = v {
                    s.push(b'=');
                    s.extend(v);
                }
                t.add_char_string(CharacterString::new(&s).ok()?.into_owned());
            }
            (n, RData::TXT(t.into_owned()))
        }
        MdnsRecord::Addr { name: n, ip } => (
            n,
            match ip {
                IpAddr::V4(v4) => RData::A(A {
                    address: u32::from(*v4),
                }),
                IpAddr::V6(v6) => RData::AAAA(AAAA {
                    address: u128::from(*v6),
                }),
            },
        ),
    };
    Some(ResourceRecord::new(name(owner)?, CLASS::IN, 120, data))
}

impl RawResponder {
    /// Starts answering on the shared mDNS port.
    pub fn start(records: Vec<MdnsRecord>) -> std::io::Result<Self> {
        let (sock, _) = socket(&[])?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let wire: Vec<_> = records.iter().filter_map(to_wire).collect();
        let names: Vec<String> = wire.iter().map(|r| name_of(&r.name)).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 9000];
            let dest = SocketAddr::from((GROUP, PORT));
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                if q.has_flags(PacketFlag::RESPONSE)
                    || !q
                        .questions
                        .iter()
                        .any(|qq| names.iter().any(|n| same_name(n, &name_of(&qq.qname))))
                {
                    continue;
                }
                let mut p = Packet::new_reply(0);
                p.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
                p.answers.extend(wire.iter().cloned());
                if let Ok(bytes) = p.build_bytes_vec() {
                    let _ = sock.send_to(&bytes, dest);
                }
            }
        });
        Ok(RawResponder {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for RawResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers are read as received: a response built with the same DNS
    /// library's writer comes back as the same records.
    #[test]
    fn records_of_a_response() {
        use simple_dns::rdata::{self, A, SRV, TXT};
        use simple_dns::ResourceRecord;
        let mut p = Packet::new_reply(0);
        let inst = Name::new_unchecked("x._idprov._tcp.local");
        let host = Name::new_unchecked("h.local");
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("_idprov._tcp.local"),
            CLASS::IN,
            120,
            RData::PTR(rdata::PTR(inst.clone())),
        ));
        p.additional_records.push(ResourceRecord::new(
            inst.clone(),
            CLASS::IN,
            120,
            RData::SRV(SRV {
                priority: 0,
                weight: 0,
                port: 4242,
                target: host.clone(),
            }),
        ));
        p.additional_records.push(ResourceRecord::new(
            inst.clone(),
            CLASS::IN,
            120,
            RData::TXT(TXT::new().with_string("path=/d").unwrap()),
        ));
        p.additional_records.push(ResourceRecord::new(
            host,
            CLASS::IN,
            120,
            RData::A(A {
                address: u32::from(Ipv4Addr::LOCALHOST),
            }),
        ));
        let bytes = p.build_bytes_vec().unwrap();
        let parsed = Packet::parse(&bytes).unwrap();
        let got = received_instances(&records_of(&parsed), "_idprov._tcp.local.");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].srv, Some((4242, "h.local.".into())));
        assert_eq!(
            got[0].txt,
            Some(vec![(b"path".to_vec(), Some(b"/d".to_vec()))])
        );
        assert_eq!(got[0].addresses, vec![IpAddr::from(Ipv4Addr::LOCALHOST)]);
        // A truncated packet is an error, not a partial answer.
        assert!(Packet::parse(&bytes[..bytes.len() - 3]).is_err());
    }
}
