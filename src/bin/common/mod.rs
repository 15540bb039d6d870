//! What both binaries (`relive-relay`, `relive-testkit`) do the same way: their log filter and
//! their shutdown signal. Included by each with `#[path]`; not a binary of its own.

use tracing_subscriber::EnvFilter;

/// The log filter: `RUST_LOG` if set and valid, else `--log`, else `info`; each with
/// tungstenite capped below its secret-carrying TRACE records.
pub(crate) fn log_filter(rust_log: Option<&str>, flag: &str) -> EnvFilter {
    [rust_log, Some(flag)]
        .into_iter()
        .flatten()
        .find_map(|filter| EnvFilter::try_new(relive::logging::secret_safe_filter(filter)).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Resolves on ctrl-c or SIGTERM.
pub(crate) async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
