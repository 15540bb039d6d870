//! WHEP: a session with a bearer token, repaired by an ICE restart (`PATCH`), then left
//! (`DELETE`): neither the token nor the ICE passwords of the offer, the answer or either
//! restart fragment appear in the logs, `Debug` or errors.

use std::time::Duration;

use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{ReceivePeers, WhepSource};
use relive::{Policy, Reason, Reconnector, State};

use crate::assert_absent;
use crate::support::{CapturedLogs, Watch};

const TOKEN: &str = "whep-bearer-7c41d9e0";

#[tokio::test]
async fn the_token_and_ice_passwords_appear_in_no_log_debug_or_error() {
    let captured = CapturedLogs::install();
    let server = MillicastServer::builder()
        .secure_token(TOKEN)
        .start()
        .await
        .unwrap();
    server.publish("secrets-cam");
    let peers = ReceivePeers::new()
        .bind_ip(std::net::Ipv4Addr::LOCALHOST.into())
        .progress_every(Duration::from_millis(100));
    let source = WhepSource::new(server.whep_url("secrets-cam"))
        .token(TOKEN)
        .peers(peers);
    let source_debug = format!("{source:?}");
    let policy = Policy::builder()
        .stall_after(Duration::from_millis(600))
        .stall_grace(Duration::from_secs(30))
        .repair_within(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut w = Watch::new(Reconnector::new(source, policy).spawn());
    let relive::Event::Session(mut media) = w
        .until("a session", |e| matches!(e, relive::Event::Session(_)))
        .await
    else {
        unreachable!()
    };
    // Media must have moved for a cut to be a stall.
    let first = media.recv().await.unwrap().pts;
    while media.recv().await.unwrap().pts < first + Duration::from_millis(300) {}
    server.cut_media_paths("secrets-cam");
    w.until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(w.until_playing().await, Reason::Repaired, "{}", w.dump());
    assert_eq!(server.whep_patches(), 1);
    w.viewer.stop().await;
    let log = captured
        .until("the resource deleted", |log| {
            log.contains("WHEP session deleted")
        })
        .await;
    assert!(
        log.contains("WHEP ICE restart answered"),
        "the capture works: {log}"
    );
    let everything = format!(
        "{log}\n{source_debug}\n{}\n{}",
        w.dump(),
        w.errors.join("\n")
    );
    for secret in [TOKEN, "Bearer ", "a=ice-pwd", "ice-pwd:"] {
        assert_absent(&everything, secret);
    }
}
