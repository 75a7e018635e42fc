//! The shared token bucket the delivery worker paces each channel with, on the real Redis.
use std::time::Duration;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::ratelimit::{Decision, Limiter};

#[tokio::test]
async fn a_channel_reserves_slots_up_to_one_second_ahead_then_is_told_to_wait() {
    let mut settings: Settings = Settings::figment().extract().unwrap();
    settings.redis.key_prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let limiter = Limiter::new(ServiceName::Gateway, &settings.redis, &settings.rate_limit);
    let ahead = Duration::from_secs(1);

    // 10 per second, a burst of 1: one now, ten more spread over the next second.
    let mut decisions = Vec::new();
    for _ in 0..12 {
        decisions.push(limiter.take("channel:c", 10.0, 1, ahead).await);
    }
    assert_eq!(decisions[0], Decision::Allow);
    let waits: Vec<Duration> = decisions[1..11]
        .iter()
        .map(|d| match d {
            Decision::After(wait) => *wait,
            other => panic!("expected a reservation, got {other:?}"),
        })
        .collect();
    assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
    assert!(
        waits[0] <= Duration::from_millis(110) && waits[9] <= ahead,
        "{waits:?}"
    );
    assert!(
        matches!(decisions[11], Decision::Limit(wait) if wait <= Duration::from_millis(110)),
        "beyond a second ahead: {:?}",
        decisions[11]
    );
    // Another key is another bucket.
    assert_eq!(
        limiter.take("channel:d", 10.0, 1, ahead).await,
        Decision::Allow
    );
}
