//! The SSRF guard's matrix: refused address forms, a name resolving to
//! loopback, the allow-list, and refusal at the attempt (not only at save).

use std::collections::BTreeMap;
use std::time::Duration;

use crm_webhooks::ssrf::{GuardedResolver, check_url, forbidden};
use crm_webhooks::{AddressPolicy, Network, Sender};

use crate::receiver::{Receiver, Reply};

#[test]
fn refused_address_forms() {
    let strict = AddressPolicy::strict();
    let refused = [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://172.31.255.255/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://100.127.255.254/",
        "http://192.0.2.10/",
        "http://198.51.100.7/",
        "http://203.0.113.9/",
        "http://198.18.0.1/",
        "http://224.0.0.1/",
        "http://239.255.255.250/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[fe80::1]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
        "http://[2001:db8::1]/",
        "http://[2001::1]/",
        "http://[100::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:pass@example.com/",
    ];
    for url in refused {
        assert!(check_url(url, &strict).is_err(), "{url} must be refused");
    }
    for url in ["https://example.com/hook", "http://8.8.8.8/", "http://[2606:4700::1111]/", "http://172.32.0.1/"] {
        assert!(check_url(url, &strict).is_ok(), "{url} must pass");
    }
    assert!(forbidden("100.63.255.255".parse().expect("ip")).is_none(), "just below CGNAT");
    assert!(forbidden("::ffff:8.8.8.8".parse().expect("ip")).is_none(), "a mapped public address");
}

#[test]
fn the_allow_list_opens_only_what_it_names() {
    let policy = AddressPolicy::strict().allow_list("127.0.0.0/8, ::1").expect("list");
    assert!(check_url("http://127.0.0.1:8080/", &policy).is_ok());
    assert!(check_url("http://0x7f.1/", &policy).is_ok(), "the normalised form is what counts");
    assert!(check_url("http://[::ffff:127.0.0.1]/", &policy).is_ok());
    assert!(check_url("http://[::1]/", &policy).is_ok());
    assert!(check_url("http://10.0.0.1/", &policy).is_err());
    assert!(check_url("http://169.254.169.254/", &policy).is_err());
    assert!(AddressPolicy::strict().allow_list("localhost").is_err(), "names are not networks");
    assert_eq!(AddressPolicy::strict().allow(Network::parse("10.0.0.0/8").expect("net")).allowed().len(), 1);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_when_it_resolves() {
    let strict = std::sync::Arc::new(AddressPolicy::strict());
    let err = GuardedResolver::new(strict.clone()).resolve_allowed("localhost").await.expect_err("refused");
    assert!(err.to_string().contains("may not reach"), "{err}");
    // The URL itself passes the save-time check: only resolution can tell.
    assert!(check_url("http://localhost:9/hook", &strict).is_ok());
    let open = std::sync::Arc::new(AddressPolicy::strict().allow_list("127.0.0.0/8,::1").expect("list"));
    let addrs = GuardedResolver::new(open).resolve_allowed("localhost").await.expect("allowed");
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));
}

#[tokio::test]
async fn attempts_to_a_live_loopback_receiver_are_refused_at_connect_time() {
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let strict = Sender::new(Duration::from_secs(5), AddressPolicy::strict()).expect("sender");
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
    ] {
        let r = strict.post(&url, &BTreeMap::new(), b"{}".to_vec()).await;
        assert_eq!(r.status, None, "{url}");
        assert!(r.error.as_deref().is_some_and(|e| e.contains("may not reach")), "{url}: {:?}", r.error);
    }
    assert!(receiver.received().is_empty(), "nothing reached the receiver");
    let open = Sender::new(Duration::from_secs(5), AddressPolicy::strict().allow_list("127.0.0.0/8,::1").expect("l"))
        .expect("sender");
    let r = open.post(&format!("http://localhost:{port}/hook"), &BTreeMap::new(), b"{}".to_vec()).await;
    assert_eq!(r.status, Some(204), "{r:?}");
    assert_eq!(receiver.received().len(), 1);
}

/// An attacker's DNS: each lookup, of any name, answers the next address of
/// its list (none when the list is spent).
#[derive(Debug)]
struct Rebinding(std::sync::Mutex<std::collections::VecDeque<std::net::IpAddr>>);

impl reqwest::dns::Resolve for Rebinding {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let next = self.0.lock().expect("lock").pop_front();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                next.map(|ip| std::net::SocketAddr::new(ip, 0)).into_iter().collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[tokio::test]
async fn a_name_rebinding_to_a_forbidden_address_is_refused_at_the_next_attempt() {
    // 127.0.0.1 stands for the server's own network; 127.0.0.2, the only
    // allowed network, for a public address. Both listen on one port.
    let inside = Receiver::start().await;
    let port = inside.addr.port();
    let outside = Receiver::start_on(std::net::SocketAddr::from(([127, 0, 0, 2], port))).await;
    // The allowed side closes its connection, so the next attempt must
    // resolve again instead of reusing a pooled connection.
    outside.script([Reply::status(200).header("connection", "close")]);
    let dns = std::sync::Arc::new(Rebinding(std::sync::Mutex::new(
        [[127, 0, 0, 2].into(), [127, 0, 0, 1].into()].into_iter().collect(),
    )));
    let policy = AddressPolicy::strict().allow_list("127.0.0.2/32").expect("allow-list");
    let sender = Sender::with_lookup(Duration::from_secs(5), policy.clone(), dns.clone()).expect("sender");
    let url = format!("http://hooks.example.test:{port}/hook");
    assert!(check_url(&url, &policy).is_ok(), "the name passes the save-time check");

    let first = sender.post(&url, &BTreeMap::new(), b"{}".to_vec()).await;
    assert_eq!(first.status, Some(200), "{first:?}");
    assert_eq!(outside.received().len(), 1);

    let second = sender.post(&url, &BTreeMap::new(), b"{}".to_vec()).await;
    assert_eq!(second.status, None, "{second:?}");
    assert!(second.error.as_deref().is_some_and(|e| e.contains("may not reach")), "{:?}", second.error);
    assert!(inside.received().is_empty(), "nothing reached the forbidden address");
    assert!(dns.0.lock().expect("lock").is_empty(), "the name was resolved at each attempt");
}
