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
    /// An SMS whose whole text is one of these words (any case) opts its Contact out of
    /// broadcasts; one of `opt_in_keywords` opts them back in.
    pub opt_out_keywords: Vec<String>,
    pub opt_in_keywords: Vec<String>,
}

impl Section for ConversationsSettings {
    const NAME: &'static str = "conversations";

    fn validate(&self) -> Result<(), Violations> {
        let mut violations = Violations::new();
        if self.timer_poll_ms < 10 {
            violations.push(FieldError::new("timer_poll_ms", "must be at least 10"));
        }
        let words = self.opt_out_keywords.iter().chain(&self.opt_in_keywords);
        if words.clone().any(|w| w.trim().is_empty()) {
            violations.push(FieldError::new(
                "opt_out_keywords",
                "keywords must not be empty",
            ));
        }
        if self.opt_out_keywords.iter().any(|w| {
            self.opt_in_keywords
                .iter()
                .any(|i| i.eq_ignore_ascii_case(w))
        }) {
            violations.push(FieldError::new(
                "opt_in_keywords",
                "a word cannot both opt out and opt in",
            ));
        }
        violations.into_result()
    }
}
