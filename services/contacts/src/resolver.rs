//! ResolveContact: find the Contact of a channel identity, or create it. Lookups of
//! existing identities are read in batches (`ism_platform::batch`): the calls that arrive
//! while earlier reads are in flight go together in one statement (ADR 17). Starting a
//! statement and answering its round trip cost Postgres more than probing one identity,
//! so under load a batch of ten costs far less than ten reads; a lone call is read at
//! once, as a batch of one.
use std::collections::HashMap;

use ism_platform::batch::Batcher;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::fields::FieldKind;
use crate::store::{self, C_COLUMNS, Contact, Full, Identity, IdentityKey};

/// Most identities read in one statement.
const MAX_BATCH: usize = 64;
/// Batches read at once, each on its own connection; calls arriving while all are busy
/// wait for the next batch.
const IN_FLIGHT: usize = 4;

/// One existing identity to look up, in its Workspace.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub workspace_id: Uuid,
    pub channel_id: Uuid,
    pub external_id: String,
}

/// Resolves identities to Contacts; cheap to clone, one set of batching readers behind
/// all clones.
#[derive(Clone)]
pub struct Resolver {
    pool: PgPool,
    readers: Batcher<Lookup, Option<Full>>,
}

impl Resolver {
    /// A resolver on `pool`, with its readers started on the current runtime. They stop
    /// once every clone is dropped.
    pub fn new(pool: PgPool) -> Self {
        let readers = Batcher::start(IN_FLIGHT, MAX_BATCH, {
            let pool = pool.clone();
            move |lookups: Vec<Lookup>| {
                let pool = pool.clone();
                async move { Ok(find_many(&pool, &lookups).await?) }
            }
        });
        Self { pool, readers }
    }

    /// The Contact with this identity, and whether this call created it (with its event
    /// and the interaction time set). Safe under concurrency: of many first messages of
    /// one new person, one call creates the Contact and the others read it.
    pub async fn resolve(
        &self,
        workspace_id: Uuid,
        key: &IdentityKey<'_>,
    ) -> Result<(Full, bool), Error> {
        loop {
            let lookup = Lookup {
                workspace_id,
                channel_id: key.channel_id,
                external_id: key.external_id.to_owned(),
            };
            if let Some(found) = self.readers.call(lookup).await? {
                return Ok((found, false));
            }
            if let Some(created) = store::create_for_identity(&self.pool, workspace_id, key).await?
            {
                return Ok((created, true));
            }
        }
    }
}

/// What a Contact's API form needs besides its row, as columns of a query over
/// `contacts c`: for a Contact of a lookup, where a round trip each costs more than these
/// three probes. Built as `json`, not `jsonb`: text the service parses anyway, where a
/// `jsonb` aggregate sorts and dedups its keys in Postgres first (the read is a fifth
/// cheaper this way).
const EXTRAS: &str = "(SELECT coalesce(json_agg(json_build_object('contact_id', i.contact_id,
             'channel_id', i.channel_id, 'external_id', i.external_id,
             'display_name', i.display_name) ORDER BY i.created_at), '[]')
         FROM channel_identities i WHERE i.contact_id = c.id) AS identities,
     ARRAY(SELECT t.name FROM tags t WHERE t.id = ANY(c.tag_ids) ORDER BY lower(t.name)) AS tags,
     (SELECT coalesce(json_object_agg(f.key, f.kind), '{}') FROM contact_fields f
         WHERE f.workspace_id = c.workspace_id AND c.custom ? f.key) AS kinds";

/// The columns of [`EXTRAS`].
#[derive(FromRow)]
struct Extras {
    identities: Json<Vec<Identity>>,
    tags: Vec<String>,
    /// The stored kind of each field the Contact has a value of.
    kinds: Json<HashMap<String, String>>,
}

impl Extras {
    fn complete(self, contact: Contact) -> Full {
        let kinds = self.kinds.0;
        Full {
            custom_fields: contact
                .custom
                .to_proto(|key| FieldKind::parse(kinds.get(key)?).ok()),
            identities: self.identities.0,
            tags: self.tags,
            contact,
        }
    }
}

/// The live Contact of each lookup's identity in that lookup's own Workspace, whole, in
/// the order of `lookups`, from one indexed read. Lookups of several Workspaces share the
/// statement, never an answer: each row is matched to its lookup by position, and every
/// join requires the lookup's Workspace.
pub async fn find_many(
    pool: &PgPool,
    lookups: &[Lookup],
) -> Result<Vec<Option<Full>>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        n: i64,
        #[sqlx(flatten)]
        contact: Contact,
        #[sqlx(flatten)]
        extras: Extras,
    }
    let mut keys: (Vec<Uuid>, Vec<Uuid>, Vec<&str>) = Default::default();
    for l in lookups {
        keys.0.push(l.workspace_id);
        keys.1.push(l.channel_id);
        keys.2.push(&l.external_id);
    }
    // The arrays reach unnest through sub-selects so that no plan knows their length:
    // given the values, Postgres estimated each batch by its length, found that plan
    // cheaper than the cached one and planned every call anew (a fifth of its CPU).
    // Each lookup probes the identity's key, then the Contact's, as LATERAL ... LIMIT 1:
    // as plain joins, a generic plan made on tables never analysed started from every
    // live Contact and probed the lookups for each (ADR 21).
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT k.n, {C_COLUMNS}, {EXTRAS}
         FROM unnest((SELECT $1::uuid[]), (SELECT $2::uuid[]), (SELECT $3::text[])) WITH ORDINALITY
             AS k(workspace_id, channel_id, external_id, n)
         CROSS JOIN LATERAL (SELECT i.contact_id FROM channel_identities i
             WHERE i.workspace_id = k.workspace_id AND i.channel_id = k.channel_id
               AND i.external_id = k.external_id LIMIT 1) i
         CROSS JOIN LATERAL (SELECT * FROM contacts c
             WHERE c.id = i.contact_id AND c.workspace_id = k.workspace_id
               AND c.deleted_at IS NULL LIMIT 1) c"
    )))
    .bind(&keys.0)
    .bind(&keys.1)
    .bind(&keys.2)
    .fetch_all(pool)
    .await?;
    let mut found: Vec<Option<Full>> = std::iter::repeat_with(|| None)
        .take(lookups.len())
        .collect();
    for row in rows {
        let slot = usize::try_from(row.n - 1)
            .ok()
            .and_then(|i| found.get_mut(i))
            .ok_or_else(|| sqlx::Error::Protocol(format!("lookup {} out of range", row.n)))?;
        *slot = Some(row.extras.complete(row.contact));
    }
    Ok(found)
}
