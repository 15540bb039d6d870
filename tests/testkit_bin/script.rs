//! A fault script played by the binary, judged by the wire log.

use serde_json::json;

use crate::child::{Testkit, dump, is, scratch};
use crate::{CAM, viewer};

#[tokio::test]
async fn a_script_cuts_the_sockets_and_the_log_shows_the_viewer_coming_back() {
    let path = scratch("script.json");
    std::fs::write(
        &path,
        r#"{"steps": [
            {"at": 0, "action": "publish", "stream": "cam"},
            {"at": 1.5, "action": "cut_sockets"}
        ]}"#,
    )
    .unwrap();
    let testkit = Testkit::start(&["--script", path.to_str().unwrap()]).await;
    let mut w = viewer(&testkit.base);
    w.until_playing().await;
    let cut = testkit
        .until("the cut", 0, |r| {
            is(r, "action", &[("action", json!({"action": "cut_sockets"}))])
        })
        .await;
    let dropped = testkit
        .until("a dropped socket", cut, |r| {
            is(r, "socket_closed", &[("how", json!("dropped"))])
        })
        .await;
    testkit
        .until("a new director call", dropped, |r| {
            is(
                r,
                "director",
                &[("stream", json!(CAM)), ("status", json!(200))],
            )
        })
        .await;
    testkit
        .until("a new accepted view", dropped, |r| {
            is(r, "view", &[("accepted", json!(true))])
        })
        .await;
    let records = testkit.records();
    let before: Vec<_> = records[..cut].iter().map(|r| r["event"].clone()).collect();
    for event in ["director", "socket_open", "view", "ping"] {
        assert!(
            before.contains(&json!(event)),
            "{event}:\n{}",
            dump(&records)
        );
    }
    let times: Vec<u64> = records
        .iter()
        .map(|r| r["t_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|t| t[0] <= t[1]), "{}", dump(&records));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn with_exit_after_script_the_binary_ends_after_the_last_step() {
    let path = scratch("short.json");
    std::fs::write(
        &path,
        r#"{"steps": [{"at": 0.2, "action": "director_fault", "fault": "html", "requests": 1}]}"#,
    )
    .unwrap();
    let mut testkit =
        Testkit::start(&["--script", path.to_str().unwrap(), "--exit-after-script"]).await;
    let status = tokio::time::timeout(crate::support::PATIENCE, testkit.child.wait())
        .await
        .expect("the binary exits")
        .unwrap();
    assert!(status.success(), "{status}");
    let records = testkit.records();
    assert_eq!(
        records.last().map(|r| r["action"].clone()),
        Some(json!({"action": "director_fault", "fault": "html", "requests": 1})),
        "{}",
        dump(&records)
    );
    let _ = std::fs::remove_file(&path);
}
