//! API keys: created with a secret shown once, revoked, and exchanged for access tokens.
use ism_platform::auth::{Role, Subject};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{Action, Actor, Target, details};
use crate::error::Error;
use crate::store::{self, ApiKey};
use crate::tokens;

/// Creates a key in `workspace`; returns it with its secret, of which this is the only
/// copy.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String), Error> {
    let mut tx = pool.begin().await?;
    let (key, secret) = store::create_api_key(&mut tx, workspace, name, role).await?;
    record_created(&mut tx, actor, &key).await?;
    tx.commit().await?;
    Ok((key, secret))
}

/// Audits `key`'s creation in its Workspace.
pub async fn record_created(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    key: &ApiKey,
) -> Result<(), Error> {
    let facts = details([("name", key.name.clone()), ("role", key.role.to_string())]);
    store::audit(
        conn,
        key.workspace_id,
        actor,
        Action::ApiKeyCreated,
        Target::ApiKey(key.id),
        facts,
    )
    .await
}

/// Revokes a key of `workspace`; its tokens stop working when they expire.
pub async fn revoke(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    id: Uuid,
) -> Result<ApiKey, Error> {
    let mut tx = pool.begin().await?;
    let key = store::revoke_api_key(&mut tx, workspace, id).await?;
    if let Some(at) = key.revoked_at {
        tokens::revoke(&mut tx, workspace, Subject::ApiKey(id.to_string()), at).await?;
    }
    let facts = details([("name", key.name.clone())]);
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::ApiKeyRevoked,
        Target::ApiKey(id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(key)
}
