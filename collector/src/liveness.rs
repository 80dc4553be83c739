//! Agent liveness: every few seconds, enrolled agents not heard from for
//! `agents.silent_after` are marked silent, which records one
//! `agent_silent` event each (until the agent reports again) and logs it.
//! `countywatch_agent_up` on `/metrics` is computed from the same data.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::registry::Registry;
use countywatch_daemon::clock::now_ms;

/// Checks for silent agents until `stopped` turns true.
pub async fn watch(
    registry: Arc<Registry>,
    silent_after: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let period = (silent_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticker.tick() => {}
        }
        let registry = Arc::clone(&registry);
        let marked =
            tokio::task::spawn_blocking(move || registry.mark_silent(silent_after, now_ms())).await;
        match marked {
            Ok(Ok(names)) => {
                for name in names {
                    tracing::warn!(agent = %name, silent_for = ?silent_after, "agent is silent");
                }
            }
            Ok(Err(error)) => tracing::error!("{error:#}"),
            Err(error) => tracing::error!(%error, "liveness check failed"),
        }
    }
}
