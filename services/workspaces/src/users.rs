//! Users: the people of a Workspace, their roles and whether they can take conversations.
use ism_platform::auth::{Role, Subject};
use ism_platform::convert::timestamp;
use ism_platform::error::{Checks, FieldError};
use ism_platform::events::{emit, topics};
use ism_proto::events::v1::UserAvailabilityChanged;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::audit::{Action, Actor, Target, details};
use crate::domain::{self, Availability};
use crate::error::Error;
use crate::store::{self, User};
use crate::{tokens, wire};

/// A User to add, as requested.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    /// `Err` when the request named no grantable role.
    pub role: Result<Role, FieldError>,
}

/// Changes to a User; `None` keeps the current value.
pub struct UserChanges<'a> {
    pub display_name: Option<&'a str>,
    pub role: Option<Result<Role, FieldError>>,
}

fn grantable(role: Result<Role, FieldError>) -> Result<Role, FieldError> {
    role.and_then(|role| {
        if role.grantable() {
            Ok(role)
        } else {
            Err(FieldError::new(
                "role",
                "must be ROLE_OWNER, ROLE_MANAGER or ROLE_AGENT",
            ))
        }
    })
}

/// Adds a User to `workspace` with a role up to the actor's own.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    new: NewUser<'_>,
) -> Result<User, Error> {
    let (email, name, role) = (
        domain::valid_email(new.email),
        domain::valid_name("display_name", new.display_name),
        grantable(new.role),
    )
        .all()?;
    actor.not_above(role)?;
    let mut tx = pool.begin().await?;
    let user = store::create_user(&mut tx, workspace, &email, &name, role).await?;
    let facts = details([("email", user.email.clone()), ("role", role.to_string())]);
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::UserCreated,
        Target::User(user.id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Renames a User or changes their role. Neither the User's current role nor a new one
/// may exceed the actor's, and the last active owner cannot be demoted.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    user_id: Uuid,
    changes: UserChanges<'_>,
) -> Result<User, Error> {
    let (name, role) = (
        changes
            .display_name
            .map(|n| domain::valid_name("display_name", n))
            .transpose(),
        changes.role.map(grantable).transpose(),
    )
        .all()?;
    let mut tx = pool.begin().await?;
    let current = store::user_for_update(&mut tx, workspace, user_id).await?;
    // Only owners touch owners, a rename included.
    actor.not_above(current.role)?;
    if let Some(role) = role {
        actor.not_above(role)?;
        if current.role == Role::Owner && role != Role::Owner && current.deactivated_at.is_none() {
            store::ensure_another_owner(&mut tx, workspace, user_id).await?;
        }
    }
    let mut facts = details([]);
    if let Some(name) = &name {
        facts.insert("display_name".to_owned(), name.clone());
    }
    if let Some(role) = role {
        facts.insert("role".to_owned(), role.to_string());
    }
    let user = store::update_user(&mut tx, workspace, user_id, name, role).await?;
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::UserUpdated,
        Target::User(user_id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Deactivates a User (offline from now on); the last active owner cannot be.
pub async fn deactivate(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    user_id: Uuid,
) -> Result<User, Error> {
    let mut tx = pool.begin().await?;
    let current = store::user_for_update(&mut tx, workspace, user_id).await?;
    actor.not_above(current.role)?;
    let was_active = current.deactivated_at.is_none();
    if current.role == Role::Owner && was_active {
        store::ensure_another_owner(&mut tx, workspace, user_id).await?;
    }
    let user = store::deactivate_user(&mut tx, workspace, user_id).await?;
    if was_active {
        publish_availability(&mut tx, workspace, &user, current.availability).await?;
        let at = user.deactivated_at.unwrap_or_else(chrono::Utc::now);
        tokens::revoke(&mut tx, workspace, Subject::User(user_id), at).await?;
        store::audit(
            &mut tx,
            workspace,
            actor,
            Action::UserDeactivated,
            Target::User(user_id),
            details([]),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(user)
}

/// Sets an active User's availability: a User sets their own, a manager anyone's.
pub async fn set_availability(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    user_id: Uuid,
    availability: Availability,
) -> Result<User, Error> {
    if !actor.is_user(user_id) {
        actor.require(Role::Manager)?;
    }
    let mut tx = pool.begin().await?;
    let current = store::user_for_update(&mut tx, workspace, user_id).await?;
    if current.deactivated_at.is_some() {
        return Err(Error::Precondition(FieldError::new(
            "user_id",
            "the User is deactivated",
        )));
    }
    let user = store::set_availability(&mut tx, workspace, user_id, availability).await?;
    publish_availability(&mut tx, workspace, &user, current.availability).await?;
    tx.commit().await?;
    Ok(user)
}

/// Enqueues `workspaces.user.availability_changed` when `user`'s availability differs
/// from `previous`, in the caller's transaction.
async fn publish_availability(
    conn: &mut PgConnection,
    workspace: Uuid,
    user: &User,
    previous: Availability,
) -> Result<(), Error> {
    if user.availability == previous {
        return Ok(());
    }
    let payload = UserAvailabilityChanged {
        user_id: user.id.to_string(),
        availability: wire::availability_to_pb(user.availability) as i32,
        previous_availability: wire::availability_to_pb(previous) as i32,
        changed_at: Some(timestamp(chrono::Utc::now())),
    };
    emit(
        conn,
        &topics::USER_AVAILABILITY_CHANGED,
        workspace,
        &user.id.to_string(),
        &payload,
    )
    .await?;
    Ok(())
}
