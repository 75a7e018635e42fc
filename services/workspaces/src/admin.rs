//! Operator bootstrap used by `ism admin`: organizations, workspaces and API keys
//! created straight in this service's database.
use ism_platform::auth::Role;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Error;
use crate::store;
pub use crate::store::{ApiKey, Workspace};

/// Creates an Organization; returns its id.
pub async fn create_organization(pool: &PgPool, name: &str) -> Result<Uuid, Error> {
    store::create_organization(pool, name).await
}

/// Creates a Workspace in an Organization.
pub async fn create_workspace(
    pool: &PgPool,
    organization_id: Uuid,
    name: &str,
) -> Result<Workspace, Error> {
    store::create_workspace(pool, organization_id, name).await
}

/// Creates an API key; the returned secret is the only copy.
pub async fn create_api_key(
    pool: &PgPool,
    workspace_id: Uuid,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String), Error> {
    store::create_api_key(pool, workspace_id, name, role).await
}

/// The Workspace named `name`, if one exists.
pub async fn find_workspace(pool: &PgPool, name: &str) -> Result<Option<Workspace>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, organization_id, name, timezone, created_at FROM workspaces
         WHERE name = $1 AND archived_at IS NULL ORDER BY created_at LIMIT 1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?)
}
