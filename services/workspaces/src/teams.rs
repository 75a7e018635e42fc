//! Teams: named groups of Users that conversations are assigned to.
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{Action, Actor, Target, details};
use crate::domain;
use crate::error::Error;
use crate::store::{self, Team};

/// Creates a Team named `name` (unique in the Workspace).
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    name: &str,
) -> Result<Team, Error> {
    let name = domain::valid_name("name", name)?;
    let mut tx = pool.begin().await?;
    let team = store::create_team(&mut tx, workspace, &name).await?;
    let facts = details([("name", team.name.clone())]);
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::TeamCreated,
        Target::Team(team.id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(team)
}

/// Renames a Team.
pub async fn rename(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    team_id: Uuid,
    name: &str,
) -> Result<Team, Error> {
    let name = domain::valid_name("name", name)?;
    let mut tx = pool.begin().await?;
    let team = store::rename_team(&mut tx, workspace, team_id, &name).await?;
    let facts = details([("name", team.name.clone())]);
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::TeamRenamed,
        Target::Team(team_id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(team)
}

/// Deletes a Team; its Users stay.
pub async fn delete(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    team_id: Uuid,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    store::delete_team(&mut tx, workspace, team_id).await?;
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::TeamDeleted,
        Target::Team(team_id),
        details([]),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Adds or removes a member; audited only when membership changed, so a repeated call
/// leaves no second entry.
pub async fn set_member(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    team_id: Uuid,
    user_id: Uuid,
    member: bool,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let (changed, action) = if member {
        let added = store::add_team_member(&mut tx, workspace, team_id, user_id).await?;
        (added, Action::TeamMemberAdded)
    } else {
        let removed = store::remove_team_member(&mut tx, workspace, team_id, user_id).await?;
        (removed, Action::TeamMemberRemoved)
    };
    if changed {
        let facts = details([("user_id", user_id.to_string())]);
        store::audit(
            &mut tx,
            workspace,
            actor,
            action,
            Target::Team(team_id),
            facts,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
