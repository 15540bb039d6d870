//! The Linux network watcher, in a network namespace of its own (nothing on the host
//! changes): an address added to `lo` there tells a viewer backing off to try at once.
//!
//! The test re-runs this binary under `unshare --net` (util-linux), as root, and adds the
//! address with `ip` (iproute2); without them it fails, it does not skip.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "net-watch", feature = "testkit", target_os = "linux"))]

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use relive::netwatch::NetworkWatcher;
use relive::testkit::MemoryStream;
use relive::{Event, Jitter, Policy, Reason, Reconnector, Retry, State};
use tokio::time::timeout;

const IN_NAMESPACE: &str = "RELIVE_NETWATCH_NAMESPACE";
const INNER: &str = "inside_a_namespace_an_added_address_ends_a_backoff";

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(status.success(), "ip {args:?}");
}

#[test]
fn an_address_added_in_a_private_network_namespace_ends_a_backoff() {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args([
            "--exact",
            INNER,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("unshare (util-linux)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[tokio::test]
#[ignore = "run inside a private network namespace by the test above"]
async fn inside_a_namespace_an_added_address_ends_a_backoff() {
    assert!(
        std::env::var_os(IN_NAMESPACE).is_some(),
        "this test changes addresses: it runs only in its own network namespace"
    );
    ip(&["link", "set", "lo", "up"]);
    let stream = MemoryStream::new();
    stream.publish();
    stream.fail_next(1, Retry::Later);
    // A first delay of 30 s: only the network change can bring the attempt sooner.
    let policy = Policy::builder()
        .backoff(Duration::from_secs(30), 2.0, Duration::from_secs(60))
        .jitter(Jitter::None)
        .progress_watchdog(false)
        .build()
        .unwrap();
    let mut viewer = Reconnector::new(stream.source(), policy).spawn();
    let patience = Duration::from_secs(15);
    timeout(patience, async {
        while let Some(event) = viewer.next().await {
            if let Event::State {
                to: State::Backoff { .. },
                ..
            } = event
            {
                return;
            }
        }
    })
    .await
    .expect("the backoff");
    let watcher = NetworkWatcher::start([viewer.control()]).await.unwrap();
    ip(&["addr", "add", "10.77.0.1/24", "dev", "lo"]);
    let reason = timeout(patience, async {
        while let Some(event) = viewer.next().await {
            if let Event::State {
                to: State::Connecting { .. },
                reason,
                ..
            } = event
            {
                return reason;
            }
        }
        panic!("the viewer ended");
    })
    .await
    .expect("an attempt after the address came");
    assert_eq!(reason, Reason::NetworkChanged);
    assert_eq!(stream.connects(), 2);
    drop(watcher);
}
