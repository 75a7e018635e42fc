//! Tags: manual labels on Contacts, created on first use, renamed and deleted across
//! the Workspace.
use ism_platform::error::FieldError;
use ism_platform::events::{self, Topic, topics};
use ism_proto::events::v1::{ContactTagChanged, Event, TagDeleted, TagRenamed};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::store::emit;

/// One `event_type` event (`contacts.tag.added` or `.removed`) per (Contact, Tag) pair,
/// keyed by the Contact, for one bulk outbox insert.
pub(crate) fn tag_events(
    topic: &Topic<ContactTagChanged>,
    workspace_id: Uuid,
    pairs: impl IntoIterator<Item = (Uuid, String)>,
) -> Vec<Event> {
    pairs
        .into_iter()
        .map(|(contact_id, tag)| {
            let contact_id = contact_id.to_string();
            topic.event(
                workspace_id,
                &contact_id,
                &ContactTagChanged {
                    contact_id: contact_id.clone(),
                    tag,
                },
            )
        })
        .collect()
}

/// Most Contacts one AddTags / RemoveTags call touches.
pub const MAX_CONTACTS: usize = 1000;
/// Most Tags one call names.
pub const MAX_TAGS: usize = 50;

/// A trimmed Tag name of 1 to 64 characters, or an error naming `field`.
pub fn name(field: &'static str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 64 {
        return Err(FieldError::new(
            field,
            "each tag must be 1 to 64 characters",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "tags cannot contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// Checks the sizes of a bulk request and its Tag names.
pub fn check_bulk(contacts: &[Uuid], tags: &[String]) -> Result<Vec<String>, FieldError> {
    if contacts.is_empty() || contacts.len() > MAX_CONTACTS {
        return Err(FieldError::new(
            "contact_ids",
            format!("1 to {MAX_CONTACTS} contacts"),
        ));
    }
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(FieldError::new("tags", format!("1 to {MAX_TAGS} tags")));
    }
    let mut names: Vec<String> = tags
        .iter()
        .map(|t| name("tags", t))
        .collect::<Result<_, _>>()?;
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup_by_key(|n| n.to_lowercase());
    Ok(names)
}

/// `contacts` without repeats; NOT_FOUND unless every one is a live Contact of the
/// Workspace: another Workspace's Contact is answered as one that does not exist.
async fn require_live(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    contacts: &[Uuid],
) -> Result<Vec<Uuid>, Error> {
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts
         WHERE workspace_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
    )
    .bind(workspace_id)
    .bind(contacts)
    .fetch_one(conn)
    .await?;
    let mut distinct = contacts.to_vec();
    distinct.sort();
    distinct.dedup();
    if live != distinct.len() as i64 {
        return Err(Error::NotFound("contact"));
    }
    Ok(distinct)
}

/// Adds `tags` to every live Contact of `contacts`; all must exist in the Workspace.
/// Emits `contacts.tag.added` per new pair; returns how many pairs were new.
pub async fn add(
    pool: &PgPool,
    workspace_id: Uuid,
    contacts: &[Uuid],
    tags: &[String],
) -> Result<i64, Error> {
    let mut tx = pool.begin().await?;
    let distinct = require_live(&mut tx, workspace_id, contacts).await?;
    // Existing tags keep their spelling; new ones are created, racing creators meet at
    // the unique index and both read the winner.
    sqlx::query(
        "INSERT INTO tags (id, workspace_id, name)
         SELECT gen_random_uuid(), $1, n FROM unnest($2::text[]) AS n
         ON CONFLICT DO NOTHING",
    )
    .bind(workspace_id)
    .bind(tags)
    .execute(&mut *tx)
    .await?;
    let added: Vec<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO contact_tags (workspace_id, tag_id, contact_id)
         SELECT $1, t.id, c FROM tags t, unnest($3::uuid[]) AS c
         WHERE t.workspace_id = $1 AND lower(t.name) = ANY(SELECT lower(n) FROM unnest($2::text[]) AS n)
         ON CONFLICT DO NOTHING
         RETURNING contact_id, (SELECT name FROM tags WHERE id = tag_id)",
    )
    .bind(workspace_id)
    .bind(tags)
    .bind(&distinct)
    .fetch_all(&mut *tx)
    .await?;
    let count = added.len() as i64;
    events::enqueue_all(
        &mut tx,
        &tag_events(&topics::TAG_ADDED, workspace_id, added),
    )
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// Removes `tags` from `contacts`, which must all be live Contacts of the Workspace;
/// emits `contacts.tag.removed` per removed pair.
pub async fn remove(
    pool: &PgPool,
    workspace_id: Uuid,
    contacts: &[Uuid],
    tags: &[String],
) -> Result<i64, Error> {
    let mut tx = pool.begin().await?;
    require_live(&mut tx, workspace_id, contacts).await?;
    let removed: Vec<(Uuid, String)> = sqlx::query_as(
        "DELETE FROM contact_tags ct USING tags t
         WHERE ct.tag_id = t.id AND t.workspace_id = $1 AND ct.workspace_id = $1
           AND ct.contact_id = ANY($3)
           AND lower(t.name) = ANY(SELECT lower(n) FROM unnest($2::text[]) AS n)
         RETURNING ct.contact_id, t.name",
    )
    .bind(workspace_id)
    .bind(tags)
    .bind(contacts)
    .fetch_all(&mut *tx)
    .await?;
    let count = removed.len() as i64;
    events::enqueue_all(
        &mut tx,
        &tag_events(&topics::TAG_REMOVED, workspace_id, removed),
    )
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// Every Tag of the Workspace with how many live Contacts carry it, alphabetically.
pub async fn list(pool: &PgPool, workspace_id: Uuid) -> Result<Vec<(String, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT t.name, count(c.id) FROM tags t
         LEFT JOIN contact_tags ct ON ct.tag_id = t.id
         LEFT JOIN contacts c ON c.id = ct.contact_id AND c.deleted_at IS NULL
         WHERE t.workspace_id = $1 GROUP BY t.id, t.name ORDER BY lower(t.name)",
    )
    .bind(workspace_id)
    .fetch_all(pool)
    .await?)
}

/// Renames a Tag everywhere at once (Contacts point at the Tag, not its name).
pub async fn rename(pool: &PgPool, workspace_id: Uuid, from: &str, to: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let renamed = sqlx::query(
        "UPDATE tags SET name = $3 WHERE workspace_id = $1 AND lower(name) = lower($2)",
    )
    .bind(workspace_id)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await;
    match renamed.map_err(Error::from) {
        Ok(r) if r.rows_affected() == 0 => return Err(Error::NotFound("tag")),
        Ok(_) => {}
        // The taken name is the request's new one.
        Err(Error::AlreadyExists(taken)) => {
            return Err(Error::AlreadyExists(FieldError::new(
                "new_name",
                taken.reason,
            )));
        }
        Err(e) => return Err(e),
    }
    let payload = TagRenamed {
        old_name: from.to_owned(),
        new_name: to.to_owned(),
    };
    emit(
        &mut tx,
        &topics::TAG_RENAMED,
        workspace_id,
        workspace_id,
        &payload,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a Tag: gone from every Contact at once, since every read reaches Tags through
/// `tags`; its `contact_tags` rows are left to [`sweep`].
pub async fn delete(pool: &PgPool, workspace_id: Uuid, name: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let deleted: Option<String> = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM tags WHERE workspace_id = $1 AND lower(name) = lower($2)
             RETURNING id, workspace_id, name),
         swept AS (
             INSERT INTO tag_sweeps (tag_id, workspace_id) SELECT id, workspace_id FROM gone)
         SELECT name FROM gone",
    )
    .bind(workspace_id)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let name = deleted.ok_or(Error::NotFound("tag"))?;
    emit(
        &mut tx,
        &topics::TAG_DELETED,
        workspace_id,
        workspace_id,
        &TagDeleted { name },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes up to `batch` Contacts' places of deleted Tags in one short statement, and
/// forgets the Tags left with none; returns how many it removed.
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<u64, Error> {
    let removed = sqlx::query(
        "DELETE FROM contact_tags WHERE (tag_id, contact_id) IN (
             SELECT ct.tag_id, ct.contact_id FROM tag_sweeps s
             JOIN contact_tags ct ON ct.tag_id = s.tag_id LIMIT $1)",
    )
    .bind(batch)
    .execute(pool)
    .await?
    .rows_affected();
    if removed < batch as u64 {
        sqlx::query(
            "DELETE FROM tag_sweeps s
             WHERE NOT EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.tag_id = s.tag_id)",
        )
        .execute(pool)
        .await?;
    }
    Ok(removed)
}
