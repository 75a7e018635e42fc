//! Organizations and their Workspaces: created, configured and archived.
use std::collections::BTreeMap;

use ism_platform::auth::Role;
use ism_platform::error::Checks;
use sqlx::PgPool;
use uuid::Uuid;

use crate::api_keys;
use crate::audit::{Action, Actor, Target, details};
use crate::domain::{self, OpeningInterval};
use crate::error::Error;
use crate::store::{self, Organization, Workspace, WorkspaceChanges};

/// A Workspace's settings as requested; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct Settings<'a> {
    pub name: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub default_language: Option<&'a str>,
    pub business_hours: Option<Vec<OpeningInterval>>,
}

/// Changes `workspace`'s settings; every bad field is reported at once.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    settings: Settings<'_>,
) -> Result<Workspace, Error> {
    let (name, timezone, default_language, business_hours) = (
        settings
            .name
            .map(|n| domain::valid_name("name", n))
            .transpose(),
        settings.timezone.map(domain::valid_timezone).transpose(),
        settings
            .default_language
            .map(domain::valid_language)
            .transpose(),
        settings
            .business_hours
            .map(domain::valid_business_hours)
            .transpose(),
    )
        .all()?;
    let mut facts = BTreeMap::new();
    for (key, value) in [
        ("name", &name),
        ("timezone", &timezone),
        ("default_language", &default_language),
    ] {
        if let Some(value) = value {
            facts.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(hours) = &business_hours {
        facts.insert(
            "business_hours".to_owned(),
            format!("{} intervals", hours.len()),
        );
    }
    let changes = WorkspaceChanges {
        name,
        timezone,
        default_language,
        business_hours,
    };
    let mut tx = pool.begin().await?;
    let updated = store::update_workspace(&mut tx, workspace, changes).await?;
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::WorkspaceUpdated,
        Target::Workspace(workspace),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// A new Workspace in the Organization of `workspace`, with a first owner API key whose
/// secret is returned once. Audited in both Workspaces. An empty time zone is UTC, an
/// empty language English.
pub async fn create_sibling(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    name: &str,
    timezone: &str,
    default_language: &str,
) -> Result<(Workspace, String), Error> {
    let (timezone, language) = (
        match timezone.trim() {
            "" => Ok("UTC".to_owned()),
            tz => domain::valid_timezone(tz),
        },
        match default_language.trim() {
            "" => Ok("en".to_owned()),
            tag => domain::valid_language(tag),
        },
    )
        .all()?;
    let organization = store::organization_of(pool, workspace).await?;
    let mut tx = pool.begin().await?;
    let created =
        store::create_workspace(&mut tx, organization.id, name, &timezone, &language).await?;
    let (key, owner_api_key) =
        store::create_api_key(&mut tx, created.id, "first owner", Role::Owner).await?;
    let facts = details([("name", created.name.clone())]);
    for audited in [workspace, created.id] {
        store::audit(
            &mut tx,
            audited,
            actor,
            Action::WorkspaceCreated,
            Target::Workspace(created.id),
            facts.clone(),
        )
        .await?;
    }
    api_keys::record_created(&mut tx, actor, &key).await?;
    tx.commit().await?;
    Ok((created, owner_api_key))
}

/// A new Workspace in `organization`, in UTC and English (operator bootstrap).
pub async fn create_in(
    pool: &PgPool,
    actor: &Actor,
    organization: Uuid,
    name: &str,
) -> Result<Workspace, Error> {
    let mut tx = pool.begin().await?;
    let created = store::create_workspace(&mut tx, organization, name, "UTC", "en").await?;
    let facts = details([("name", created.name.clone())]);
    store::audit(
        &mut tx,
        created.id,
        actor,
        Action::WorkspaceCreated,
        Target::Workspace(created.id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Archives a Workspace of the same Organization as `workspace` (itself included).
/// Audited in both.
pub async fn archive(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    target: Uuid,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    store::archive_sibling_workspace(&mut tx, workspace, target).await?;
    let audited: &[Uuid] = if target == workspace {
        &[workspace]
    } else {
        &[workspace, target]
    };
    for &audited in audited {
        store::audit(
            &mut tx,
            audited,
            actor,
            Action::WorkspaceArchived,
            Target::Workspace(target),
            details([]),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Renames the Organization `workspace` belongs to.
pub async fn rename_organization(
    pool: &PgPool,
    actor: &Actor,
    workspace: Uuid,
    name: &str,
) -> Result<Organization, Error> {
    let mut tx = pool.begin().await?;
    let organization = store::rename_organization(&mut tx, workspace, name).await?;
    let facts = details([("name", organization.name.clone())]);
    store::audit(
        &mut tx,
        workspace,
        actor,
        Action::OrganizationRenamed,
        Target::Organization(organization.id),
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(organization)
}
