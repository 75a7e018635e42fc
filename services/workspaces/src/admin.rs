//! Operator bootstrap used by `ism admin`: organizations, workspaces, users, API keys and
//! user tokens created straight in this service's database. Every change is audited with
//! the actor `operator:cli`.
use std::collections::BTreeMap;

use ism_platform::auth::{Role, Subject};
use ism_platform::config::Settings;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain;
use crate::error::Error;
use crate::keys::Signer;
use crate::store;
pub use crate::store::{ApiKey, User, Workspace};

/// The audit actor of operator commands.
pub const OPERATOR: &str = "operator:cli";

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
    let mut tx = pool.begin().await?;
    let workspace = store::create_workspace(&mut tx, organization_id, name, "UTC", "en").await?;
    let details = BTreeMap::from([("name".to_owned(), workspace.name.clone())]);
    let target = format!("workspace:{}", workspace.id);
    store::audit(
        &mut tx,
        workspace.id,
        OPERATOR,
        "workspace.created",
        target,
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(workspace)
}

/// Creates an API key; the returned secret is the only copy.
pub async fn create_api_key(
    pool: &PgPool,
    workspace_id: Uuid,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String), Error> {
    store::workspace(pool, workspace_id).await?;
    let mut tx = pool.begin().await?;
    let (key, secret) = store::create_api_key(&mut tx, workspace_id, name, role).await?;
    let details = BTreeMap::from([
        ("name".to_owned(), key.name.clone()),
        ("role".to_owned(), key.role.clone()),
    ]);
    let target = format!("api_key:{}", key.id);
    store::audit(
        &mut tx,
        workspace_id,
        OPERATOR,
        "api_key.created",
        target,
        details,
    )
    .await?;
    tx.commit().await?;
    Ok((key, secret))
}

/// Adds a User to a Workspace.
pub async fn create_user(
    pool: &PgPool,
    workspace_id: Uuid,
    email: &str,
    display_name: &str,
    role: Role,
) -> Result<User, Error> {
    let email = domain::valid_email(email)?;
    let name = domain::valid_name("display_name", display_name)?;
    if role == Role::Service {
        return Err(ism_platform::error::FieldError::new(
            "role",
            "must be owner, manager or agent",
        )
        .into());
    }
    store::workspace(pool, workspace_id).await?;
    let mut tx = pool.begin().await?;
    let user = store::create_user(&mut tx, workspace_id, &email, &name, role).await?;
    let details = BTreeMap::from([
        ("email".to_owned(), user.email.clone()),
        ("role".to_owned(), user.role.clone()),
    ]);
    let target = Subject::User(user.id).to_string();
    store::audit(
        &mut tx,
        workspace_id,
        OPERATOR,
        "user.created",
        target,
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Mints an access token for an active User with the service's signing key; returns the
/// token and its expiry (Unix seconds).
pub async fn user_token(
    pool: &PgPool,
    settings: &Settings,
    user_id: Uuid,
) -> Result<(String, i64), Error> {
    let user: Option<User> = sqlx::query_as(
        "SELECT id, workspace_id, email, display_name, role, availability, created_at, deactivated_at
         FROM users WHERE id = $1 AND deactivated_at IS NULL",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    let user = user.ok_or(Error::NotFound("active user"))?;
    store::workspace(pool, user.workspace_id).await?;
    let role: Role = user
        .role
        .parse()
        .map_err(|e: String| Error::Unexpected(anyhow::anyhow!(e)))?;
    let signer = Signer::load(
        pool,
        &settings.auth.signing_key_pem,
        settings.auth.token_ttl_seconds,
    )
    .await?;
    let minted = signer.mint(
        Subject::User(user.id).to_string(),
        role,
        Some(user.workspace_id),
    )?;
    let mut conn = pool.acquire().await?;
    let target = Subject::User(user.id).to_string();
    store::audit(
        &mut conn,
        user.workspace_id,
        OPERATOR,
        "user.token_issued",
        target,
        BTreeMap::new(),
    )
    .await?;
    Ok(minted)
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
