//! Tenancy, user, team, API-key and audit storage. Every query names the Workspace it
//! reads or writes, so nothing crosses the wall between tenants.
use std::collections::BTreeMap;

use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ism_platform::auth::Role;
use ism_platform::error::FieldError;
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::audit::{Action, Actor, Target};
use crate::domain::{Availability, OpeningInterval, valid_name};
use crate::error::Error;

#[derive(Debug, Clone, FromRow)]
pub struct Workspace {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub timezone: String,
    pub default_language: String,
    pub business_hours: Json<Vec<OpeningInterval>>,
    pub created_at: DateTime<Utc>,
}

const WORKSPACE_COLUMNS: &str =
    "id, organization_id, name, timezone, default_language, business_hours, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub availability: Availability,
    pub created_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

const USER_COLUMNS: &str =
    "id, workspace_id, email, display_name, role, availability, created_at, deactivated_at";

#[derive(Debug, Clone, FromRow)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditEvent {
    pub id: Uuid,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: Json<BTreeMap<String, String>>,
    pub occurred_at: DateTime<Utc>,
}

/// Settings to change on a Workspace; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct WorkspaceChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub default_language: Option<String>,
    pub business_hours: Option<Vec<OpeningInterval>>,
}

/// Records an administrative action in the caller's transaction.
pub async fn audit(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    actor: &Actor,
    action: Action,
    target: Target,
    details: BTreeMap<String, String>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_events (id, workspace_id, actor, action, target, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(actor.name())
    .bind(action)
    .bind(target.to_string())
    .bind(Json(details))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_audit_events(
    pool: &PgPool,
    workspace_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEvent>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, actor, action, target, details, occurred_at FROM audit_events
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(workspace_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn create_organization(conn: &mut PgConnection, name: &str) -> Result<Uuid, Error> {
    let name = valid_name("name", name)?;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(id)
}

pub async fn organization_of(pool: &PgPool, workspace_id: Uuid) -> Result<Organization, Error> {
    sqlx::query_as(
        "SELECT o.id, o.name, o.created_at FROM organizations o
         JOIN workspaces w ON w.organization_id = o.id WHERE w.id = $1",
    )
    .bind(workspace_id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("organization"))
}

pub async fn rename_organization(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    name: &str,
) -> Result<Organization, Error> {
    let name = valid_name("name", name)?;
    sqlx::query_as(
        "UPDATE organizations o SET name = $2 FROM workspaces w
         WHERE w.id = $1 AND w.organization_id = o.id RETURNING o.id, o.name, o.created_at",
    )
    .bind(workspace_id)
    .bind(name)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("organization"))
}

pub async fn create_workspace(
    conn: &mut PgConnection,
    organization_id: Uuid,
    name: &str,
    timezone: &str,
    default_language: &str,
) -> Result<Workspace, Error> {
    let name = valid_name("name", name)?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
            .bind(organization_id)
            .fetch_one(&mut *conn)
            .await?;
    if !known {
        return Err(Error::NotFound("organization"));
    }
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO workspaces (id, organization_id, name, timezone, default_language)
         VALUES ($1, $2, $3, $4, $5) RETURNING {WORKSPACE_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(organization_id)
    .bind(name)
    .bind(timezone)
    .bind(default_language)
    .fetch_one(conn)
    .await?)
}

pub async fn workspace(pool: &PgPool, id: Uuid) -> Result<Workspace, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND archived_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("workspace"))
}

pub async fn update_workspace(
    conn: &mut PgConnection,
    id: Uuid,
    changes: WorkspaceChanges,
) -> Result<Workspace, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE workspaces SET name = coalesce($2, name), timezone = coalesce($3, timezone),
             default_language = coalesce($4, default_language),
             business_hours = coalesce($5, business_hours)
         WHERE id = $1 AND archived_at IS NULL RETURNING {WORKSPACE_COLUMNS}"
    )))
    .bind(id)
    .bind(changes.name)
    .bind(changes.timezone)
    .bind(changes.default_language)
    .bind(changes.business_hours.map(Json))
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("workspace"))
}

/// Live Workspaces of the Organization that `workspace_id` belongs to.
pub async fn list_sibling_workspaces(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Workspace>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WORKSPACE_COLUMNS} FROM workspaces
         WHERE organization_id = (SELECT organization_id FROM workspaces WHERE id = $1)
           AND archived_at IS NULL AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Archives `id` if it is a live Workspace of the same Organization as `caller_workspace`.
pub async fn archive_sibling_workspace(
    conn: &mut PgConnection,
    caller_workspace: Uuid,
    id: Uuid,
) -> Result<(), Error> {
    let archived = sqlx::query(
        "UPDATE workspaces SET archived_at = now()
         WHERE id = $2 AND archived_at IS NULL
           AND organization_id = (SELECT organization_id FROM workspaces WHERE id = $1)",
    )
    .bind(caller_workspace)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    if archived == 0 {
        return Err(Error::NotFound("workspace"));
    }
    Ok(())
}

/// Creates a key; returns it with the full secret, which is never stored.
pub async fn create_api_key(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String), Error> {
    let name = valid_name("name", name)?;
    if role == Role::Service {
        return Err(FieldError::new("role", "must be owner, manager or agent").into());
    }
    let mut random = [0u8; 38];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let prefix = hex::encode(&random[..6]);
    let secret = URL_SAFE_NO_PAD.encode(&random[6..]);
    let key: ApiKey = sqlx::query_as(
        "INSERT INTO api_keys (id, workspace_id, name, role, prefix, secret_hash) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, workspace_id, name, role, prefix, created_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(name)
    .bind(role)
    .bind(&prefix)
    .bind(Sha256::digest(secret.as_bytes()).to_vec())
    .fetch_one(conn)
    .await?;
    Ok((key, format!("ism_{prefix}_{secret}")))
}

/// An API key's public prefix and its secret (`ism_<prefix>_<secret>`).
pub fn split_api_key(full: &str) -> Option<(&str, &str)> {
    full.strip_prefix("ism_")
        .and_then(|rest| rest.split_once('_'))
}

/// The live key `full` names, if its secret matches.
pub async fn authenticate_api_key(pool: &PgPool, full: &str) -> Result<ApiKey, Error> {
    const REFUSED: Error = Error::Unauthenticated(std::borrow::Cow::Borrowed(
        "API key not recognised or revoked",
    ));
    let (prefix, secret) = split_api_key(full).ok_or(REFUSED)?;
    let row: ApiKeyWithHash = sqlx::query_as(
        "SELECT k.id, k.workspace_id, k.name, k.role, k.prefix, k.created_at, k.revoked_at, k.secret_hash
         FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
         WHERE k.prefix = $1 AND k.revoked_at IS NULL AND w.archived_at IS NULL",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await?
    .ok_or(REFUSED)?;
    if bool::from(
        Sha256::digest(secret.as_bytes())
            .as_slice()
            .ct_eq(&row.secret_hash),
    ) {
        Ok(row.key)
    } else {
        Err(REFUSED)
    }
}

#[derive(FromRow)]
struct ApiKeyWithHash {
    #[sqlx(flatten)]
    key: ApiKey,
    secret_hash: Vec<u8>,
}

pub async fn list_api_keys(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ApiKey>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, workspace_id, name, role, prefix, created_at, revoked_at FROM api_keys
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn revoke_api_key(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<ApiKey, Error> {
    sqlx::query_as(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE workspace_id = $1 AND id = $2
         RETURNING id, workspace_id, name, role, prefix, created_at, revoked_at",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("API key"))
}

pub async fn create_user(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    email: &str,
    display_name: &str,
    role: Role,
) -> Result<User, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, workspace_id, email, display_name, role) VALUES ($1, $2, $3, $4, $5)
         RETURNING {USER_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(email)
    .bind(display_name)
    .bind(role)
    .fetch_one(conn)
    .await
    .map_err(Error::from)
}

pub async fn user(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<User, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("user"))
}

/// The User, locked for the rest of the transaction.
pub async fn user_for_update(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<User, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("user"))
}

pub async fn list_users(
    pool: &PgPool,
    workspace_id: Uuid,
    include_deactivated: bool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<User>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE workspace_id = $1 AND ($2 OR deactivated_at IS NULL)
           AND ($3::uuid IS NULL OR id > $3)
         ORDER BY id LIMIT $4"
    )))
    .bind(workspace_id)
    .bind(include_deactivated)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// FAILED_PRECONDITION unless an active owner other than `except` remains. Locks the
/// Workspace's owners so two concurrent demotions cannot both pass.
pub async fn ensure_another_owner(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    except: Uuid,
) -> Result<(), Error> {
    let others: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE workspace_id = $1 AND role = 'owner'
           AND deactivated_at IS NULL AND id <> $2 FOR UPDATE",
    )
    .bind(workspace_id)
    .bind(except)
    .fetch_all(conn)
    .await?;
    if others.is_empty() {
        return Err(Error::Precondition(FieldError::new(
            "id",
            "this is the Workspace's last active owner; make another User owner first",
        )));
    }
    Ok(())
}

pub async fn update_user(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    display_name: Option<String>,
    role: Option<Role>,
) -> Result<User, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET display_name = coalesce($3, display_name), role = coalesce($4, role)
         WHERE workspace_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(display_name)
    .bind(role)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("user"))
}

pub async fn deactivate_user(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<User, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET deactivated_at = coalesce(deactivated_at, now()), availability = 'offline'
         WHERE workspace_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("user"))
}

pub async fn set_availability(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    availability: Availability,
) -> Result<User, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET availability = $3 WHERE workspace_id = $1 AND id = $2
         RETURNING {USER_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(availability)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("user"))
}

pub async fn create_team(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    name: &str,
) -> Result<Team, Error> {
    sqlx::query_as(
        "INSERT INTO teams (id, workspace_id, name) VALUES ($1, $2, $3)
         RETURNING id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(Error::from)
}

pub async fn team(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Team, Error> {
    sqlx::query_as("SELECT id, name, created_at FROM teams WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound("team"))
}

pub async fn list_teams(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Team>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, name, created_at FROM teams
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn rename_team(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<Team, Error> {
    sqlx::query_as(
        "UPDATE teams SET name = $3 WHERE workspace_id = $1 AND id = $2
         RETURNING id, name, created_at",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(name)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("team"))
}

pub async fn delete_team(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<(), Error> {
    ism_platform::db::delete_in_workspace(conn, "teams", workspace_id, id, "team").await
}

/// Adds an active User of the Team's Workspace; returns whether it was new.
pub async fn add_team_member(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<bool, Error> {
    let team: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM teams WHERE workspace_id = $1 AND id = $2 FOR UPDATE")
            .bind(workspace_id)
            .bind(team_id)
            .fetch_optional(&mut *conn)
            .await?;
    if team.is_none() {
        return Err(Error::NotFound("team"));
    }
    let active: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE workspace_id = $1 AND id = $2 AND deactivated_at IS NULL)",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?;
    if !active {
        return Err(Error::Precondition(FieldError::new(
            "user_id",
            "no active User with this id in the Team's Workspace",
        )));
    }
    let added = sqlx::query(
        "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(added == 1)
}

/// Removes a membership; returns whether there was one.
pub async fn remove_team_member(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<bool, Error> {
    let team: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM teams WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(team_id)
            .fetch_optional(&mut *conn)
            .await?;
    if team.is_none() {
        return Err(Error::NotFound("team"));
    }
    let removed = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(removed == 1)
}

pub async fn list_team_members(
    pool: &PgPool,
    workspace_id: Uuid,
    team_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<User>, Error> {
    team(pool, workspace_id, team_id).await?;
    Ok(sqlx::query_as(
        "SELECT u.id, u.workspace_id, u.email, u.display_name, u.role, u.availability, u.created_at, u.deactivated_at
         FROM team_members m JOIN users u ON u.id = m.user_id
         WHERE m.team_id = $1 AND u.workspace_id = $2 AND ($3::uuid IS NULL OR u.id > $3)
         ORDER BY u.id LIMIT $4",
    )
    .bind(team_id)
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn list_user_teams(
    pool: &PgPool,
    workspace_id: Uuid,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Team>, Error> {
    user(pool, workspace_id, user_id).await?;
    Ok(sqlx::query_as(
        "SELECT t.id, t.name, t.created_at FROM team_members m JOIN teams t ON t.id = m.team_id
         WHERE m.user_id = $1 AND t.workspace_id = $2 AND ($3::uuid IS NULL OR t.id > $3)
         ORDER BY t.id LIMIT $4",
    )
    .bind(user_id)
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
