//! Channels as webhooks see them (row and opened credentials), kept in memory for a short
//! time: every webhook names its channel, and reading the row and opening its sealed
//! credentials per webhook costs more than the rest of accepting it.
//!
//! An update or disconnect through this gateway drops the entry at once; one made through
//! another replica is seen once the entry expires (`gateway.channel_cache_ms`).
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use sqlx::PgPool;
use uuid::Uuid;

use crate::credentials::{Cipher, Credentials};
use crate::error::Error;
use crate::store::{self, Channel};

/// Channels kept at most; beyond, the least used are read again when needed.
const CAPACITY: usize = 10_000;

/// A live channel with its opened credentials.
pub struct Connected {
    pub channel: Channel,
    pub credentials: Credentials,
}

#[derive(Clone)]
pub struct ChannelCache {
    entries: Arc<Cache<Uuid, (Instant, Arc<Connected>)>>,
    ttl: Duration,
}

impl ChannelCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Arc::new(Cache::new(CAPACITY)),
            ttl,
        }
    }

    /// The live channel `id`, from memory while fresh; `None` when there is none (never
    /// remembered, so a channel connected a moment ago is found at once).
    pub async fn get(
        &self,
        pool: &PgPool,
        cipher: &Cipher,
        id: Uuid,
    ) -> Result<Option<Arc<Connected>>, Error> {
        if let Some((loaded, connected)) = self.entries.get(&id)
            && loaded.elapsed() < self.ttl
        {
            return Ok(Some(connected));
        }
        let Some(channel) = store::channel_by_id(pool, id).await? else {
            self.entries.remove(&id);
            return Ok(None);
        };
        let credentials = channel.credentials(cipher).map_err(|e| {
            anyhow::anyhow!("the credentials of channel {id} cannot be opened: {e}")
        })?;
        let connected = Arc::new(Connected {
            channel,
            credentials,
        });
        self.entries.insert(id, (Instant::now(), connected.clone()));
        Ok(Some(connected))
    }

    /// Forgets channel `id` after it changed or was disconnected.
    pub fn forget(&self, id: Uuid) {
        self.entries.remove(&id);
    }
}
