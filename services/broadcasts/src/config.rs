//! The broadcasts service's own settings, the `[broadcasts]` section of `default.toml`.
use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use serde::Deserialize;

/// How broadcasts run.
#[derive(Debug, Clone, Deserialize)]
pub struct BroadcastsSettings {
    /// How often running and due broadcasts are looked at when nothing wakes the runner.
    pub poll_ms: u64,
    /// How long a replica freezing an audience holds it before another may take over.
    pub lease_seconds: f64,
    /// The rate a Channel without a rate of its own is paced at, per second.
    pub default_rate_per_second: u32,
    /// Fewest and most recipients of one broadcast waiting at the gateway at once (two
    /// seconds of the Channel's rate, within these bounds).
    pub min_window: i64,
    pub max_window: i64,
    /// The error-rate breaker: a broadcast stops (paused with the reason) when more than
    /// `breaker_failure_ratio` of its last `breaker_window` outcomes failed, once it has
    /// at least `breaker_min_outcomes`.
    pub breaker_window: usize,
    pub breaker_min_outcomes: usize,
    pub breaker_failure_ratio: f64,
}

impl Section for BroadcastsSettings {
    const NAME: &'static str = "broadcasts";

    fn validate(&self) -> Result<(), Violations> {
        let mut violations = Violations::new();
        if self.poll_ms < 10 {
            violations.push(FieldError::new("poll_ms", "must be at least 10"));
        }
        if !(1.0..=3600.0).contains(&self.lease_seconds) {
            violations.push(FieldError::new("lease_seconds", "must be 1 to 3600"));
        }
        if self.default_rate_per_second == 0 {
            violations.push(FieldError::new(
                "default_rate_per_second",
                "must be at least 1",
            ));
        }
        if self.min_window < 1 || self.max_window < self.min_window {
            violations.push(FieldError::new(
                "max_window",
                "min_window must be at least 1 and max_window at least min_window",
            ));
        }
        if self.breaker_min_outcomes == 0 || self.breaker_window < self.breaker_min_outcomes {
            violations.push(FieldError::new(
                "breaker_window",
                "breaker_min_outcomes must be at least 1 and breaker_window at least breaker_min_outcomes",
            ));
        }
        if !(0.0..1.0).contains(&self.breaker_failure_ratio) {
            violations.push(FieldError::new(
                "breaker_failure_ratio",
                "must be at least 0 and below 1",
            ));
        }
        violations.into_result()
    }
}
