//! Operator bootstrap used by `ism admin`: organizations, workspaces, users, API keys and
//! user tokens created straight in this service's database, through the same use cases
//! as the API. Every change is audited with the actor `operator:cli`.
use ism_platform::auth::Role;
use ism_platform::config::Settings;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::Actor;
use crate::error::Error;
use crate::keys::Signer;
pub use crate::store::{ApiKey, User, Workspace};
use crate::users::NewUser;
use crate::{api_keys, store, tenancy, tokens, users};

/// Creates an Organization; returns its id.
pub async fn create_organization(pool: &PgPool, name: &str) -> Result<Uuid, Error> {
    let mut conn = pool.acquire().await?;
    store::create_organization(&mut conn, name).await
}

/// Creates a Workspace in an Organization.
pub async fn create_workspace(
    pool: &PgPool,
    organization_id: Uuid,
    name: &str,
) -> Result<Workspace, Error> {
    tenancy::create_in(pool, &Actor::operator(), organization_id, name).await
}

/// Creates an API key; the returned secret is the only copy.
pub async fn create_api_key(
    pool: &PgPool,
    workspace_id: Uuid,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String), Error> {
    store::workspace(pool, workspace_id).await?;
    api_keys::create(pool, &Actor::operator(), workspace_id, name, role).await
}

/// Adds a User to a Workspace.
pub async fn create_user(
    pool: &PgPool,
    workspace_id: Uuid,
    email: &str,
    display_name: &str,
    role: Role,
) -> Result<User, Error> {
    store::workspace(pool, workspace_id).await?;
    let new = NewUser {
        email,
        display_name,
        role: Ok(role),
    };
    users::create(pool, &Actor::operator(), workspace_id, new).await
}

/// Mints an access token for an active User with the service's signing key; returns the
/// token and its expiry (Unix seconds).
pub async fn user_token(
    pool: &PgPool,
    settings: &Settings,
    user_id: Uuid,
) -> Result<(String, i64), Error> {
    let workspace: Option<Uuid> = sqlx::query_scalar(
        "SELECT workspace_id FROM users WHERE id = $1 AND deactivated_at IS NULL",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    let workspace = workspace.ok_or(Error::NotFound("active user"))?;
    store::workspace(pool, workspace).await?;
    let signer = Signer::load(pool, settings).await?;
    tokens::for_user(pool, &signer, &Actor::operator(), workspace, user_id).await
}

/// The Workspace named `name`, if one exists.
pub async fn find_workspace(pool: &PgPool, name: &str) -> Result<Option<Workspace>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, organization_id, name, timezone, default_language, business_hours, created_at
         FROM workspaces WHERE name = $1 AND archived_at IS NULL ORDER BY created_at LIMIT 1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?)
}
