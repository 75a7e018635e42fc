//! Custom Inboxes and the built-in views: conversation conditions turned into one
//! keyset-paged query and its count.
use chrono::{DateTime, Utc};
use ism_platform::error::FieldError;
use ism_proto::conversations::v1 as pb;
use prost::Message as _;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::Error;
use crate::states::{Author, Status};
use crate::store::{CONVERSATION, Conversation};
use crate::wire;

/// Whom a view's conversations are assigned to.
#[derive(Debug, Clone, PartialEq)]
pub enum Assignee {
    Any,
    Nobody,
    /// One of these Users (none matches nothing).
    Users(Vec<Uuid>),
}

/// What a view's conversations satisfy.
#[derive(Debug, Clone)]
pub struct Filter {
    pub statuses: Vec<Status>,
    pub assignee: Assignee,
    pub team_ids: Vec<Uuid>,
    pub channel_ids: Vec<Uuid>,
    pub unread: bool,
    pub last_message_from: Option<Author>,
    /// Only Contacts waiting since before this time.
    pub waiting_since_before: Option<DateTime<Utc>>,
}

impl Filter {
    /// Open conversations, assigned to anyone or no one.
    pub fn open() -> Self {
        Self {
            statuses: vec![Status::Open],
            assignee: Assignee::Any,
            team_ids: Vec::new(),
            channel_ids: Vec::new(),
            unread: false,
            last_message_from: None,
            waiting_since_before: None,
        }
    }
}

fn uuids(values: &[String], field: &'static str) -> Result<Vec<Uuid>, FieldError> {
    values
        .iter()
        .map(|v| {
            v.parse()
                .map_err(|_| FieldError::new(field, "must be UUIDs"))
        })
        .collect()
}

/// Checks conditions a manager saves; the error names the field.
pub fn validate(conditions: &pb::InboxConditions) -> Result<(), FieldError> {
    for status in &conditions.statuses {
        if !matches!(
            pb::ConversationStatus::try_from(*status),
            Ok(pb::ConversationStatus::Open
                | pb::ConversationStatus::Snoozed
                | pb::ConversationStatus::Closed)
        ) {
            return Err(FieldError::new("conditions.statuses", "unknown status"));
        }
    }
    let assignee = pb::AssigneeCondition::try_from(conditions.assignee)
        .map_err(|_| FieldError::new("conditions.assignee", "unknown assignee condition"))?;
    if assignee == pb::AssigneeCondition::Users && conditions.assignee_user_ids.is_empty() {
        return Err(FieldError::new(
            "conditions.assignee_user_ids",
            "name at least one User",
        ));
    }
    uuids(
        &conditions.assignee_user_ids,
        "conditions.assignee_user_ids",
    )?;
    uuids(&conditions.team_ids, "conditions.team_ids")?;
    uuids(&conditions.channel_ids, "conditions.channel_ids")?;
    if pb::Party::try_from(conditions.last_message_from).is_err() {
        return Err(FieldError::new(
            "conditions.last_message_from",
            "unknown party",
        ));
    }
    if !(0..=525_600).contains(&conditions.waiting_longer_than_minutes) {
        return Err(FieldError::new(
            "conditions.waiting_longer_than_minutes",
            "must be between 0 and 525600 (a year)",
        ));
    }
    Ok(())
}

/// The filter of saved `conditions` as `me` (the caller's User id, if a User) sees it
/// at `now`.
pub fn filter(conditions: &pb::InboxConditions, me: Option<Uuid>, now: DateTime<Utc>) -> Filter {
    let ids = |values: &[String]| values.iter().filter_map(|v| v.parse().ok()).collect();
    let statuses = conditions
        .statuses
        .iter()
        .filter_map(|s| {
            pb::ConversationStatus::try_from(*s)
                .ok()
                .and_then(wire::status_of)
        })
        .collect();
    let assignee = match pb::AssigneeCondition::try_from(conditions.assignee) {
        Ok(pb::AssigneeCondition::Unassigned) => Assignee::Nobody,
        Ok(pb::AssigneeCondition::Me) => Assignee::Users(me.into_iter().collect()),
        Ok(pb::AssigneeCondition::Users) => Assignee::Users(ids(&conditions.assignee_user_ids)),
        _ => Assignee::Any,
    };
    let last_message_from = pb::Party::try_from(conditions.last_message_from)
        .ok()
        .and_then(wire::author_of);
    let minutes = conditions.waiting_longer_than_minutes;
    Filter {
        statuses,
        assignee,
        team_ids: ids(&conditions.team_ids),
        channel_ids: ids(&conditions.channel_ids),
        unread: conditions.unread,
        last_message_from,
        waiting_since_before: (minutes > 0)
            .then(|| now - chrono::TimeDelta::minutes(i64::from(minutes))),
    }
}

fn push_where(q: &mut QueryBuilder<Postgres>, workspace_id: Uuid, f: &Filter) {
    q.push(" WHERE workspace_id = ").push_bind(workspace_id);
    if !f.statuses.is_empty() {
        q.push(" AND status = ANY(")
            .push_bind(f.statuses.clone())
            .push(")");
    }
    match &f.assignee {
        Assignee::Any => {}
        Assignee::Nobody => {
            q.push(" AND assignee_user_id IS NULL");
        }
        Assignee::Users(users) => {
            q.push(" AND assignee_user_id = ANY(")
                .push_bind(users.clone())
                .push(")");
        }
    }
    if !f.team_ids.is_empty() {
        q.push(" AND assignee_team_id = ANY(")
            .push_bind(f.team_ids.clone())
            .push(")");
    }
    if !f.channel_ids.is_empty() {
        q.push(" AND channel_id = ANY(")
            .push_bind(f.channel_ids.clone())
            .push(")");
    }
    if f.unread {
        q.push(" AND waiting_since IS NOT NULL");
    }
    if let Some(from) = f.last_message_from {
        q.push(" AND last_message_from = ").push_bind(from);
    }
    if let Some(before) = f.waiting_since_before {
        q.push(" AND waiting_since < ").push_bind(before);
    }
}

/// One page of the view, most recently active first, after `before`.
pub async fn page(
    pool: &PgPool,
    workspace_id: Uuid,
    filter: &Filter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Conversation>, Error> {
    let mut q = QueryBuilder::new(format!("SELECT {CONVERSATION} FROM conversations"));
    push_where(&mut q, workspace_id, filter);
    if let Some((at, id)) = before {
        q.push(" AND (last_message_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY last_message_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// How many conversations the view holds.
pub async fn count(pool: &PgPool, workspace_id: Uuid, filter: &Filter) -> Result<i64, Error> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM conversations");
    push_where(&mut q, workspace_id, filter);
    Ok(q.build_query_scalar().fetch_one(pool).await?)
}

/// The view's conversations counted per Contact.
pub async fn count_per_contact(
    pool: &PgPool,
    workspace_id: Uuid,
    filter: &Filter,
) -> Result<Vec<(Uuid, i64)>, Error> {
    let mut q = QueryBuilder::new("SELECT contact_id, count(*) FROM conversations");
    push_where(&mut q, workspace_id, filter);
    q.push(" GROUP BY contact_id");
    Ok(q.build_query_as().fetch_all(pool).await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct Inbox {
    pub id: Uuid,
    pub name: String,
    pub conditions: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl Inbox {
    /// The stored conditions (validated when saved).
    pub fn conditions(&self) -> pb::InboxConditions {
        pb::InboxConditions::decode(self.conditions.as_slice()).unwrap_or_default()
    }
}

pub async fn create(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    name: &str,
    conditions: &pb::InboxConditions,
) -> Result<Inbox, Error> {
    sqlx::query_as(
        "INSERT INTO inboxes (id, workspace_id, name, conditions) VALUES ($1, $2, $3, $4)
         RETURNING id, name, conditions, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(name)
    .bind(conditions.encode_to_vec())
    .fetch_one(conn)
    .await
    .map_err(Error::from)
}

pub async fn get(conn: &mut PgConnection, workspace_id: Uuid, id: Uuid) -> Result<Inbox, Error> {
    sqlx::query_as(
        "SELECT id, name, conditions, created_at FROM inboxes WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("inbox"))
}

pub async fn update(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    name: &str,
    conditions: &pb::InboxConditions,
) -> Result<Inbox, Error> {
    sqlx::query_as(
        "UPDATE inboxes SET name = $3, conditions = $4 WHERE workspace_id = $1 AND id = $2
         RETURNING id, name, conditions, created_at",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(name)
    .bind(conditions.encode_to_vec())
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("inbox"))
}

pub async fn delete(conn: &mut PgConnection, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
    ism_platform::db::delete_in_workspace(conn, "inboxes", workspace_id, id, "inbox").await
}

/// The Workspace's inboxes by name, after `after`.
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Inbox>, Error> {
    let (name, id) = after.unzip();
    Ok(sqlx::query_as(
        "SELECT id, name, conditions, created_at FROM inboxes
         WHERE workspace_id = $1 AND ($2::text IS NULL OR (lower(name), id) > ($2, $3))
         ORDER BY lower(name), id LIMIT $4",
    )
    .bind(workspace_id)
    .bind(name)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
