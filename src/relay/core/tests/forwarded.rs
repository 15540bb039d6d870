//! Which address a connection counts under: the TCP peer, unless it is a trusted proxy; then
//! the right-most untrusted hop of `Forwarded: for=` (else `X-Forwarded-For`); a malformed
//! chain gives the peer, with the reason.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::relay::core::client_address;
use crate::relay::core::clients::ForwardedError;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn trusted() -> Vec<IpNet> {
    vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_claims() {
    let got = client_address(
        ip("203.0.113.9"),
        &trusted(),
        &["for=1.2.3.4"],
        &["1.2.3.4"],
    );
    assert_eq!(got, (ip("203.0.113.9"), None));
    let got = client_address(ip("127.0.0.1"), &[], &[], &["1.2.3.4"]);
    assert_eq!(
        got,
        (ip("127.0.0.1"), None),
        "no trusted proxy: headers ignored"
    );
}

#[test]
fn behind_trusted_proxies_the_right_most_untrusted_hop_counts() {
    let peer = ip("10.0.0.2");
    // The client forged the left-most entry; the proxies appended the rest.
    let xff = ["6.6.6.6, 198.51.100.7", "10.0.0.1"];
    assert_eq!(
        client_address(peer, &trusted(), &[], &xff),
        (ip("198.51.100.7"), None)
    );
    let forwarded = [r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https, for=10.0.0.1"#];
    assert_eq!(
        client_address(peer, &trusted(), &forwarded, &["9.9.9.9"]),
        (ip("2001:db8::7"), None),
        "Forwarded wins over X-Forwarded-For"
    );
    assert_eq!(
        client_address(peer, &trusted(), &["proto=http;For=192.0.2.60:80"], &[]),
        (ip("192.0.2.60"), None),
        "parameter names are case-insensitive, ports dropped"
    );
    assert_eq!(
        client_address(peer, &trusted(), &[], &["10.1.1.1, 10.2.2.2"]),
        (ip("10.1.1.1"), None),
        "only trusted hops: the left-most"
    );
    assert_eq!(
        client_address(peer, &trusted(), &[], &[]),
        (peer, None),
        "no header: the proxy itself"
    );
    assert_eq!(
        client_address(ip("::ffff:10.0.0.2"), &trusted(), &[], &["192.0.2.1"]),
        (ip("192.0.2.1"), None),
        "an IPv4-mapped peer is its IPv4 address"
    );
}

#[test]
fn a_malformed_chain_counts_the_peer_and_says_why() {
    let peer = ip("10.0.0.2");
    let cases: [(&[&str], &[&str], ForwardedError); 5] = [
        (&[], &["not-an-ip"], ForwardedError::NotAnAddress),
        (&[], &["192.0.2.1, unknown"], ForwardedError::NotAnAddress),
        (&["for=unknown"], &[], ForwardedError::NotAnAddress),
        (&["proto=https"], &[], ForwardedError::Malformed),
        (&[r#"for="192.0.2.1"#], &[], ForwardedError::Malformed),
    ];
    for (forwarded, xff, error) in cases {
        assert_eq!(
            client_address(peer, &trusted(), forwarded, xff),
            (peer, Some(error)),
            "{forwarded:?} {xff:?}"
        );
    }
    // A bad entry left of the first untrusted hop is never read.
    assert_eq!(
        client_address(peer, &trusted(), &[], &["garbage, 192.0.2.1"]),
        (ip("192.0.2.1"), None)
    );
}

#[test]
fn an_endless_chain_is_read_only_so_far() {
    let long = vec!["10.0.0.1"; 10_000].join(",");
    let (client, error) = client_address(ip("10.0.0.2"), &trusted(), &[], &[&long]);
    assert_eq!(error, None);
    assert_eq!(
        client,
        ip("10.0.0.1"),
        "stopped after MAX_HOPS trusted hops"
    );
}
