//! The delivery log: deliveries and their attempts, resending one, and recovering an
//! endpoint's failed and skipped deliveries since a time.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ism_platform::paging;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::Error;
use crate::states::DeliveryState;
use crate::store::{self, Attempt, Delivery};

/// How far back RecoverWebhookEndpoint reaches.
const RECOVER_DAYS: i64 = 14;

#[derive(Clone)]
pub struct Log {
    pub pool: PgPool,
    pub wake: Arc<Notify>,
}

impl Log {
    /// A page of an endpoint's deliveries, newest first, and the next page's token.
    pub async fn deliveries(
        &self,
        workspace_id: Uuid,
        endpoint_id: Uuid,
        state: Option<DeliveryState>,
        event_type: Option<&str>,
        page_size: i64,
        after: Option<Uuid>,
    ) -> Result<(Vec<Delivery>, String), Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        store::endpoint(&mut conn, workspace_id, endpoint_id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        let rows = store::deliveries(
            &mut conn,
            workspace_id,
            endpoint_id,
            state,
            event_type,
            after,
            page_size + 1,
        )
        .await?;
        Ok(paging::finish(rows, page_size, |d| d.id))
    }

    pub async fn attempts(
        &self,
        workspace_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<Vec<Attempt>, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        store::delivery(&mut conn, workspace_id, delivery_id)
            .await?
            .ok_or(Error::NotFound("webhook delivery"))?;
        Ok(store::attempts(&mut conn, delivery_id).await?)
    }

    pub async fn resend(&self, workspace_id: Uuid, delivery_id: Uuid) -> Result<Delivery, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let delivery = store::delivery(&mut conn, workspace_id, delivery_id)
            .await?
            .ok_or(Error::NotFound("webhook delivery"))?;
        enabled(&mut conn, workspace_id, delivery.endpoint_id).await?;
        if !store::resend(&mut conn, workspace_id, delivery_id).await? {
            return Err(Error::NotFound("webhook delivery"));
        }
        self.wake.notify_one();
        store::delivery(&mut conn, workspace_id, delivery_id)
            .await?
            .ok_or(Error::NotFound("webhook delivery"))
    }

    pub async fn recover(
        &self,
        workspace_id: Uuid,
        endpoint_id: Uuid,
        since: Option<DateTime<Utc>>,
    ) -> Result<u64, Error> {
        let earliest = Utc::now() - chrono::Duration::days(RECOVER_DAYS);
        let since = match since {
            None => return Err(Error::invalid("since", "is required")),
            Some(since) if since < earliest => {
                return Err(Error::invalid(
                    "since",
                    format!("must be within the last {RECOVER_DAYS} days"),
                ));
            }
            Some(since) => since,
        };
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        enabled(&mut conn, workspace_id, endpoint_id).await?;
        let recovered = store::recover(&mut conn, endpoint_id, since).await?;
        self.wake.notify_one();
        Ok(recovered)
    }
}

/// Refuses work for a disabled endpoint, which would otherwise wait unseen until it is
/// enabled again.
async fn enabled(conn: &mut PgConnection, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
    let endpoint = store::endpoint(conn, workspace_id, id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))?;
    if !endpoint.enabled {
        return Err(Error::precondition(
            "endpoint",
            "is disabled: enable it first, then resend or recover",
        ));
    }
    Ok(())
}
