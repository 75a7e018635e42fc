//! Contacts and channel identities in Postgres.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use ism_platform::events::{self, Topic, topics};
use ism_proto::contacts::v1 as pb;
use ism_proto::events::v1::{
    ContactBlocked, ContactCreated, ContactDeleted, ContactFieldChanged, ContactLifecycleUpdated,
    ContactOptOutChanged, ContactUpdated,
};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::fields::{self, Schema};
use crate::lifecycle;
use crate::profile::{self, Profile};
use crate::values::Custom;

/// How long a deleted Contact can be restored before it is purged.
pub const RESTORE_PERIOD: Duration = Duration::days(30);

/// A Contact's row.
#[derive(Debug, Clone, FromRow)]
pub struct Contact {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub language: String,
    pub country: String,
    pub timezone: String,
    pub picture_url: String,
    pub last_interaction_at: Option<DateTime<Utc>>,
    pub blocked: bool,
    pub broadcast_opt_out: bool,
    /// The key of its lifecycle stage, or empty.
    pub lifecycle_stage: String,
    pub custom: Custom,
    /// The ids of its Tags, kept equal to its `contact_tags` rows by a trigger.
    pub tag_ids: Vec<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Contact {
    /// The default fields, in the order of [`Profile::FIELDS`].
    pub fn profile(&self) -> [&String; 8] {
        ism_proto::profile_values!(self)
    }
}

/// Every column of [`Contact`], for `SELECT` and `RETURNING`.
pub const COLUMNS: &str = "id, workspace_id, first_name, last_name, email, phone, language, country, \
     timezone, picture_url, last_interaction_at, blocked, broadcast_opt_out, lifecycle_stage, custom, tag_ids, version, \
     created_at, updated_at, deleted_at";

/// The same columns qualified by the alias `c`.
pub(crate) const C_COLUMNS: &str = "c.id, c.workspace_id, c.first_name, c.last_name, c.email, c.phone, c.language, \
     c.country, c.timezone, c.picture_url, c.last_interaction_at, c.blocked, c.broadcast_opt_out, c.lifecycle_stage, \
     c.custom, c.tag_ids, c.version, \
     c.created_at, c.updated_at, c.deleted_at";

/// A channel identity of a Contact.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct Identity {
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub external_id: String,
    pub display_name: String,
}

/// What identifies a person on a channel, with a name hint for a new Contact.
pub struct IdentityKey<'a> {
    pub channel_id: Uuid,
    pub external_id: &'a str,
    pub display_name: &'a str,
}

/// A Contact with everything its API form needs.
#[derive(Debug)]
pub struct Full {
    pub contact: Contact,
    /// Its channel identities, oldest first.
    pub identities: Vec<Identity>,
    /// Its Tag names, alphabetically.
    pub tags: Vec<String>,
    /// Its custom values in API form, by key.
    pub custom_fields: BTreeMap<String, pb::FieldValue>,
}

/// Tag names read so far, by id (`None`: a deleted Tag still being swept). The batches
/// of one stream share them, so each Tag's name is read once per stream, not once per
/// batch; a Tag first met later is read then.
#[derive(Debug, Clone, Default)]
pub struct TagNames(Arc<RwLock<HashMap<Uuid, Option<String>>>>);

impl TagNames {
    /// The names of those of `ids` whose Tags exist, reading the ones not known yet.
    async fn of(
        &self,
        pool: &PgPool,
        workspace_id: Uuid,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, String>, Error> {
        let missing: Vec<Uuid> = {
            let known = self.0.read().unwrap_or_else(|p| p.into_inner());
            ids.iter()
                .filter(|id| !known.contains_key(id))
                .copied()
                .collect()
        };
        if !missing.is_empty() {
            let mut read = tag_names(pool, workspace_id, &missing).await?;
            let read = missing.into_iter().map(|id| (id, read.remove(&id)));
            self.0
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .extend(read);
        }
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        Ok(ids
            .into_iter()
            .filter_map(|id| Some((id, known.get(&id)?.clone()?)))
            .collect())
    }
}

/// `contacts` of the Workspace with their identities, Tags and custom values, in order.
/// For a page or a batch, two set-wise lookups (on two connections at once) cost less
/// than the correlated subqueries ResolveContact reads one Contact with, probed row by
/// row. Tag names come from `names`, which reads only the ones it does not hold yet.
pub async fn complete(
    pool: &PgPool,
    workspace_id: Uuid,
    schema: &Schema,
    names: &TagNames,
    contacts: Vec<Contact>,
) -> Result<Vec<Full>, Error> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    let mut tag_ids: Vec<Uuid> = contacts
        .iter()
        .flat_map(|c| c.tag_ids.iter().copied())
        .collect();
    tag_ids.sort_unstable();
    tag_ids.dedup();
    let (found, names) = tokio::try_join!(
        identities(pool, workspace_id, &ids),
        names.of(pool, workspace_id, tag_ids),
    )?;
    let mut identities: HashMap<Uuid, Vec<Identity>> = HashMap::new();
    for i in found {
        identities.entry(i.contact_id).or_default().push(i);
    }
    Ok(contacts
        .into_iter()
        .map(|c| {
            let mut tags: Vec<String> = c
                .tag_ids
                .iter()
                .filter_map(|id| names.get(id).cloned())
                .collect();
            tags.sort_by_cached_key(|t| t.to_lowercase());
            Full {
                identities: identities.remove(&c.id).unwrap_or_default(),
                tags,
                custom_fields: schema.to_proto(&c.custom),
                contact: c,
            }
        })
        .collect())
}

/// The identities of `contacts`, oldest first.
pub async fn identities(
    pool: &PgPool,
    workspace_id: Uuid,
    contacts: &[Uuid],
) -> Result<Vec<Identity>, Error> {
    Ok(sqlx::query_as(
        "SELECT contact_id, channel_id, external_id, display_name FROM channel_identities
         WHERE workspace_id = $1 AND contact_id = ANY($2) ORDER BY created_at",
    )
    .bind(workspace_id)
    .bind(contacts)
    .fetch_all(pool)
    .await?)
}

/// The names of the Workspace's Tags with these ids.
async fn tag_names(
    pool: &PgPool,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM tags WHERE workspace_id = $1 AND id = ANY($2)")
            .bind(workspace_id)
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A new Contact for this identity, with its event and the interaction time set, or
/// `None` when another caller created the identity first (the caller reads theirs). The
/// identity's primary key lets exactly one creator win. An identity of a deleted Contact
/// moves to the new one: a person who writes again after being deleted starts afresh.
pub(crate) async fn create_for_identity(
    pool: &PgPool,
    workspace_id: Uuid,
    key: &IdentityKey<'_>,
) -> Result<Option<Full>, Error> {
    let mut tx = pool.begin().await?;
    let (first, last) = split_name(key.display_name);
    let schema = fields::schema(&mut tx, workspace_id).await?;
    let contact = insert(
        &mut tx,
        workspace_id,
        &Profile {
            first_name: first,
            last_name: last,
            ..Profile::default()
        },
        schema.defaults(),
        true,
    )
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO channel_identities (workspace_id, channel_id, external_id, contact_id, display_name)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workspace_id, channel_id, external_id) DO UPDATE
            SET contact_id = EXCLUDED.contact_id, display_name = EXCLUDED.display_name,
                created_at = now()
            WHERE EXISTS (SELECT 1 FROM contacts d WHERE d.id = channel_identities.contact_id
                AND d.workspace_id = $1 AND d.deleted_at IS NOT NULL)",
    )
    .bind(workspace_id)
    .bind(key.channel_id)
    .bind(key.external_id)
    .bind(contact.id)
    .bind(key.display_name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    created_event(
        &mut tx,
        &contact,
        key.channel_id.to_string(),
        key.external_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Full {
        custom_fields: schema.to_proto(&contact.custom),
        identities: vec![Identity {
            contact_id: contact.id,
            channel_id: key.channel_id,
            external_id: key.external_id.to_owned(),
            display_name: key.display_name.to_owned(),
        }],
        tags: Vec::new(),
        contact,
    }))
}

fn split_name(display_name: &str) -> (String, String) {
    let name = display_name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_owned(), last.trim().to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

async fn insert(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    p: &Profile,
    custom: serde_json::Map<String, Value>,
    from_a_message: bool,
) -> Result<Contact, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contacts (id, workspace_id, first_name, last_name, email, phone, language,
             country, timezone, picture_url, custom, last_interaction_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $12 THEN now() END)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(&p.first_name)
    .bind(&p.last_name)
    .bind(&p.email)
    .bind(&p.phone)
    .bind(&p.language)
    .bind(&p.country)
    .bind(&p.timezone)
    .bind(&p.picture_url)
    .bind(Value::Object(custom))
    .bind(from_a_message)
    .fetch_one(conn)
    .await?)
}

async fn created_event(
    conn: &mut PgConnection,
    contact: &Contact,
    channel_id: String,
    external_id: &str,
) -> Result<(), Error> {
    let payload = ContactCreated {
        contact_id: contact.id.to_string(),
        channel_id,
        external_id: external_id.to_owned(),
    };
    emit(
        conn,
        &topics::CONTACT_CREATED,
        contact.workspace_id,
        contact.id,
        &payload,
    )
    .await
}

/// Stores an event of `topic` with `payload` in the outbox, keyed by the Contact so its events
/// stay in order.
pub(crate) async fn emit<M: prost::Name + Default>(
    conn: &mut PgConnection,
    topic: &Topic<M>,
    workspace_id: Uuid,
    contact_id: Uuid,
    payload: &M,
) -> Result<(), Error> {
    events::emit(conn, topic, workspace_id, &contact_id.to_string(), payload).await?;
    Ok(())
}

/// Creates a Contact from a profile and custom values (validated against the
/// Workspace's fields; fields with a default and no value get their default).
pub async fn create(
    pool: &PgPool,
    workspace_id: Uuid,
    profile: &Profile,
    custom: &HashMap<String, pb::FieldValue>,
) -> Result<Contact, Error> {
    let mut tx = pool.begin().await?;
    let schema = fields::schema(&mut tx, workspace_id).await?;
    let mut values = schema.defaults();
    for (key, value) in schema.validate(custom)? {
        match value {
            Some(v) => values.insert(key, v),
            None => values.remove(&key),
        };
    }
    let contact = insert(&mut tx, workspace_id, profile, values, false).await?;
    created_event(&mut tx, &contact, String::new(), "").await?;
    tx.commit().await?;
    Ok(contact)
}

/// A live (not deleted) Contact of the Workspace.
pub async fn get(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Contact, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("contact"))
}

/// Live Contacts, newest first, after the keyset position `before`.
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Contact>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) AND deleted_at IS NULL
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A partial update: `None` leaves a default field as it is; custom values not named
/// keep theirs, a value without a kind clears one.
#[derive(Debug, Default)]
pub struct Patch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    pub country: Option<String>,
    pub timezone: Option<String>,
    pub picture_url: Option<String>,
    pub custom: HashMap<String, pb::FieldValue>,
    /// A lifecycle stage's key; empty clears it.
    pub lifecycle_stage: Option<String>,
}

impl Patch {
    /// The normalized profile after this patch, and the names of what it changes.
    fn apply(&self, current: &Contact) -> Result<(Profile, Vec<String>), Error> {
        let pick = |new: &Option<String>, old: &str| new.clone().unwrap_or_else(|| old.to_owned());
        let country = profile::country(&pick(&self.country, &current.country))?;
        let next = Profile {
            first_name: profile::name("first_name", &pick(&self.first_name, &current.first_name))?,
            last_name: profile::name("last_name", &pick(&self.last_name, &current.last_name))?,
            email: profile::email(&pick(&self.email, &current.email))?,
            phone: match &self.phone {
                Some(p) => profile::phone(p, &country)?,
                None => current.phone.clone(),
            },
            language: profile::language(&pick(&self.language, &current.language))?,
            timezone: profile::timezone(&pick(&self.timezone, &current.timezone))?,
            picture_url: profile::url(&pick(&self.picture_url, &current.picture_url))?,
            country,
        };
        let changed = Profile::FIELDS
            .iter()
            .zip(next.values().into_iter().zip(current.profile()))
            .filter(|(_, (new, old))| new != old)
            .map(|(name, _)| (*name).to_owned())
            .collect();
        Ok((next, changed))
    }
}

/// Applies `patch` to the Contact if it is still at `version`; emits
/// `contacts.contact.updated` and one `contacts.contact.field_changed` per changed
/// custom value. A patch that changes nothing changes nothing, version included.
pub async fn update(
    pool: &PgPool,
    workspace_id: Uuid,
    id: Uuid,
    version: i64,
    patch: &Patch,
) -> Result<Contact, Error> {
    let mut tx = pool.begin().await?;
    let current = locked(&mut tx, workspace_id, id).await?;
    if current.version != version {
        return Err(crate::error::stale_version(current.version));
    }
    let schema = fields::schema(&mut tx, workspace_id).await?;
    let (next, mut changed) = patch.apply(&current)?;
    let values = schema.validate(&patch.custom)?;
    let mut custom = current.custom.object();
    let mut field_changes = Vec::new();
    for (key, value) in values {
        let old = custom.get(&key).cloned();
        if old == value {
            continue;
        }
        match &value {
            Some(v) => custom.insert(key.clone(), v.clone()),
            None => custom.remove(&key),
        };
        changed.push(key.clone());
        field_changes.push((key, old, value));
    }
    let stage = match &patch.lifecycle_stage {
        Some(given) => lifecycle::key(&mut tx, workspace_id, given, "lifecycle_stage").await?,
        None => current.lifecycle_stage.clone(),
    };
    if stage != current.lifecycle_stage {
        changed.push("lifecycle_stage".to_owned());
    }
    if changed.is_empty() {
        tx.rollback().await?;
        return Ok(current);
    }
    let contact = save(&mut tx, workspace_id, id, &next, custom, &stage).await?;
    emit_changes(&mut tx, &schema, &contact, changed, field_changes).await?;
    if contact.lifecycle_stage != current.lifecycle_stage {
        emit_stage_change(&mut tx, &contact, &current.lifecycle_stage).await?;
    }
    tx.commit().await?;
    Ok(contact)
}

/// Writes a Contact's default fields and custom values and bumps its version.
pub(crate) async fn save(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    next: &Profile,
    custom: serde_json::Map<String, Value>,
    lifecycle_stage: &str,
) -> Result<Contact, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contacts SET first_name = $3, last_name = $4, email = $5, phone = $6, language = $7,
             country = $8, timezone = $9, picture_url = $10, custom = $11, lifecycle_stage = $12,
             version = version + 1, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(&next.first_name)
    .bind(&next.last_name)
    .bind(&next.email)
    .bind(&next.phone)
    .bind(&next.language)
    .bind(&next.country)
    .bind(&next.timezone)
    .bind(&next.picture_url)
    .bind(Value::Object(custom))
    .bind(lifecycle_stage)
    .fetch_one(conn)
    .await?)
}

/// `contacts.lifecycle.updated` for a Contact that was at `old` before.
pub(crate) async fn emit_stage_change(
    conn: &mut PgConnection,
    contact: &Contact,
    old: &str,
) -> Result<(), Error> {
    let payload = ContactLifecycleUpdated {
        contact_id: contact.id.to_string(),
        old_stage: old.to_owned(),
        new_stage: contact.lifecycle_stage.clone(),
    };
    emit(
        conn,
        &topics::CONTACT_LIFECYCLE_UPDATED,
        contact.workspace_id,
        contact.id,
        &payload,
    )
    .await
}

/// The events of one change to a Contact: `updated`, then one `field_changed` per value.
pub(crate) async fn emit_changes(
    conn: &mut PgConnection,
    schema: &Schema,
    contact: &Contact,
    changed: Vec<String>,
    field_changes: Vec<(String, Option<Value>, Option<Value>)>,
) -> Result<(), Error> {
    let payload = ContactUpdated {
        contact_id: contact.id.to_string(),
        changed,
        version: contact.version,
    };
    emit(
        conn,
        &topics::CONTACT_UPDATED,
        contact.workspace_id,
        contact.id,
        &payload,
    )
    .await?;
    for (key, old, new) in field_changes {
        let def = schema.fields.get(&key);
        let proto = |v: &Option<Value>| v.as_ref().and_then(|v| def?.to_proto_value(v));
        let payload = ContactFieldChanged {
            contact_id: contact.id.to_string(),
            old_value: proto(&old),
            new_value: proto(&new),
            key,
        };
        emit(
            conn,
            &topics::CONTACT_FIELD_CHANGED,
            contact.workspace_id,
            contact.id,
            &payload,
        )
        .await?;
    }
    Ok(())
}

/// The live Contact, locked for the rest of the transaction.
pub(crate) async fn locked(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Contact, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts
         WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("contact"))
}

/// Marks a live Contact deleted; returns until when it can be restored.
pub async fn delete(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<DateTime<Utc>, Error> {
    let mut tx = pool.begin().await?;
    let deleted_at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE contacts SET deleted_at = now(), version = version + 1, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING deleted_at",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let deleted_at = deleted_at.ok_or(Error::NotFound("contact"))?;
    let payload = ContactDeleted {
        contact_id: id.to_string(),
    };
    emit(
        &mut tx,
        &topics::CONTACT_DELETED,
        workspace_id,
        id,
        &payload,
    )
    .await?;
    tx.commit().await?;
    Ok(deleted_at + RESTORE_PERIOD)
}

/// Brings back a Contact deleted within [`RESTORE_PERIOD`].
pub async fn restore(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Contact, Error> {
    let mut tx = pool.begin().await?;
    let contact: Option<Contact> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contacts SET deleted_at = NULL, version = version + 1, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND deleted_at > now() - $3::interval AND merged_into IS NULL
         RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(format!("{} seconds", RESTORE_PERIOD.num_seconds()))
    .fetch_optional(&mut *tx)
    .await?;
    let contact = contact.ok_or(Error::NotFound("contact"))?;
    let payload = ContactDeleted {
        contact_id: id.to_string(),
    };
    emit(
        &mut tx,
        &topics::CONTACT_RESTORED,
        workspace_id,
        id,
        &payload,
    )
    .await?;
    tx.commit().await?;
    Ok(contact)
}

/// Removes for good the Contacts deleted longer ago than [`RESTORE_PERIOD`] (at most
/// `batch` of them); returns how many.
pub async fn purge(pool: &PgPool, batch: i64) -> Result<u64, Error> {
    Ok(sqlx::query(
        "DELETE FROM contacts WHERE id IN (
             SELECT id FROM contacts WHERE deleted_at < now() - $1::interval LIMIT $2)",
    )
    .bind(format!("{} seconds", RESTORE_PERIOD.num_seconds()))
    .bind(batch)
    .execute(pool)
    .await?
    .rows_affected())
}

/// A yes-or-no of a Contact set on its own (SetContactBlocked, SetBroadcastOptOut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Blocked,
    BroadcastOptOut,
}

/// Sets `flag` of a live Contact; emits an event only when that changes it.
pub async fn set_flag(
    pool: &PgPool,
    workspace_id: Uuid,
    id: Uuid,
    flag: Flag,
    on: bool,
) -> Result<Contact, Error> {
    let mut tx = pool.begin().await?;
    let current = locked(&mut tx, workspace_id, id).await?;
    let (now, column) = match flag {
        Flag::Blocked => (current.blocked, "blocked"),
        Flag::BroadcastOptOut => (current.broadcast_opt_out, "broadcast_opt_out"),
    };
    if now == on {
        tx.rollback().await?;
        return Ok(current);
    }
    let contact: Contact = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contacts SET {column} = $3, version = version + 1, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(on)
    .fetch_one(&mut *tx)
    .await?;
    let contact_id = id.to_string();
    match (flag, on) {
        (Flag::Blocked, blocked) => {
            let topic = if blocked {
                &topics::CONTACT_BLOCKED
            } else {
                &topics::CONTACT_UNBLOCKED
            };
            let payload = ContactBlocked {
                contact_id,
                blocked,
            };
            emit(&mut tx, topic, workspace_id, id, &payload).await?;
        }
        (Flag::BroadcastOptOut, opted_out) => {
            let topic = if opted_out {
                &topics::CONTACT_OPTED_OUT
            } else {
                &topics::CONTACT_OPTED_IN
            };
            let payload = ContactOptOutChanged {
                contact_id,
                opted_out,
            };
            emit(&mut tx, topic, workspace_id, id, &payload).await?;
        }
    }
    tx.commit().await?;
    Ok(contact)
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn display_names_split_into_first_and_last() {
        assert_eq!(
            split_name(" Ada  Lovelace "),
            ("Ada".into(), "Lovelace".into())
        );
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
        assert_eq!(split_name(""), (String::new(), String::new()));
    }
}
