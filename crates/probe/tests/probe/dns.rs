//! resolve_with against a fake DNS server on 127.0.0.1; resolve_system on /etc/hosts only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use fix502_probe::{DnsFailure, resolve_system, resolve_with};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the fake server knows:
/// - `backend.test.`: A 10.9.8.7, no AAAA
/// - `dual.test.`: A 10.0.0.1 and AAAA fd00::1
/// - `empty.test.`: exists, no records (NOERROR, empty)
/// - `missing.test.`: NXDOMAIN
/// - `broken.test.`: SERVFAIL
/// - `refused.test.`: REFUSED
/// - `silent.test.` (and anything else): never answered
struct FakeDns {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_dns() -> FakeDns {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        for _ in 0..1000 {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if let Some(reply) = answer(&buf[..len]) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    FakeDns { addr, task }
}

fn answer(packet: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    let question = query.queries.first()?.clone();
    let name = question.name().to_string().to_ascii_lowercase();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    let record = |data: RData| Record::from_rdata(question.name().clone(), 60, data);
    match (name.as_str(), question.query_type()) {
        ("backend.test.", RecordType::A) => {
            reply.add_answer(record(RData::A(A::new(10, 9, 8, 7))));
        }
        ("dual.test.", RecordType::A) => {
            reply.add_answer(record(RData::A(A::new(10, 0, 0, 1))));
        }
        ("dual.test.", RecordType::AAAA) => {
            reply.add_answer(record(RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))));
        }
        ("backend.test.", _) | ("dual.test.", _) | ("empty.test.", _) => {}
        ("missing.test.", _) => reply.metadata.response_code = ResponseCode::NXDomain,
        ("broken.test.", _) => reply.metadata.response_code = ResponseCode::ServFail,
        ("refused.test.", _) => reply.metadata.response_code = ResponseCode::Refused,
        _ => return None,
    }
    reply.to_vec().ok()
}

const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_record_from_the_fake_server() {
    let dns = fake_dns().await;
    let got = resolve_with("backend.test", &[dns.addr], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got.addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))]);
    assert!(got.elapsed < TIMEOUT);

    // A trailing dot is accepted as well.
    let got = resolve_with("backend.test.", &[dns.addr], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got.addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))]);
}

#[tokio::test]
async fn a_and_aaaa_with_a_first() {
    let dns = fake_dns().await;
    let got = resolve_with("dual.test", &[dns.addr], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        got.addrs,
        vec![
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        ]
    );
}

#[tokio::test]
async fn nxdomain() {
    let dns = fake_dns().await;
    let err = resolve_with("missing.test", &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, DnsFailure::NxDomain);
    assert_eq!(err.to_string(), "host not found (NXDOMAIN)");
}

#[tokio::test]
async fn no_records() {
    let dns = fake_dns().await;
    let err = resolve_with("empty.test", &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, DnsFailure::NoRecords);
}

#[tokio::test]
async fn servfail_and_refused() {
    let dns = fake_dns().await;
    let err = resolve_with("broken.test", &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, DnsFailure::ServFail);
    let err = resolve_with("refused.test", &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, DnsFailure::Refused);
}

#[tokio::test]
async fn silent_server_times_out_in_time() {
    let dns = fake_dns().await;
    let timeout = Duration::from_millis(500);
    let start = std::time::Instant::now();
    let err = resolve_with("silent.test", &[dns.addr], timeout)
        .await
        .unwrap_err();
    assert_eq!(err, DnsFailure::Timeout);
    let took = start.elapsed();
    assert!(took >= timeout, "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn ip_literal_needs_no_server() {
    // No server listens on this port: the literal must not be sent anywhere.
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let got = resolve_with("10.1.2.3", &[nowhere], TIMEOUT).await.unwrap();
    assert_eq!(got.addrs, vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))]);
}

#[tokio::test]
async fn system_resolver_finds_localhost_in_etc_hosts() {
    let got = resolve_system("localhost", 80, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!got.addrs.is_empty());
    assert!(got.addrs.iter().all(IpAddr::is_loopback), "{:?}", got.addrs);
}

#[tokio::test]
async fn system_resolver_passes_literals_through() {
    let got = resolve_system("127.0.0.1", 8000, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.addrs, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let got = resolve_system("::1", 8000, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.addrs, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
}

#[tokio::test]
async fn invalid_names_are_other_failures() {
    let dns = fake_dns().await;
    let err = resolve_with("bad..name", &[dns.addr], TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, DnsFailure::Other(_)), "{err:?}");
    assert!(!err.to_string().contains('\n'));
}
