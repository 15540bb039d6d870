//! A `relive-testkit` child process and its wire log.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use crate::support::PATIENCE;

/// A running `relive-testkit`, killed when dropped; its wire log goes to a temporary file.
pub struct Testkit {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub log: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh path in the temporary directory, removed by [`Scratch`]'s drop.
pub fn scratch(name: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("relive-testkit-{}-{n}-{name}", std::process::id()))
}

impl Testkit {
    /// Starts the binary with `args` (plus `--listen 127.0.0.1:0 --wire-log FILE`) and waits
    /// for its listening line.
    pub async fn start(args: &[&str]) -> Testkit {
        let log = scratch("wire.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_relive-testkit"))
            .args(["--listen", "127.0.0.1:0", "--log", "warn", "--wire-log"])
            .arg(&log)
            .args(args)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = timeout(PATIENCE, lines.next_line())
            .await
            .expect("a listening line in time")
            .unwrap()
            .expect("a listening line");
        let base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Keep reading stderr so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Testkit { child, base, log }
    }

    /// The wire log so far, one value per line.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect()
    }

    /// Waits until the log has a record after index `from` matching `f`; returns its index.
    /// Panics with the log after [`PATIENCE`].
    pub async fn until(&self, what: &str, from: usize, f: impl Fn(&Value) -> bool) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let records = self.records();
            if let Some(i) = records.iter().skip(from).position(&f) {
                return from + i;
            }
            if Instant::now() > deadline {
                panic!("no {what} in the wire log:\n{}", dump(&records));
            }
            sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `POST /control/{action}` with `body`; the status and the JSON answer.
    pub async fn control(&self, action: &str, body: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/control/{action}", self.base))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for Testkit {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Whether `record` is event `event` with every `(field, value)` of `fields`.
pub fn is(record: &Value, event: &str, fields: &[(&str, Value)]) -> bool {
    record["event"] == event && fields.iter().all(|(k, v)| &record[*k] == v)
}

pub fn dump(records: &[Value]) -> String {
    records
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
