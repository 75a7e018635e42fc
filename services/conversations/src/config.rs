//! The conversations service's own settings, the `[conversations]` section of
//! `default.toml`.
use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use serde::Deserialize;

/// The conversations service's timers.
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationsSettings {
    /// How often due snooze wake-ups and auto-closes are looked for.
    pub timer_poll_ms: u64,
    /// Seconds added to the system clock for every lifecycle decision (tests, drills).
    pub clock_offset_seconds: i64,
}

impl Section for ConversationsSettings {
    const NAME: &'static str = "conversations";

    fn validate(&self) -> Result<(), Violations> {
        let mut violations = Violations::new();
        if self.timer_poll_ms < 10 {
            violations.push(FieldError::new("timer_poll_ms", "must be at least 10"));
        }
        violations.into_result()
    }
}
