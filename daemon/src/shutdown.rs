//! The shutdown signal of a daemon process.
//!
//! The daemons' `run` functions take any future as their shutdown trigger so
//! that tests can stop them without signals; the binaries pass [`signal`].

/// Resolves when the process receives SIGTERM or SIGINT. If a handler cannot
/// be installed the future never resolves on that signal, and the error is
/// logged, because a daemon that cannot be stopped by one signal can still
/// be stopped by the other or by SIGKILL.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::error!(%error, "cannot install the SIGTERM handler");
            None
        }
    };
    let terminate = async {
        match terminate.as_mut() {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => tracing::info!("SIGINT received, shutting down"),
            Err(error) => {
                tracing::error!(%error, "cannot install the SIGINT handler");
                std::future::pending::<()>().await;
            }
        },
    }
}
