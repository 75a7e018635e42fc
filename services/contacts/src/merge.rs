//! Merging two Contacts that are one person, and suggesting which ones might be.
use std::collections::{BTreeSet, HashMap};

use ism_platform::error::FieldError;
use ism_platform::events::{self, topics};
use ism_proto::contacts::v1 as pb;
use ism_proto::events::v1::ContactMerged;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Error;
use crate::fields;
use crate::profile::Profile;
use crate::store::{self, COLUMNS, Contact, emit};
use crate::tags::tag_events;

/// Which Contact's value wins a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Target,
    Source,
}

impl Side {
    pub fn from_proto(side: i32) -> Self {
        match pb::MergeSide::try_from(side) {
            Ok(pb::MergeSide::Source) => Side::Source,
            _ => Side::Target,
        }
    }
}

/// What to merge and how to settle conflicts.
#[derive(Debug, Clone)]
pub struct Merge {
    pub target: Uuid,
    pub source: Uuid,
    pub target_version: i64,
    pub conflicts: Side,
    /// Per default field name or custom key, overriding `conflicts`.
    pub choices: HashMap<String, Side>,
}

impl Merge {
    fn side(&self, key: &str) -> Side {
        self.choices.get(key).copied().unwrap_or(self.conflicts)
    }

    /// A value only one side has is kept; equal values are kept; else the chosen side's.
    fn pick<'a>(&self, key: &str, target: &'a str, source: &'a str) -> &'a str {
        match (target.is_empty(), source.is_empty()) {
            (true, _) => source,
            (_, true) => target,
            _ if self.side(key) == Side::Source => source,
            _ => target,
        }
    }
}

/// Merges `m.source` into `m.target` in one transaction: settles the default and custom
/// fields, moves identities, unites Tags, keeps the earliest creation, the latest
/// interaction and a block, then deletes the source (not restorable) and emits
/// `contacts.contact.merged` (keyed by the source), `contacts.contact.updated`,
/// `field_changed` and `tag.added` for what the target gained.
pub async fn merge(pool: &PgPool, workspace_id: Uuid, m: &Merge) -> Result<Contact, Error> {
    if m.target == m.source {
        return Err(FieldError::new("source_id", "must differ from target_id").into());
    }
    let mut tx = pool.begin().await?;
    let schema = fields::schema(&mut tx, workspace_id).await?;
    if let Some(key) = m
        .choices
        .keys()
        .find(|k| !Profile::FIELDS.contains(&k.as_str()) && !schema.fields.contains_key(*k))
    {
        return Err(FieldError::new("field_choices", format!("{key}: no such field")).into());
    }
    // Both rows locked in id order, so two opposite merges cannot deadlock.
    let rows: Vec<Contact> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts
         WHERE workspace_id = $1 AND id = ANY($2) AND deleted_at IS NULL ORDER BY id FOR UPDATE"
    )))
    .bind(workspace_id)
    .bind([m.target, m.source])
    .fetch_all(&mut *tx)
    .await?;
    let find = |id| {
        rows.iter()
            .find(|c| c.id == id)
            .ok_or(Error::NotFound("contact"))
    };
    let (target, source) = (find(m.target)?, find(m.source)?);
    if target.version != m.target_version {
        return Err(crate::error::stale_version(target.version));
    }

    let (ours, theirs) = (target.profile(), source.profile());
    let picked: [String; 8] =
        std::array::from_fn(|i| m.pick(Profile::FIELDS[i], ours[i], theirs[i]).to_owned());
    let mut changed: Vec<String> = Profile::FIELDS
        .iter()
        .zip(ours.iter().zip(&picked))
        .filter(|(_, (old, new))| **old != new.as_str())
        .map(|(key, _)| (*key).to_owned())
        .collect();
    let profile = Profile::from_values(picked);

    let (mut custom, theirs) = (target.custom.object(), source.custom.object());
    let mut field_changes = Vec::new();
    let keys: BTreeSet<String> = custom.keys().chain(theirs.keys()).cloned().collect();
    for key in keys {
        let (old, other) = (custom.get(&key).cloned(), theirs.get(&key).cloned());
        let new = match (&old, &other) {
            (Some(_), Some(_)) if m.side(&key) == Side::Source => other,
            (None, _) => other,
            _ => old.clone(),
        };
        if new != old {
            if let Some(v) = &new {
                custom.insert(key.clone(), v.clone());
            }
            changed.push(key.clone());
            field_changes.push((key, old, new));
        }
    }
    if source.blocked && !target.blocked {
        changed.push("blocked".into());
    }
    // Either person asking for no broadcasts is enough.
    if source.broadcast_opt_out && !target.broadcast_opt_out {
        changed.push("broadcast_opt_out".into());
    }

    // The target keeps its stage; one without takes the source's.
    let stage = match target.lifecycle_stage.as_str() {
        "" => source.lifecycle_stage.clone(),
        ours => ours.to_owned(),
    };
    if stage != target.lifecycle_stage {
        changed.push("lifecycle_stage".into());
    }
    store::save(&mut tx, workspace_id, m.target, &profile, custom, &stage).await?;
    let contact: Contact = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contacts SET blocked = blocked OR $3,
             broadcast_opt_out = broadcast_opt_out OR $6,
             created_at = least(created_at, $4),
             last_interaction_at = greatest(last_interaction_at, $5)
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(m.target)
    .bind(source.blocked)
    .bind(source.created_at)
    .bind(source.last_interaction_at)
    .bind(source.broadcast_opt_out)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE channel_identities SET contact_id = $3 WHERE workspace_id = $1 AND contact_id = $2",
    )
    .bind(workspace_id)
    .bind(m.source)
    .bind(m.target)
    .execute(&mut *tx)
    .await?;
    // A deleted Tag's places still being swept are not carried over.
    let gained: Vec<String> = sqlx::query_scalar(
        "INSERT INTO contact_tags (workspace_id, tag_id, contact_id)
         SELECT ct.workspace_id, ct.tag_id, $3 FROM contact_tags ct
         JOIN tags t ON t.id = ct.tag_id
         WHERE ct.workspace_id = $1 AND ct.contact_id = $2
         ON CONFLICT DO NOTHING
         RETURNING (SELECT name FROM tags WHERE id = tag_id)",
    )
    .bind(workspace_id)
    .bind(m.source)
    .bind(m.target)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE contacts SET deleted_at = now(), merged_into = $3, version = version + 1,
             updated_at = now()
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(m.source)
    .bind(m.target)
    .execute(&mut *tx)
    .await?;

    let merged = ContactMerged {
        target_contact_id: m.target.to_string(),
        source_contact_id: m.source.to_string(),
    };
    emit(
        &mut tx,
        &topics::CONTACT_MERGED,
        workspace_id,
        m.source,
        &merged,
    )
    .await?;
    if !changed.is_empty() {
        store::emit_changes(&mut tx, &schema, &contact, changed, field_changes).await?;
    }
    if contact.lifecycle_stage != target.lifecycle_stage {
        store::emit_stage_change(&mut tx, &contact, &target.lifecycle_stage).await?;
    }
    let gained = gained.into_iter().map(|tag| (m.target, tag));
    events::enqueue_all(
        &mut tx,
        &tag_events(&topics::TAG_ADDED, workspace_id, gained),
    )
    .await?;
    tx.commit().await?;
    Ok(contact)
}

/// Contacts sharing a normalized email or phone.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Duplicates {
    /// 1 for email, 2 for phone (the DuplicateReason numbers).
    pub reason: i32,
    pub value: String,
    /// Oldest first, at most 20.
    pub ids: Vec<Uuid>,
}

/// Groups of live Contacts with the same email or phone, by reason then value, after the
/// keyset position `after`. Suggestions only: nothing is merged.
pub async fn duplicates(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<(i32, String)>,
    limit: i64,
) -> Result<Vec<Duplicates>, Error> {
    let (reason, value) = after.unzip();
    Ok(sqlx::query_as(
        "SELECT reason, value, ids FROM (
             SELECT 1 AS reason, email AS value, (array_agg(id ORDER BY created_at, id))[1:20] AS ids
             FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL AND email <> ''
             GROUP BY email HAVING count(*) > 1
             UNION ALL
             SELECT 2, phone, (array_agg(id ORDER BY created_at, id))[1:20]
             FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL AND phone <> ''
             GROUP BY phone HAVING count(*) > 1
         ) d
         WHERE $2::int IS NULL OR (reason, value) > ($2, $3)
         ORDER BY reason, value LIMIT $4",
    )
    .bind(workspace_id)
    .bind(reason)
    .bind(value)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
