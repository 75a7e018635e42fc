//! Group commit for inbound messages: webhooks arriving together are recorded in one
//! transaction, and each is answered only once the transaction holding it has committed,
//! so a provider never hears 200 for a message that is not durable.
//!
//! Under load a transaction per webhook spends Postgres on round trips and commits; here
//! a batch is whatever queued while the previous one committed, so at low load it is one
//! webhook (no added wait) and under load a few hundred.
use ism_platform::batch::Batcher;
use sqlx::PgPool;

use crate::error::Error;
use crate::store::{self, Arrival};

/// Messages recorded in one transaction at most.
const MAX_BATCH: usize = 256;
/// Transactions in flight at once: batches gather while others wait on their commit
/// (measured: four halve the p99 of two at 2,000 webhooks/s on two cores).
const WRITERS: usize = 4;

/// Hands inbound messages to the writers; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    writers: Batcher<Arrival, bool>,
}

impl Intake {
    /// Starts the writers on `pool`. They stop once every [`Intake`] is dropped and the
    /// queue is drained: webhooks in flight at shutdown are still recorded and answered.
    pub fn start(pool: PgPool) -> Self {
        let writers = Batcher::start(WRITERS, MAX_BATCH, move |arrivals: Vec<Arrival>| {
            let pool = pool.clone();
            async move {
                let count = arrivals.len();
                metrics::histogram!("ism_gateway_intake_batch_size").record(count as f64);
                store::accept_inbound(&pool, arrivals).await.map_err(|e| {
                    tracing::error!(error = %e, count, "recording inbound messages failed");
                    anyhow::anyhow!("recording the message failed: {e}")
                })
            }
        });
        Self { writers }
    }

    /// Records `arrival` durably with its event: `true` when new, `false` when this
    /// channel already had this provider message id.
    pub async fn accept(&self, arrival: Arrival) -> Result<bool, Error> {
        Ok(self.writers.call(arrival).await?)
    }
}
