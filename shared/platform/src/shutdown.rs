//! Process shutdown in three phases, so that a rollout drops no call:
//!
//! 1. **Announced** (SIGTERM or Ctrl-C): each service's readiness turns NOT_SERVING;
//!    everything keeps serving and working for `shutdown.propagation_seconds`, the time
//!    load balancers, kube-proxy and peers' resolvers take to stop sending calls here.
//! 2. **Work stops**: consumers, workers and jobs finish what they hold and take no more,
//!    while every listener still accepts, so that the work can still call a service of
//!    this same process (`serve all`).
//! 3. **Closed**: once the work of every service of the process has ended, listeners stop
//!    accepting and the calls in flight drain.
//!
//! `shutdown.drain_seconds` bounds phases 2 and 3 together: work still in flight then is
//! dropped, and redone after the restart, as after a crash.
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The phases of one process' stop, shared by every service it runs.
#[derive(Clone, Default)]
pub struct Stop {
    announced: CancellationToken,
    work: CancellationToken,
    closed: CancellationToken,
    working: TaskTracker,
}

impl Stop {
    /// Cancelled when the stop is announced: readiness turns NOT_SERVING.
    pub fn announced(&self) -> &CancellationToken {
        &self.announced
    }

    /// Cancelled when work must stop: consumers, workers and jobs watch it.
    pub fn work(&self) -> &CancellationToken {
        &self.work
    }

    /// Cancelled when listeners must stop accepting and drain.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Held by a service while its work runs: listeners close only once every holder has
    /// dropped it (or the drain time is over).
    pub fn working(&self) -> TaskTrackerToken {
        self.working.token()
    }

    /// Every phase at once: a service failed, or a test stops in-process tasks.
    pub fn now(&self) {
        self.announced.cancel();
        self.work.cancel();
        self.closed.cancel();
    }

    /// Walks the phases from the announcement on, `propagation` then at most `drain`.
    pub async fn phases(&self, propagation: Duration, drain: Duration) {
        self.announced.cancel();
        tracing::info!(
            propagation_s = propagation.as_secs_f64(),
            "stop announced: readiness is NOT_SERVING; still serving until peers have noticed"
        );
        tokio::select! {
            _ = tokio::time::sleep(propagation) => {}
            _ = self.closed.cancelled() => {}
        }
        tracing::info!("stopping work; listeners still accept");
        self.work.cancel();
        self.working.close();
        tokio::select! {
            _ = self.working.wait() => {}
            _ = tokio::time::sleep(drain) => {}
            _ = self.closed.cancelled() => {}
        }
        tracing::info!("work stopped; closing listeners and draining calls in flight");
        self.closed.cancel();
    }
}

/// A [`Stop`] whose phases start on SIGTERM or SIGINT.
pub fn on_signal(propagation: Duration, drain: Duration) -> Stop {
    let stop = Stop::default();
    let phases = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = wait_for_signal() => phases.phases(propagation, drain).await,
            // A service failed and stopped everything already.
            _ = phases.closed.cancelled() => {}
        }
    });
    stop
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the process");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn listeners_close_only_after_every_service_has_stopped_its_work() {
        let stop = Stop::default();
        let first = stop.working();
        let second = stop.working();
        let phases = tokio::spawn({
            let stop = stop.clone();
            async move {
                stop.phases(Duration::from_secs(5), Duration::from_secs(60))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(stop.announced().is_cancelled());
        assert!(
            !stop.work().is_cancelled(),
            "work goes on while peers notice"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(stop.work().is_cancelled());
        drop(first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!stop.closed().is_cancelled(), "one service still works");
        drop(second);
        phases.await.unwrap();
        assert!(stop.closed().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_time_bounds_work_that_does_not_stop() {
        let stop = Stop::default();
        let _stuck = stop.working();
        let started = tokio::time::Instant::now();
        stop.phases(Duration::from_secs(2), Duration::from_secs(20))
            .await;
        assert!(stop.closed().is_cancelled());
        assert_eq!(started.elapsed().as_secs(), 22);
    }
}
