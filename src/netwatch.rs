//! Feature `net-watch` (Linux): tells viewers when the device's IP addresses change, so that
//! a viewer backing off tries at once and a frozen session is replaced at once.
//!
//! A [`NetworkWatcher`] reads the kernel's address events (netlink, through libp2p's
//! `if-watch`) and calls [`Control::network_changed`] for each change: an address added or
//! removed on any interface — a Wi-Fi to cellular hand-over, a new DHCP lease, a VPN up or
//! down. What a change means for each viewer is the machine's rule
//! ([`Input::NetworkChanged`](crate::Input::NetworkChanged)); the watcher decides nothing.
//! Route changes that keep every address (a new default gateway) are not seen: if-watch
//! listens to address groups only.
//!
//! ```no_run
//! # async fn demo(viewer: relive::Control) -> std::io::Result<()> {
//! let watcher = relive::netwatch::NetworkWatcher::start([viewer]).await?;
//! // ... the viewer runs; dropping `watcher` stops watching.
//! # drop(watcher); Ok(()) }
//! ```

use std::io;
use std::time::Duration;

use futures::StreamExt;
use if_watch::IfEvent;
use if_watch::tokio::IfWatcher;
use tokio::task::JoinHandle;

use crate::driver::Control;

/// How long the kernel's first answer (every address there is) may pause before it counts as
/// complete: the addresses it lists are the baseline, not changes.
const BASELINE_QUIET: Duration = Duration::from_millis(100);

/// A task that tells viewers about address changes; dropping it stops the task.
#[derive(Debug)]
pub struct NetworkWatcher {
    task: JoinHandle<()>,
}

impl NetworkWatcher {
    /// Starts watching for `controls`: returns once the current addresses are known, so that
    /// any change after it is reported. The error is the netlink socket's (not Linux, no
    /// permission to open it).
    pub async fn start(controls: impl IntoIterator<Item = Control>) -> io::Result<Self> {
        let controls: Vec<Control> = controls.into_iter().collect();
        let mut watcher = IfWatcher::new()?;
        let mut known = 0usize;
        // The first events list the addresses there are: read them as the baseline.
        while let Ok(next) = tokio::time::timeout(BASELINE_QUIET, watcher.next()).await {
            match next {
                Some(Ok(_)) => known += 1,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        tracing::debug!(addresses = known, "network watcher started");
        let task = tokio::spawn(async move {
            while let Some(event) = watcher.next().await {
                match event {
                    Ok(event) => {
                        let kind = match event {
                            IfEvent::Up(_) => "address added",
                            IfEvent::Down(_) => "address removed",
                        };
                        tracing::info!(change = kind, "network changed");
                        for control in &controls {
                            control.network_changed();
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "network watcher stopped");
                        break;
                    }
                }
            }
        });
        Ok(NetworkWatcher { task })
    }
}

impl Drop for NetworkWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
