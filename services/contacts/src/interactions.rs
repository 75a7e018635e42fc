//! When each Contact last wrote, recorded beside ResolveContact rather than inside it:
//! the call answers from one read, and the times are written in bulk about once a
//! second (ADR 14). A Contact's time moves at most once a minute, so a busy conversation
//! does not turn every message into a write; it is not a change of the profile, so
//! neither the version nor an event.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Error;
use crate::store::Contact;

/// How often recorded times are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Recorded times that make a write start at once, so memory stays bounded under bursts.
const FLUSH_AT: usize = 5000;

/// Interaction times recorded and not yet written, by Contact.
#[derive(Debug, Default)]
pub struct Interactions {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    full: Notify,
}

impl Interactions {
    /// Records that `contact` just wrote, unless it did within the last minute, and shows
    /// the time on it.
    pub fn record(&self, contact: &mut Contact) {
        let now = Utc::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let last = pending
            .get(&contact.id)
            .copied()
            .max(contact.last_interaction_at);
        if last.is_some_and(|at| now - at < chrono::Duration::minutes(1)) {
            contact.last_interaction_at = last;
            return;
        }
        pending.insert(contact.id, now);
        contact.last_interaction_at = Some(now);
        if pending.len() >= FLUSH_AT {
            self.full.notify_one();
        }
    }

    /// Writes the recorded times (never moving one back); returns how many Contacts
    /// changed.
    pub async fn flush(&self, pool: &PgPool) -> Result<u64, Error> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        // In id order, so concurrent writers (other replicas) lock rows in one order.
        let mut rows: Vec<(Uuid, DateTime<Utc>)> = taken.into_iter().collect();
        rows.sort_unstable();
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = rows.iter().copied().unzip();
        let written = sqlx::query(
            // `c.id = ANY` keeps the contacts side to index probes; joined to the
            // list alone, the planner hashed it over a scan of every Contact. Planned
            // anew with its values on each (once a second) call, never as a cached
            // generic plan: made from a small table's statistics, that scans (ADR 21).
            "UPDATE contacts c SET last_interaction_at = u.at
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE c.id = ANY($1) AND c.id = u.id
               AND (c.last_interaction_at IS NULL OR c.last_interaction_at < u.at)",
        )
        .bind(&ids)
        .bind(&times)
        .persistent(false)
        .execute(pool)
        .await;
        match written {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) => {
                // Kept for the next attempt, unless newer times were recorded meanwhile.
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (id, at) in rows {
                    pending.entry(id).or_insert(at);
                }
                Err(e.into())
            }
        }
    }

    /// Writes recorded times every second, or at once when many wait, until `shutdown`;
    /// then writes what is left.
    pub async fn run(&self, pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
                _ = self.full.notified() => false,
            };
            if let Err(e) = self.flush(&pool).await {
                tracing::warn!(error = %e, "writing interaction times failed; retrying");
            }
            if stopping {
                return Ok(());
            }
        }
    }
}
