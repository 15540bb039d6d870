//! `relive-testkit`: the testkit's Millicast-protocol server as a program, for viewer apps in any
//! language — the Director, the signaling WebSocket, WHEP and a publisher of real VP8 + Opus for
//! any number of streams, a fault script played on a timeline, a control API to play the same
//! faults live, and a wire log of what each viewer did.
//!
//! ```text
//! relive-testkit --listen 127.0.0.1:8080 --publish cam --wire-log - --script faults.json
//! curl -X POST http://127.0.0.1:8080/control/cut_sockets
//! curl -X POST http://127.0.0.1:8080/control/layers -d '{"stream":"cam","active":0}'
//! ```
//!
//! The script format and the actions are those of `relive::testkit::script`; the wire log's
//! lines are `relive::testkit::millicast::WireRecord`s. A script that cannot be read is an
//! error naming its line, column and field, and exit code 2 (as for bad flags). SIGTERM or
//! ctrl-c stops the server (sockets get a close frame) and exits 0.

#[path = "common/mod.rs"]
mod common;

use common::{log_filter, signal};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

use clap::Parser;
use relive::testkit::millicast::{MillicastServer, WireRecord};
use relive::testkit::script::{Script, StreamName};
use tokio::sync::mpsc;

/// Wire records buffered for the writer before more are dropped (and counted).
const WIRE_QUEUE: usize = 4096;

/// A fault-injecting Millicast-protocol (Director, signaling WebSocket) and WHEP server with a
/// real VP8 + Opus publisher, for testing viewer apps.
#[derive(Debug, Parser)]
#[command(name = "relive-testkit", version)]
struct Args {
    /// Where to listen (port 0: any free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The stream account id; the Director and WHEP refuse others.
    #[arg(long, value_name = "ID", default_value = "testkit")]
    account: String,
    /// A stream to publish from the start. Repeatable; any other stream name works too once a
    /// script step or control request publishes it.
    #[arg(long = "publish", value_name = "STREAM", value_parser = stream_name)]
    publish: Vec<StreamName>,
    /// A fault script (JSON: `{"steps":[{"at":SECONDS,"action":NAME,...}]}`) played from the
    /// start.
    #[arg(long, value_name = "PATH")]
    script: Option<PathBuf>,
    /// Exit (code 0) once the script's last step is played.
    #[arg(long, requires = "script")]
    exit_after_script: bool,
    /// Write the wire log (JSON lines) to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH")]
    wire_log: Option<PathBuf>,
    /// Do not serve the control API (`POST /control/{action}`).
    #[arg(long)]
    no_control: bool,
    /// Secure every stream: the Director and WHEP then require `Authorization: Bearer TOKEN`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RELIVE_TESTKIT_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The log filter when `RUST_LOG` is not set.
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log: String,
}

fn stream_name(name: &str) -> Result<StreamName, String> {
    StreamName::new(name)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_env_filter(log_filter(rust_log.as_deref(), &args.log))
        .init();
    let script = match args.script.as_deref().map(read_script).transpose() {
        Ok(script) => script,
        Err(message) => {
            eprintln!("relive-testkit: {message}");
            return ExitCode::from(2);
        }
    };
    let records = match args.wire_log.clone().map(start_writer).transpose() {
        Ok(records) => records,
        Err(error) => {
            eprintln!("relive-testkit: wire log: {error}");
            return ExitCode::from(2);
        }
    };
    let code = serve(args, script, records.clone()).await;
    if let Some(records) = records {
        drain(&records).await;
    }
    code
}

/// Waits (at most a second) until the writer has taken every queued record.
async fn drain(records: &mpsc::Sender<WireRecord>) {
    for _ in 0..100 {
        if records.capacity() == records.max_capacity() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The last record taken is written and flushed within microseconds.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

/// Runs the server until a signal (or the script's end with `--exit-after-script`).
async fn serve(
    args: Args,
    script: Option<Script>,
    records: Option<mpsc::Sender<WireRecord>>,
) -> ExitCode {
    let mut builder = MillicastServer::builder()
        .account(args.account.clone())
        .bind(args.listen)
        .control_api(!args.no_control);
    if let Some(token) = &args.token {
        builder = builder.secure_token(token.clone());
    }
    if let Some(records) = records {
        builder = builder.wire_log(records);
    }
    let server = match builder.start().await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("relive-testkit: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    for stream in &args.publish {
        server.publish(stream.as_str());
    }
    let addr = server.addr();
    eprintln!(
        "relive-testkit: listening on http://{addr} (Director http://{addr}/api/director/subscribe, \
         WHEP http://{addr}/api/whep/{}/STREAM{})",
        args.account,
        if args.no_control {
            String::new()
        } else {
            format!(", control http://{addr}/control/ACTION")
        }
    );
    let play = async {
        match &script {
            Some(script) => {
                script.run(&server).await;
                tracing::info!("script done");
                if !args.exit_after_script {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = play => {}
        () = signal() => tracing::info!("stopping"),
    }
    if server.wire_records_dropped() > 0 {
        tracing::warn!(
            dropped = server.wire_records_dropped(),
            "wire records dropped: the log writer fell behind"
        );
    }
    server.shutdown();
    // Give open sockets their close frames before the process ends.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(server);
    ExitCode::SUCCESS
}

/// The largest script read: far more than any timeline needs, and a bound for a path to an
/// endless file such as a pipe.
const MAX_SCRIPT: u64 = 16 * 1024 * 1024;

/// Reads and checks the script file; the error says where and what.
fn read_script(path: &std::path::Path) -> Result<Script, String> {
    use std::io::Read as _;
    let cannot = |error: std::io::Error| format!("cannot read script {}: {error}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SCRIPT + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_SCRIPT {
        return Err(format!(
            "script {} is larger than {MAX_SCRIPT} bytes",
            path.display()
        ));
    }
    Script::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Opens the wire log and starts its writer: a thread writing (and flushing) one line per
/// record, so that a reader tailing the file sees each record at once. The thread ends with the
/// process.
fn start_writer(path: PathBuf) -> std::io::Result<mpsc::Sender<WireRecord>> {
    let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(&path)?)
    };
    let mut out = std::io::LineWriter::new(out);
    let (sender, mut receiver) = mpsc::channel::<WireRecord>(WIRE_QUEUE);
    std::thread::spawn(move || {
        while let Some(record) = receiver.blocking_recv() {
            if writeln!(out, "{}", record.to_line()).is_err() {
                tracing::warn!("wire log write failed; the log ends here");
                return;
            }
        }
        let _ = out.flush();
    });
    Ok(sender)
}
