//! CSV import: columns mapped to fields, every row validated on its own, then applied
//! in bulk, chunk by chunk, each chunk in one transaction with its events. A row is
//! applied whole or not at all; a rejected row gets a line in the error report.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ism_platform::convert::timestamp;
use ism_platform::error::FieldError;
use ism_platform::events::{self, topics};
use ism_platform::spreadsheet::{self, neutralised};
use ism_proto::contacts::v1::{self as pb, field_value::Kind};
use ism_proto::events::v1::{ContactCreated, ContactLifecycleUpdated, Event};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::error::Error;
use crate::fields::{FieldKind, Schema};
use crate::lifecycle::{self, Stage};
use crate::profile::{self, Profile};
use crate::store::{COLUMNS, Contact};
use crate::tags::tag_events;

/// Largest CSV file, in bytes.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Rows applied per transaction.
const CHUNK: usize = 5000;
/// Chunks applied at once, each by its own task on its own connection: Postgres spends
/// most of an import maintaining indexes, which one backend does on one core (ADR 19).
const IN_FLIGHT: usize = 4;
/// Most tags in one cell.
const MAX_TAGS: usize = 50;
/// Times a chunk is tried again when a new identity raced a first message.
const ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Profile(usize),
    Custom(String, FieldKind),
    Tags,
    ExternalId,
    BroadcastOptOut,
    LifecycleStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchBy {
    Nothing,
    Email,
    Phone,
    ExternalId,
}

/// Import settings checked against the Workspace's fields.
#[derive(Debug, Clone)]
pub struct Settings {
    columns: Vec<(String, Target)>,
    match_by: MatchBy,
    channel_id: Option<Uuid>,
    /// The Workspace's lifecycle stages when the import began.
    stages: Vec<Stage>,
}

fn bad(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError::new(field, reason)
}

impl Settings {
    pub fn check(
        s: &pb::ImportSettings,
        schema: &Schema,
        stages: Vec<Stage>,
    ) -> Result<Self, FieldError> {
        if s.columns.is_empty() || s.columns.len() > 300 {
            return Err(bad("settings.columns", "1 to 300 column mappings"));
        }
        let mut columns = Vec::with_capacity(s.columns.len());
        for c in &s.columns {
            let target = match c.field.as_str() {
                "tags" => Target::Tags,
                "external_id" => Target::ExternalId,
                "broadcast_opt_out" => Target::BroadcastOptOut,
                "lifecycle_stage" => Target::LifecycleStage,
                f => match Profile::FIELDS.iter().position(|p| *p == f) {
                    Some(i) => Target::Profile(i),
                    None => match schema.fields.get(f) {
                        Some(def) => Target::Custom(f.to_owned(), def.kind),
                        None => {
                            return Err(bad(
                                "settings.columns",
                                format!("{f:?} is not a field that can be imported"),
                            ));
                        }
                    },
                },
            };
            if c.column.is_empty() {
                return Err(bad("settings.columns", "a column header is required"));
            }
            if columns
                .iter()
                .any(|(col, t)| *col == c.column || *t == target)
            {
                return Err(bad(
                    "settings.columns",
                    format!(
                        "column {:?} or field {:?} is mapped twice",
                        c.column, c.field
                    ),
                ));
            }
            columns.push((c.column.clone(), target));
        }
        let maps = |t: &Target| columns.iter().any(|(_, c)| c == t);
        let match_by = match pb::ImportMatch::try_from(s.r#match) {
            Ok(pb::ImportMatch::None) => MatchBy::Nothing,
            Ok(pb::ImportMatch::Email) if maps(&Target::Profile(2)) => MatchBy::Email,
            Ok(pb::ImportMatch::Phone) if maps(&Target::Profile(3)) => MatchBy::Phone,
            Ok(pb::ImportMatch::ExternalId) if maps(&Target::ExternalId) => MatchBy::ExternalId,
            Ok(pb::ImportMatch::Email | pb::ImportMatch::Phone | pb::ImportMatch::ExternalId) => {
                return Err(bad(
                    "settings.match",
                    "the field matched by must be mapped to a column",
                ));
            }
            _ => return Err(bad("settings.match", "how rows match Contacts is required")),
        };
        if maps(&Target::ExternalId) && match_by != MatchBy::ExternalId {
            return Err(bad(
                "settings.columns",
                "external_id is mapped only when matching by external id",
            ));
        }
        let channel_id = match match_by {
            MatchBy::ExternalId => Some(
                s.channel_id
                    .parse()
                    .map_err(|_| bad("settings.channel_id", "a channel id is required"))?,
            ),
            _ => None,
        };
        Ok(Settings {
            columns,
            match_by,
            channel_id,
            stages,
        })
    }
}

/// One valid row: only the cells that had a value.
#[derive(Debug, Clone, Default)]
struct Row {
    line: u64,
    profile: [Option<String>; 8],
    custom: BTreeMap<String, Value>,
    tags: Vec<String>,
    external_id: Option<String>,
    /// The Contact's consent to broadcasts, when the file says.
    opt_out: Option<bool>,
    /// The key of the Contact's lifecycle stage, when the file says.
    stage: Option<String>,
}

impl Row {
    /// The value this row is matched by.
    fn key(&self, by: MatchBy) -> Option<&str> {
        match by {
            MatchBy::Nothing => None,
            MatchBy::Email => self.profile[2].as_deref(),
            MatchBy::Phone => self.profile[3].as_deref(),
            MatchBy::ExternalId => self.external_id.as_deref(),
        }
    }
}

/// A rejected row's reason: line, column header (empty for the row) and why.
type Problem = (u64, String, String);

fn custom_kind(kind: FieldKind, cell: &str) -> Result<Kind, String> {
    Ok(match kind {
        FieldKind::Number => Kind::Number(
            cell.parse::<f64>()
                .map_err(|_| format!("{cell:?} is not a number"))?,
        ),
        FieldKind::Checkbox => match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Kind::Checkbox(true),
            "false" | "no" | "0" => Kind::Checkbox(false),
            _ => return Err(format!("{cell:?} is not true/false, yes/no or 1/0")),
        },
        FieldKind::Date => Kind::Date(cell.to_owned()),
        FieldKind::DateTime => Kind::Datetime(timestamp(
            DateTime::parse_from_rfc3339(cell)
                .map_err(|_| format!("{cell:?} is not an RFC 3339 date and time"))?
                .with_timezone(&Utc),
        )),
        _ => Kind::Text(cell.to_owned()),
    })
}

/// Reads one record into a row, or every problem it has.
fn parse(
    settings: &Settings,
    schema: &Schema,
    positions: &[usize],
    record: &csv::StringRecord,
    line: u64,
) -> Result<Row, Vec<Problem>> {
    let mut row = Row {
        line,
        ..Row::default()
    };
    let mut problems = Vec::new();
    let cell = |i: usize| {
        record
            .get(positions[i])
            .map(|c| spreadsheet::restored(c.trim()))
            .unwrap_or("")
    };
    let country = settings
        .columns
        .iter()
        .position(|(_, t)| *t == Target::Profile(5))
        .map(|i| cell(i).to_ascii_uppercase())
        .unwrap_or_default();
    for (i, (column, target)) in settings.columns.iter().enumerate() {
        let value = cell(i);
        if value.is_empty() {
            continue;
        }
        let checked: Result<(), String> = match target {
            Target::Profile(p) => {
                let normalized = match p {
                    0 => profile::name("first_name", value),
                    1 => profile::name("last_name", value),
                    2 => profile::email(value),
                    3 => profile::phone(value, &country),
                    4 => profile::language(value),
                    5 => profile::country(value),
                    6 => profile::timezone(value),
                    _ => profile::url(value),
                };
                normalized
                    .map(|v| row.profile[*p] = Some(v))
                    .map_err(|e| e.reason)
            }
            Target::Custom(key, kind) => custom_kind(*kind, value).and_then(|k| {
                let def = schema
                    .fields
                    .get(key)
                    .ok_or_else(|| format!("{key}: no such contact field"))?;
                match def.validate(Some(&k)) {
                    Ok(Some(v)) => {
                        row.custom.insert(key.clone(), v);
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e.reason),
                }
            }),
            Target::Tags => {
                let names: Result<Vec<String>, String> = value
                    .split(';')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| crate::tags::name("tags", t).map_err(|e| e.reason))
                    .collect();
                names.and_then(|names| {
                    if names.len() > MAX_TAGS {
                        return Err(format!("at most {MAX_TAGS} tags"));
                    }
                    row.tags = names;
                    Ok(())
                })
            }
            Target::BroadcastOptOut => match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => {
                    row.opt_out = Some(true);
                    Ok(())
                }
                "false" | "no" | "0" => {
                    row.opt_out = Some(false);
                    Ok(())
                }
                _ => Err("true or false (yes or no, 1 or 0)".into()),
            },
            Target::LifecycleStage => {
                let stage = settings
                    .stages
                    .iter()
                    .find(|s| s.key == value || s.name.to_lowercase() == value.to_lowercase());
                match stage {
                    Some(s) => {
                        row.stage = Some(s.key.clone());
                        Ok(())
                    }
                    None => Err(format!("{value:?} is not a lifecycle stage")),
                }
            }
            Target::ExternalId if value.len() > 256 => Err("at most 256 bytes".into()),
            Target::ExternalId => {
                row.external_id = Some(value.to_owned());
                Ok(())
            }
        };
        if let Err(reason) = checked {
            problems.push((line, column.clone(), reason));
        }
    }
    if problems.is_empty()
        && settings.match_by != MatchBy::Nothing
        && row.key(settings.match_by).is_none()
    {
        let column = settings
            .columns
            .iter()
            .find(|(_, t)| match settings.match_by {
                MatchBy::Email => *t == Target::Profile(2),
                MatchBy::Phone => *t == Target::Profile(3),
                _ => *t == Target::ExternalId,
            })
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        problems.push((line, column, "empty, but rows are matched by it".into()));
    }
    if problems.is_empty() {
        Ok(row)
    } else {
        Err(problems)
    }
}

/// The outcome of an import.
#[derive(Debug, Clone, FromRow)]
pub struct Outcome {
    pub id: Uuid,
    pub rows: i64,
    pub created: i64,
    pub updated: i64,
    pub failed: i64,
    pub error_report: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl Outcome {
    pub fn to_proto(&self) -> pb::Import {
        pb::Import {
            id: self.id.to_string(),
            rows: self.rows,
            created: self.created,
            updated: self.updated,
            failed: self.failed,
            error_report: self.error_report.clone(),
            created_at: Some(timestamp(self.created_at)),
        }
    }
}

#[derive(Default)]
struct Tally {
    created: i64,
    updated: i64,
    problems: Vec<Problem>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.created += other.created;
        self.updated += other.updated;
        self.problems.extend(other.problems);
    }
}

/// Imports `data` (a CSV file with a header line) by `settings`, then stores the outcome.
pub async fn run(
    pool: &PgPool,
    workspace_id: Uuid,
    settings: &pb::ImportSettings,
    data: &[u8],
) -> Result<Outcome, Error> {
    let mut conn = pool.acquire().await?;
    let schema = crate::fields::schema(&mut conn, workspace_id).await?;
    let stages = lifecycle::list(&mut conn, workspace_id).await?;
    drop(conn);
    let settings = Settings::check(settings, &schema, stages)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| bad("data", format!("the header line cannot be read: {e}")))?
        .clone();
    let positions = settings
        .columns
        .iter()
        .map(|(column, _)| {
            headers
                .iter()
                .position(|h| h.trim() == column)
                .ok_or_else(|| {
                    bad(
                        "settings.columns",
                        format!("the file has no column {column:?}"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut tally = Tally::default();
    let mut rows = 0i64;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    // Chunks are applied by tasks of their own, so their statements go on while the next
    // chunk is parsed; leaving early (an error, the caller gone) drops the set, which
    // aborts the chunks still open and rolls their transactions back.
    let mut applying = JoinSet::new();
    let (settings, schema) = (Arc::new(settings), Arc::new(schema));
    let apply = |chunk: Vec<Row>| {
        let (pool, settings, schema) = (pool.clone(), settings.clone(), schema.clone());
        async move { apply_with_retries(&pool, workspace_id, &settings, &schema, chunk).await }
    };
    for record in reader.records() {
        rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or_default();
                tally
                    .problems
                    .push((line, String::new(), format!("unreadable: {e}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or_default();
        if record.len() != headers.len() {
            let reason = format!("{} cells, the header has {}", record.len(), headers.len());
            tally.problems.push((line, String::new(), reason));
            continue;
        }
        let row = match parse(&settings, &schema, &positions, &record, line) {
            Ok(row) => row,
            Err(problems) => {
                tally.problems.extend(problems);
                continue;
            }
        };
        if let Some(key) = row.key(settings.match_by) {
            if let Some(first) = seen.get(key) {
                let reason = format!("row {first} has the same {key:?}");
                tally.problems.push((line, String::new(), reason));
                continue;
            }
            seen.insert(key.to_owned(), line);
        }
        chunk.push(row);
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            applying.spawn(apply(full));
            if applying.len() == IN_FLIGHT
                && let Some(done) = applying.join_next().await
            {
                tally.add(joined(done)?);
            }
        }
    }
    applying.spawn(apply(chunk));
    while let Some(done) = applying.join_next().await {
        tally.add(joined(done)?);
    }
    tally.problems.sort_by_key(|p| p.0);

    let mut report = csv::Writer::from_writer(Vec::new());
    let mut write = |record: &[&str]| {
        report
            .write_record(record)
            .map_err(|e| Error::Unexpected(e.into()))
    };
    write(&["row", "column", "reason"])?;
    for (line, column, reason) in &tally.problems {
        write(&[
            &line.to_string(),
            &neutralised(column),
            &neutralised(reason),
        ])?;
    }
    let report = report
        .into_inner()
        .map_err(|e| Error::Unexpected(anyhow::anyhow!("error report: {e}")))?;
    let failed = rows - tally.created - tally.updated;
    Ok(sqlx::query_as(
        "INSERT INTO contact_imports (id, workspace_id, rows, created, updated, failed, error_report)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, rows, created, updated, failed, error_report, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(rows)
    .bind(tally.created)
    .bind(tally.updated)
    .bind(failed)
    .bind(report)
    .fetch_one(pool)
    .await?)
}

/// An earlier import of the Workspace.
pub async fn get(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Outcome, Error> {
    sqlx::query_as(
        "SELECT id, rows, created, updated, failed, error_report, created_at
         FROM contact_imports WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("import"))
}

/// Forgets imports older than `days` (their reports with them).
pub async fn purge(pool: &PgPool, days: i32) -> Result<u64, Error> {
    Ok(sqlx::query(
        "DELETE FROM contact_imports WHERE created_at < now() - make_interval(days => $1)",
    )
    .bind(days)
    .execute(pool)
    .await?
    .rows_affected())
}

/// The outcome of a chunk's task.
fn joined(done: Result<Result<Tally, Error>, tokio::task::JoinError>) -> Result<Tally, Error> {
    done.map_err(|e| Error::Unexpected(e.into()))?
}

/// Why a chunk must be tried again: a first message created one of its identities.
struct Raced;

/// Applies one chunk in its own transaction, again when a first message raced it.
async fn apply_with_retries(
    pool: &PgPool,
    workspace_id: Uuid,
    settings: &Settings,
    schema: &Schema,
    chunk: Vec<Row>,
) -> Result<Tally, Error> {
    if chunk.is_empty() {
        return Ok(Tally::default());
    }
    for _ in 0..ATTEMPTS {
        let mut tx = pool.begin().await?;
        match apply(&mut tx, workspace_id, settings, schema, &chunk).await? {
            Ok(done) => {
                tx.commit().await?;
                return Ok(done);
            }
            Err(Raced) => tx.rollback().await?,
        }
    }
    Err(Error::Unexpected(anyhow::anyhow!(
        "identities kept racing first messages over {ATTEMPTS} attempts"
    )))
}

/// Applies one chunk of valid rows in the caller's transaction.
async fn apply(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    settings: &Settings,
    schema: &Schema,
    chunk: &[Row],
) -> Result<Result<Tally, Raced>, Error> {
    let mut done = Tally::default();
    let matches = find(tx, workspace_id, settings, chunk).await?;
    let existing: HashMap<Uuid, Contact> = {
        let ids: Vec<Uuid> = matches
            .values()
            .filter_map(|ids| match ids.as_slice() {
                [one] => Some(*one),
                _ => None,
            })
            .collect();
        let rows: Vec<Contact> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"
        )))
        .bind(workspace_id)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        rows.into_iter().map(|c| (c.id, c)).collect()
    };

    // Rows matching several Contacts are refused below; their new Tags are not created.
    let several = |row: &&Row| {
        row.key(settings.match_by)
            .and_then(|k| matches.get(k))
            .is_some_and(|ids| ids.len() > 1)
    };
    let tags = tags_of(tx, workspace_id, chunk.iter().filter(|r| !several(r))).await?;
    // Shared locks keep the stages named until the chunk commits; one removed since the
    // file was read fails its rows.
    let named: Vec<&str> = chunk.iter().filter_map(|r| r.stage.as_deref()).collect();
    let stages: HashSet<String> = sqlx::query_scalar(
        "SELECT key FROM lifecycle_stages WHERE workspace_id = $1 AND key = ANY($2) FOR SHARE",
    )
    .bind(workspace_id)
    .bind(&named)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut events: Vec<Event> = Vec::new();
    let mut inserts = Columns::default();
    let mut updates = Columns::default();
    let mut identities: (Vec<String>, Vec<Uuid>) = Default::default();
    let mut tag_pairs: (Vec<Uuid>, Vec<Uuid>) = Default::default();
    let defaults = schema.defaults();
    for row in chunk {
        if let Some(gone) = row.stage.as_ref().filter(|s| !stages.contains(*s)) {
            let reason = format!("the lifecycle stage {gone} was removed during the import");
            done.problems.push((row.line, String::new(), reason));
            continue;
        }
        let mut tag_ids: Vec<Uuid> = row
            .tags
            .iter()
            .filter_map(|n| tags.get(n))
            .map(|t| t.0)
            .collect();
        tag_ids.sort();
        tag_ids.dedup();
        let matched = row.key(settings.match_by).and_then(|k| matches.get(k));
        let contact_id = match matched.map(Vec::as_slice) {
            Some([id]) => {
                let Some(current) = existing.get(id) else {
                    continue;
                };
                let (profile, custom, changed) = updated(current, row);
                if !changed.is_empty() {
                    let opt_out = row.opt_out.unwrap_or(current.broadcast_opt_out);
                    let stage = row.stage.as_ref().unwrap_or(&current.lifecycle_stage);
                    updates.push(current.id, &profile, custom, &tag_ids, opt_out, stage);
                    if *stage != current.lifecycle_stage {
                        events.push(stage_event(
                            workspace_id,
                            id,
                            &current.lifecycle_stage,
                            stage,
                        ));
                    }
                    events.push(topics::CONTACT_UPDATED.event(
                        workspace_id,
                        &current.id.to_string(),
                        &ism_proto::events::v1::ContactUpdated {
                            contact_id: current.id.to_string(),
                            version: current.version + 1,
                            changed: changed.iter().map(|(k, _, _)| k.clone()).collect(),
                        },
                    ));
                    for (key, old, new) in changed {
                        if let Some(def) = schema.fields.get(&key) {
                            events.push(topics::CONTACT_FIELD_CHANGED.event(
                                workspace_id,
                                &current.id.to_string(),
                                &ism_proto::events::v1::ContactFieldChanged {
                                    contact_id: current.id.to_string(),
                                    old_value: old.as_ref().and_then(|v| def.to_proto_value(v)),
                                    new_value: new.as_ref().and_then(|v| def.to_proto_value(v)),
                                    key,
                                },
                            ));
                        }
                    }
                }
                done.updated += 1;
                current.id
            }
            Some(several) if several.len() > 1 => {
                done.problems.push((
                    row.line,
                    String::new(),
                    format!("matches {} Contacts; merge them first", several.len()),
                ));
                continue;
            }
            _ => {
                let id = Uuid::now_v7();
                let profile = Profile::from_values(std::array::from_fn(|i| {
                    row.profile[i].clone().unwrap_or_default()
                }));
                let mut custom = defaults.clone();
                custom.extend(row.custom.iter().map(|(k, v)| (k.clone(), v.clone())));
                let stage = row.stage.clone().unwrap_or_default();
                let opt_out = row.opt_out.unwrap_or(false);
                inserts.push(id, &profile, custom, &tag_ids, opt_out, &stage);
                if !stage.is_empty() {
                    events.push(stage_event(workspace_id, &id, "", &stage));
                }
                let (channel_id, external_id) = match (settings.channel_id, &row.external_id) {
                    (Some(ch), Some(x)) => {
                        identities.0.push(x.clone());
                        identities.1.push(id);
                        (ch.to_string(), x.clone())
                    }
                    _ => (String::new(), String::new()),
                };
                events.push(topics::CONTACT_CREATED.event(
                    workspace_id,
                    &id.to_string(),
                    &ContactCreated {
                        contact_id: id.to_string(),
                        channel_id,
                        external_id,
                    },
                ));
                done.created += 1;
                id
            }
        };
        for tag_id in tag_ids {
            tag_pairs.0.push(contact_id);
            tag_pairs.1.push(tag_id);
        }
    }

    inserts.insert(tx, workspace_id).await?;
    updates.update(tx, workspace_id).await?;
    if let Some(channel_id) = settings.channel_id {
        let n = identities.0.len() as u64;
        let placed = sqlx::query(
            "INSERT INTO channel_identities (workspace_id, channel_id, external_id, contact_id)
             SELECT $1, $2, x, c FROM unnest($3::text[], $4::uuid[]) AS i(x, c)
             ON CONFLICT (workspace_id, channel_id, external_id) DO UPDATE
                SET contact_id = EXCLUDED.contact_id, created_at = now()
                WHERE channel_identities.contact_id IN
                    (SELECT id FROM contacts WHERE workspace_id = $1 AND deleted_at IS NOT NULL)",
        )
        .bind(workspace_id)
        .bind(channel_id)
        .bind(&identities.0)
        .bind(&identities.1)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if placed != n {
            return Ok(Err(Raced));
        }
    }
    if !tag_pairs.0.is_empty() {
        let names: HashMap<Uuid, &str> = tags
            .values()
            .map(|(id, name)| (*id, name.as_str()))
            .collect();
        let added: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "INSERT INTO contact_tags (workspace_id, contact_id, tag_id)
             SELECT $1, c, t FROM unnest($2::uuid[], $3::uuid[]) AS p(c, t)
             ON CONFLICT DO NOTHING RETURNING contact_id, tag_id",
        )
        .bind(workspace_id)
        .bind(&tag_pairs.0)
        .bind(&tag_pairs.1)
        .fetch_all(&mut *tx)
        .await?;
        let added = added.into_iter().map(|(contact, tag)| {
            (
                contact,
                names.get(&tag).copied().unwrap_or_default().to_owned(),
            )
        });
        events.extend(tag_events(&topics::TAG_ADDED, workspace_id, added));
    }
    events::enqueue_all(tx, &events).await?;
    Ok(Ok(done))
}

/// The Tags the rows name, created where new: id and stored name by the name as
/// written in the file. They are locked against deletion until the chunk commits, so a
/// Tag deleted meanwhile is swept off these Contacts too (ADR 18).
async fn tags_of(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    rows: impl Iterator<Item = &Row>,
) -> Result<HashMap<String, (Uuid, String)>, Error> {
    let mut names: Vec<&str> = rows
        .flat_map(|r| r.tags.iter().map(String::as_str))
        .collect();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    names.sort_unstable();
    names.dedup();
    // New Tags in one order, so chunks applied at once wait on each other's, never
    // deadlock.
    sqlx::query(
        "INSERT INTO tags (id, workspace_id, name)
         SELECT gen_random_uuid(), $1, n FROM unnest($2::text[]) AS n ORDER BY lower(n)
         ON CONFLICT DO NOTHING",
    )
    .bind(workspace_id)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    let found: Vec<(String, Uuid, String)> = sqlx::query_as(
        "SELECT n, t.id, t.name FROM unnest($2::text[]) AS n
         JOIN tags t ON t.workspace_id = $1 AND lower(t.name) = lower(n)
         FOR KEY SHARE OF t",
    )
    .bind(workspace_id)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    Ok(found
        .into_iter()
        .map(|(n, id, name)| (n, (id, name)))
        .collect())
}

/// The live Contacts each row's key matches (several when duplicates share it).
async fn find(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    settings: &Settings,
    chunk: &[Row],
) -> Result<HashMap<String, Vec<Uuid>>, Error> {
    let keys: Vec<String> = chunk
        .iter()
        .filter_map(|r| r.key(settings.match_by).map(str::to_owned))
        .collect();
    // Keys are never empty; saying so lets the partial email / phone index answer,
    // where a scan of the Workspace would compare every Contact with the whole chunk.
    let sql = match settings.match_by {
        MatchBy::Nothing => return Ok(HashMap::new()),
        MatchBy::Email => {
            "SELECT email, array_agg(id) FROM contacts
             WHERE workspace_id = $1 AND deleted_at IS NULL AND email <> '' AND email = ANY($2)
             GROUP BY email"
        }
        MatchBy::Phone => {
            "SELECT phone, array_agg(id) FROM contacts
             WHERE workspace_id = $1 AND deleted_at IS NULL AND phone <> '' AND phone = ANY($2)
             GROUP BY phone"
        }
        MatchBy::ExternalId => {
            "SELECT i.external_id, array_agg(c.id) FROM channel_identities i
             JOIN contacts c ON c.id = i.contact_id AND c.deleted_at IS NULL
             WHERE i.workspace_id = $1 AND i.external_id = ANY($2) AND i.channel_id = $3
             GROUP BY i.external_id"
        }
    };
    let mut query = sqlx::query_as(sql).bind(workspace_id).bind(&keys);
    if let Some(channel_id) = settings.channel_id {
        query = query.bind(channel_id);
    }
    let rows: Vec<(String, Vec<Uuid>)> = query.fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().collect())
}

/// `contacts.lifecycle.updated` for an imported Contact.
fn stage_event(workspace_id: Uuid, contact_id: &Uuid, old: &str, new: &str) -> Event {
    topics::CONTACT_LIFECYCLE_UPDATED.event(
        workspace_id,
        &contact_id.to_string(),
        &ContactLifecycleUpdated {
            contact_id: contact_id.to_string(),
            old_stage: old.to_owned(),
            new_stage: new.to_owned(),
        },
    )
}

/// A changed custom value: key, old, new.
type Change = (String, Option<Value>, Option<Value>);

/// The Contact after the row's values, and what changed (default fields carry no values).
fn updated(current: &Contact, row: &Row) -> (Profile, serde_json::Map<String, Value>, Vec<Change>) {
    let olds = current.profile();
    let mut changes = Vec::new();
    let next: [String; 8] = std::array::from_fn(|i| match &row.profile[i] {
        Some(new) if new != olds[i] => {
            changes.push((Profile::FIELDS[i].to_owned(), None, None));
            new.clone()
        }
        _ => olds[i].clone(),
    });
    if row
        .opt_out
        .is_some_and(|opt_out| opt_out != current.broadcast_opt_out)
    {
        changes.push(("broadcast_opt_out".to_owned(), None, None));
    }
    if row
        .stage
        .as_ref()
        .is_some_and(|stage| *stage != current.lifecycle_stage)
    {
        changes.push(("lifecycle_stage".to_owned(), None, None));
    }
    let mut custom = current.custom.object();
    for (key, value) in &row.custom {
        let old = custom.insert(key.clone(), value.clone());
        if old.as_ref() != Some(value) {
            changes.push((key.clone(), old, Some(value.clone())));
        }
    }
    (Profile::from_values(next), custom, changes)
}

/// Contacts to write, column by column, for one `unnest`.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    text: [Vec<String>; 8],
    custom: Vec<Value>,
    /// Each Contact's Tags to add, as an array literal: Postgres has no ragged arrays.
    tag_ids: Vec<String>,
    opt_out: Vec<bool>,
    stage: Vec<String>,
}

impl Columns {
    fn push(
        &mut self,
        id: Uuid,
        p: &Profile,
        custom: serde_json::Map<String, Value>,
        tag_ids: &[Uuid],
        opt_out: bool,
        stage: &str,
    ) {
        self.ids.push(id);
        self.opt_out.push(opt_out);
        self.stage.push(stage.to_owned());
        let tag_ids: Vec<String> = tag_ids.iter().map(Uuid::to_string).collect();
        self.tag_ids.push(format!("{{{}}}", tag_ids.join(",")));
        for (column, value) in self.text.iter_mut().zip(p.values()) {
            column.push(value.clone());
        }
        self.custom.push(Value::Object(custom));
    }

    /// Creates the columns' contacts, with their Tags' ids already in place so that placing
    /// the Tags writes no Contact again.
    async fn insert(&self, tx: &mut PgConnection, workspace_id: Uuid) -> Result<(), Error> {
        self.write(
            tx,
            workspace_id,
            "INSERT INTO contacts (id, workspace_id, first_name, last_name, email, phone, language,
                 country, timezone, picture_url, custom, tag_ids, broadcast_opt_out, lifecycle_stage)
             SELECT id, $1, f, l, e, p, lang, co, tz, pic, cu, tg::uuid[], oo, ls FROM unnest($2::uuid[],
                 $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                 $9::text[], $10::text[], $11::jsonb[], $12::text[], $13::bool[], $14::text[])
                 AS r(id, f, l, e, p, lang, co, tz, pic, cu, tg, oo, ls)",
        )
        .await
    }

    /// Overwrites the columns' contacts with their values and adds their Tags' ids.
    async fn update(&self, tx: &mut PgConnection, workspace_id: Uuid) -> Result<(), Error> {
        self.write(
            tx,
            workspace_id,
            "UPDATE contacts c SET first_name = r.f, last_name = r.l, email = r.e, phone = r.p,
                 language = r.lang, country = r.co, timezone = r.tz, picture_url = r.pic,
                 custom = r.cu, version = c.version + 1, updated_at = now(),
                 tag_ids = c.tag_ids
                     || ARRAY(SELECT t FROM unnest(r.tg::uuid[]) AS t WHERE t <> ALL(c.tag_ids)),
                 broadcast_opt_out = r.oo, lifecycle_stage = r.ls
             FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::text[], $13::bool[],
                 $14::text[])
                 AS r(id, f, l, e, p, lang, co, tz, pic, cu, tg, oo, ls)
             WHERE c.workspace_id = $1 AND c.id = ANY($2) AND c.id = r.id",
        )
        .await
    }

    /// Runs `sql` with the workspace as $1 and the columns as arrays $2 to $14.
    async fn write(
        &self,
        tx: &mut PgConnection,
        workspace_id: Uuid,
        sql: &'static str,
    ) -> Result<(), Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let t = &self.text;
        sqlx::query(sql)
            .bind(workspace_id)
            .bind(&self.ids)
            .bind(&t[0])
            .bind(&t[1])
            .bind(&t[2])
            .bind(&t[3])
            .bind(&t[4])
            .bind(&t[5])
            .bind(&t[6])
            .bind(&t[7])
            .bind(&self.custom)
            .bind(&self.tag_ids)
            .bind(&self.opt_out)
            .bind(&self.stage)
            .execute(tx)
            .await?;
        Ok(())
    }
}
