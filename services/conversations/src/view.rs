//! A view's page and count when its conditions include the Contact: the conversation
//! conditions pick candidates in view order, and the contacts service says which of
//! their Contacts match the view's Filter (this service never reads Contacts itself).
use chrono::{DateTime, Utc};
use ism_platform::error::FieldError;
use ism_proto::contacts::v1 as contacts;
use sqlx::PgPool;
use uuid::Uuid;

use crate::directory::{CONTACT_FILTER, Directory, MAX_CANDIDATES};
use crate::error::Error;
use crate::inbox::{self, Filter};
use crate::store::Conversation;

/// Candidates of the first batch; each next batch doubles, up to this many.
const FIRST_BATCH: i64 = 200;
const LAST_BATCH: i64 = 5_000;

/// A view: conversation conditions, and optionally a Filter on their Contacts.
#[derive(Debug, Clone)]
pub struct View {
    pub conversations: Filter,
    pub contacts: Option<contacts::Filter>,
}

/// A saved Filter contacts no longer takes (a field it names was deleted since) is the
/// inbox's state, not the caller's request.
fn stale(e: Error) -> Error {
    match e {
        Error::Invalid(violations) if violations.names(CONTACT_FILTER) => {
            Error::Precondition(FieldError::new(
                "inbox_id",
                format!("its contact filter no longer fits: {violations}"),
            ))
        }
        other => other,
    }
}

/// Up to `limit` conversations of the view after `before`, most recently active first.
/// Candidates are read in that same order, so the last row shown is where the next page
/// starts, whatever the Contacts matched.
pub async fn page(
    pool: &PgPool,
    directory: &Directory,
    workspace_id: Uuid,
    view: &View,
    mut before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Conversation>, Error> {
    let Some(filter) = &view.contacts else {
        return inbox::page(pool, workspace_id, &view.conversations, before, limit).await;
    };
    let mut found = Vec::new();
    let mut batch = FIRST_BATCH.max(limit);
    loop {
        let rows = inbox::page(pool, workspace_id, &view.conversations, before, batch).await?;
        let exhausted = rows.len() < batch as usize;
        let mut candidates: Vec<Uuid> = rows.iter().map(|c| c.contact_id).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let matched = directory
            .match_contacts(workspace_id, filter, &candidates)
            .await
            .map_err(stale)?;
        before = rows.last().map(|c| (c.last_message_at, c.id));
        for row in rows {
            if matched.contains(&row.contact_id) {
                found.push(row);
                if found.len() as i64 == limit {
                    return Ok(found);
                }
            }
        }
        if exhausted {
            return Ok(found);
        }
        batch = (batch * 2).min(LAST_BATCH);
    }
}

/// How many conversations the view holds.
pub async fn count(
    pool: &PgPool,
    directory: &Directory,
    workspace_id: Uuid,
    view: &View,
) -> Result<i64, Error> {
    let Some(filter) = &view.contacts else {
        return inbox::count(pool, workspace_id, &view.conversations).await;
    };
    let per_contact = inbox::count_per_contact(pool, workspace_id, &view.conversations).await?;
    let counts = futures::future::try_join_all(
        per_contact
            .chunks(MAX_CANDIDATES)
            .map(|chunk| matching_count(directory, workspace_id, filter, chunk)),
    )
    .await?;
    Ok(counts.into_iter().sum())
}

/// How many conversations the Contacts of `per_contact` that match `filter` hold.
async fn matching_count(
    directory: &Directory,
    workspace_id: Uuid,
    filter: &contacts::Filter,
    per_contact: &[(Uuid, i64)],
) -> Result<i64, Error> {
    let ids: Vec<Uuid> = per_contact.iter().map(|&(id, _)| id).collect();
    let matched = directory
        .match_contacts(workspace_id, filter, &ids)
        .await
        .map_err(stale)?;
    Ok(per_contact
        .iter()
        .filter(|(id, _)| matched.contains(id))
        .map(|&(_, n)| n)
        .sum())
}
