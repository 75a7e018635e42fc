//! Rates that adapt to a provider's rate-limit answers. A channel whose provider answered
//! "too many requests" is paced at half its rate, halved again by each further such
//! answer down to a tenth, and back at its full rate once a minute passes without one:
//! retrying at the rate the provider just refused would only earn more refusals, for
//! replies and broadcasts alike. Each replica adapts on what it sees.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a slowdown lasts after the last rate-limit answer.
const COOL_OFF: Duration = Duration::from_secs(60);
/// The slowest a channel is paced, as a share of its rate.
const FLOOR: f64 = 0.1;

/// Channels slowed down, with their share of the full rate and until when.
#[derive(Default)]
pub struct Pacing {
    slowed: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl Pacing {
    /// The rate to pace `channel` at now, of its `full` rate.
    pub fn rate(&self, channel: Uuid, full: f64) -> f64 {
        self.rate_at(channel, full, Instant::now())
    }

    fn rate_at(&self, channel: Uuid, full: f64, now: Instant) -> f64 {
        let Ok(mut slowed) = self.slowed.lock() else {
            return full;
        };
        match slowed.get(&channel) {
            Some((share, until)) if now < *until => full * share,
            Some(_) => {
                slowed.remove(&channel);
                full
            }
            None => full,
        }
    }

    /// The provider answered `channel` with a rate limit.
    pub fn limited(&self, channel: Uuid) {
        self.limited_at(channel, Instant::now());
    }

    fn limited_at(&self, channel: Uuid, now: Instant) {
        if let Ok(mut slowed) = self.slowed.lock() {
            let share = match slowed.get(&channel) {
                Some((share, until)) if now < *until => (share / 2.0).max(FLOOR),
                _ => 0.5,
            };
            slowed.insert(channel, (share, now + COOL_OFF));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rate_limit_halves_the_pace_down_to_a_tenth_and_a_quiet_minute_restores_it() {
        let pacing = Pacing::default();
        let (channel, other) = (Uuid::now_v7(), Uuid::now_v7());
        let start = Instant::now();
        assert_eq!(pacing.rate_at(channel, 80.0, start), 80.0);
        pacing.limited_at(channel, start);
        assert_eq!(pacing.rate_at(channel, 80.0, start), 40.0);
        assert_eq!(
            pacing.rate_at(other, 80.0, start),
            80.0,
            "other channels keep theirs"
        );
        for _ in 0..5 {
            pacing.limited_at(channel, start);
        }
        assert_eq!(pacing.rate_at(channel, 80.0, start), 8.0);
        let later = start + COOL_OFF + Duration::from_secs(1);
        assert_eq!(pacing.rate_at(channel, 80.0, later), 80.0);
        pacing.limited_at(channel, later);
        assert_eq!(
            pacing.rate_at(channel, 80.0, later),
            40.0,
            "a new slowdown starts at half"
        );
    }
}
