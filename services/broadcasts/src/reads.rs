//! Reads: broadcasts with their live stats, and pages of broadcasts and recipients.
use ism_platform::paging;
use ism_proto::broadcasts::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Error;
use crate::states::{RecipientStatus, State};
use crate::store::{self, Broadcast};
use crate::wire;

/// `broadcasts` in the API's form, each with stats counted from its recipients.
pub async fn with_stats(
    pool: &PgPool,
    broadcasts: Vec<Broadcast>,
) -> Result<Vec<pb::Broadcast>, Error> {
    let ids: Vec<Uuid> = broadcasts.iter().map(|b| b.id).collect();
    let mut stats = wire::stats_by_broadcast(&store::outcomes(pool, &ids).await?);
    Ok(broadcasts
        .into_iter()
        .map(|b| {
            let counted = stats.remove(&b.id).unwrap_or_default();
            wire::broadcast(b, counted)
        })
        .collect())
}

/// A page of the Workspace's broadcasts, newest first.
pub async fn page(
    pool: &PgPool,
    workspace_id: Uuid,
    states: &[State],
    label: Option<&str>,
    limit: i64,
    token: &str,
) -> Result<(Vec<pb::Broadcast>, String), Error> {
    let before: Option<Uuid> = paging::decode_token(token)?;
    let rows = store::list(pool, workspace_id, states, label, before, limit + 1).await?;
    let (rows, next) = paging::finish(rows, limit, |b| b.id);
    Ok((with_stats(pool, rows).await?, next))
}

/// A page of `broadcast_id`'s recipients, in Contact order.
pub async fn recipients(
    pool: &PgPool,
    broadcast_id: Uuid,
    statuses: &[RecipientStatus],
    limit: i64,
    token: &str,
) -> Result<(Vec<pb::Recipient>, String), Error> {
    let after: Option<Uuid> = paging::decode_token(token)?;
    let rows = store::recipients(pool, broadcast_id, statuses, after, limit + 1).await?;
    let (rows, next) = paging::finish(rows, limit, |r| r.contact_id);
    Ok((rows.into_iter().map(wire::recipient).collect(), next))
}
