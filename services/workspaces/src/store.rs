//! Tenancy and API-key storage.
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ism_platform::auth::Role;
use ism_platform::paging::FieldError;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::Error;

#[derive(Debug, Clone, FromRow)]
pub struct Workspace {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A human-facing name: trimmed, 1 to 100 characters.
pub fn valid_name(field: &'static str, name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    match name.chars().count() {
        0 => Err(FieldError::new(field, "must not be empty")),
        1..=100 => Ok(name.to_owned()),
        _ => Err(FieldError::new(field, "must be at most 100 characters")),
    }
}

pub async fn create_organization(pool: &PgPool, name: &str) -> Result<Uuid, Error> {
    let name = valid_name("name", name)?;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(id)
}

pub async fn create_workspace(
    pool: &PgPool,
    organization_id: Uuid,
    name: &str,
) -> Result<Workspace, Error> {
    let name = valid_name("name", name)?;
    Ok(sqlx::query_as(
        "INSERT INTO workspaces (id, organization_id, name) VALUES ($1, $2, $3)
         RETURNING id, organization_id, name, timezone, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(organization_id)
    .bind(name)
    .fetch_one(pool)
    .await?)
}

pub async fn workspace(pool: &PgPool, id: Uuid) -> Result<Workspace, Error> {
    sqlx::query_as(
        "SELECT id, organization_id, name, timezone, created_at FROM workspaces
         WHERE id = $1 AND archived_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("workspace"))
}

/// Creates a key; returns it with the full secret, which is never stored.
pub async fn create_api_key(
    pool: &PgPool,
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
    .bind(role.as_str())
    .bind(&prefix)
    .bind(Sha256::digest(secret.as_bytes()).to_vec())
    .fetch_one(pool)
    .await?;
    Ok((key, format!("ism_{prefix}_{secret}")))
}

/// The live key `full` names, if its secret matches.
pub async fn authenticate_api_key(pool: &PgPool, full: &str) -> Result<ApiKey, Error> {
    const REFUSED: Error = Error::Unauthenticated("API key not recognised or revoked");
    let (prefix, secret) = full
        .strip_prefix("ism_")
        .and_then(|rest| rest.split_once('_'))
        .ok_or(REFUSED)?;
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

pub async fn revoke_api_key(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<ApiKey, Error> {
    sqlx::query_as(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE workspace_id = $1 AND id = $2
         RETURNING id, workspace_id, name, role, prefix, created_at, revoked_at",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("API key"))
}
