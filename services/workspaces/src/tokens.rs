//! Access tokens: minted for API keys, Users and the platform's own services.
use ism_platform::auth::{Role, Subject};
use ism_platform::config::ServiceName;
use ism_platform::convert::timestamp;
use ism_platform::error::FieldError;
use ism_platform::events::{emit, topics};
use ism_proto::events::v1::AccessRevoked;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgConnection, PgPool};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::audit::{Action, Actor, Target};
use crate::error::Error;
use crate::keys::Signer;
use crate::store;

/// A signed access token and its expiry (Unix seconds).
pub type Minted = (String, i64);

/// A token acting with the role of the live API key `presented`.
pub async fn for_api_key(pool: &PgPool, signer: &Signer, presented: &str) -> Result<Minted, Error> {
    let key = store::authenticate_api_key(pool, presented.trim()).await?;
    Ok(signer.mint(
        Subject::ApiKey(key.id.to_string()).to_string(),
        key.role,
        Some(key.workspace_id),
    )?)
}

/// A service token for `service`, when `presented` is the platform's service secret.
pub fn for_service(
    signer: &Signer,
    service_secret: &SecretString,
    service: &str,
    presented: &str,
) -> Result<Minted, Error> {
    let service: ServiceName = service
        .parse()
        .map_err(|e: String| Error::invalid("service", e))?;
    let expected = service_secret.expose_secret().as_bytes();
    if !bool::from(presented.as_bytes().ct_eq(expected)) {
        return Err(Error::Unauthenticated(
            "service secret not recognised".into(),
        ));
    }
    Ok(signer.mint(
        Subject::Service(service.to_string()).to_string(),
        Role::Service,
        None,
    )?)
}

/// A token acting as the active User `user_id` of `workspace`, with the User's role,
/// which may not exceed the actor's. Audited.
pub async fn for_user(
    pool: &PgPool,
    signer: &Signer,
    actor: &Actor,
    workspace: Uuid,
    user_id: Uuid,
) -> Result<Minted, Error> {
    let mut tx = pool.begin().await?;
    let user = store::user_for_update(&mut tx, workspace, user_id).await?;
    if user.deactivated_at.is_some() {
        return Err(Error::Precondition(FieldError::new(
            "user_id",
            "the User is deactivated",
        )));
    }
    actor.not_above(user.role)?;
    let minted = signer.mint(
        Subject::User(user_id).to_string(),
        user.role,
        Some(workspace),
    )?;
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::UserTokenIssued,
        Target::User(user_id),
        Default::default(),
    )
    .await?;
    tx.commit().await?;
    Ok(minted)
}

/// Tells every service, in the caller's transaction, that `subject`'s tokens issued until
/// `at` are no longer valid (`workspaces.access.revoked`).
pub async fn revoke(
    conn: &mut PgConnection,
    workspace: Uuid,
    subject: Subject,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let subject = subject.to_string();
    let payload = AccessRevoked {
        subject: subject.clone(),
        revoked_at: Some(timestamp(at)),
    };
    emit(conn, &topics::ACCESS_REVOKED, workspace, &subject, &payload).await?;
    Ok(())
}
