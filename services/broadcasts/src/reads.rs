//! Reads: broadcasts with their live stats, and pages of broadcasts and recipients.
use ism_platform::paging;
use ism_platform::spreadsheet::neutralised;
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

/// Recipients per chunk of a CSV export.
const EXPORT_CHUNK: i64 = 1000;
const EXPORT_COLUMNS: [&str; 6] = [
    "contact_id",
    "external_id",
    "status",
    "reason",
    "external_message_id",
    "updated_at",
];

/// `broadcast_id`'s recipients as CSV chunks, read a page at a time so an export of any
/// size holds one page in memory; a CSV library quotes what needs quoting.
pub fn export(
    pool: PgPool,
    broadcast_id: Uuid,
    statuses: Vec<RecipientStatus>,
) -> impl futures::Stream<Item = Result<Vec<u8>, Error>> + Send + 'static {
    futures::stream::try_unfold(Some((None, true)), move |state| {
        let (pool, statuses) = (pool.clone(), statuses.clone());
        async move {
            let Some((after, first)) = state else {
                return Ok(None);
            };
            let rows =
                store::recipients(&pool, broadcast_id, &statuses, after, EXPORT_CHUNK).await?;
            let next = (rows.len() as i64 == EXPORT_CHUNK)
                .then(|| rows.last().map(|r| (Some(r.contact_id), false)))
                .flatten();
            let mut csv = csv::Writer::from_writer(Vec::new());
            let written: Result<(), csv::Error> = (|| {
                if first {
                    csv.write_record(EXPORT_COLUMNS)?;
                }
                for r in &rows {
                    csv.write_record([
                        r.contact_id.to_string(),
                        neutralised(&r.external_id).into_owned(),
                        r.status.to_string(),
                        neutralised(&r.reason).into_owned(),
                        neutralised(&r.external_message_id).into_owned(),
                        r.updated_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    ])?;
                }
                Ok(())
            })();
            written.map_err(|e| Error::Unexpected(e.into()))?;
            let data = csv
                .into_inner()
                .map_err(|e| Error::Unexpected(anyhow::anyhow!("{e}")))?;
            Ok(Some((data, next)))
        }
    })
}
