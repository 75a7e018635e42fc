//! "Now" for lifecycle decisions: the system clock, shifted by a configured offset so
//! tests and drills move time forward instead of waiting for it.
use chrono::{DateTime, TimeDelta, Utc};

/// The service's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    /// The system clock shifted by `seconds`.
    pub fn offset_by(seconds: i64) -> Self {
        Self {
            offset: TimeDelta::seconds(seconds),
        }
    }

    /// The current time on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}
