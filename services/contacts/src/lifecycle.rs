//! Lifecycle stages: a Workspace's ordered steps (New Lead → Customer), and the one each
//! Contact is at. Contacts name a stage by its key, so renaming a stage moves no Contact.
use std::collections::HashSet;

use ism_platform::error::FieldError;
use ism_proto::contacts::v1 as pb;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;

/// Most stages one Workspace may define.
pub const MAX_STAGES: usize = 20;

/// One stage, as stored.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Stage {
    pub key: String,
    pub name: String,
}

impl Stage {
    pub fn to_proto(&self) -> pb::LifecycleStage {
        pb::LifecycleStage {
            key: self.key.clone(),
            name: self.name.clone(),
        }
    }
}

/// Checks a whole list as SetLifecycleStages gives it.
pub fn check(stages: &[pb::LifecycleStage]) -> Result<Vec<Stage>, FieldError> {
    if stages.len() > MAX_STAGES {
        return Err(FieldError::new(
            "stages",
            format!("at most {MAX_STAGES} lifecycle stages"),
        ));
    }
    let mut keys = HashSet::new();
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let shaped = s.key.len() <= 64
                && s.key.starts_with(|c: char| c.is_ascii_lowercase())
                && s.key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !shaped {
                return Err(FieldError::new(
                    format!("stages[{i}].key"),
                    "1 to 64 lower-case letters, digits or underscores, starting with a letter",
                ));
            }
            if !keys.insert(s.key.as_str()) {
                return Err(FieldError::new(
                    format!("stages[{i}].key"),
                    format!("{} is given twice", s.key),
                ));
            }
            let name = s.name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(FieldError::new(
                    format!("stages[{i}].name"),
                    "1 to 100 characters",
                ));
            }
            Ok(Stage {
                key: s.key.clone(),
                name: name.to_owned(),
            })
        })
        .collect()
}

/// The Workspace's stages, in order.
pub async fn list(conn: &mut PgConnection, workspace_id: Uuid) -> Result<Vec<Stage>, Error> {
    Ok(sqlx::query_as(
        "SELECT key, name FROM lifecycle_stages WHERE workspace_id = $1 ORDER BY position",
    )
    .bind(workspace_id)
    .fetch_all(conn)
    .await?)
}

/// Replaces the Workspace's stages; refuses to leave out a stage a live Contact is at.
/// Deleted Contacts at a removed stage lose it, so a restore brings back no unknown stage.
pub async fn replace(pool: &PgPool, workspace_id: Uuid, stages: &[Stage]) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let keys: Vec<&str> = stages.iter().map(|s| s.key.as_str()).collect();
    // Locks the Workspace's stages so no Contact moves to one being removed meanwhile.
    let removed: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM lifecycle_stages WHERE workspace_id = $1 AND key <> ALL($2) FOR UPDATE",
    )
    .bind(workspace_id)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    let in_use: Option<(String, i64)> = sqlx::query_as(
        "SELECT lifecycle_stage, count(*) FROM contacts
         WHERE workspace_id = $1 AND lifecycle_stage = ANY($2) AND deleted_at IS NULL
         GROUP BY lifecycle_stage ORDER BY lifecycle_stage LIMIT 1",
    )
    .bind(workspace_id)
    .bind(&removed)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((key, count)) = in_use {
        return Err(Error::precondition(
            "stages",
            format!("{count} contact(s) are at the lifecycle stage {key}; move them first"),
        ));
    }
    sqlx::query(
        "UPDATE contacts SET lifecycle_stage = '', version = version + 1
         WHERE workspace_id = $1 AND lifecycle_stage = ANY($2)",
    )
    .bind(workspace_id)
    .bind(&removed)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM lifecycle_stages WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    sqlx::query(
        "INSERT INTO lifecycle_stages (workspace_id, key, name, position)
         SELECT $1, k, n, p::int FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS s(k, n, p)",
    )
    .bind(workspace_id)
    .bind(&keys)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The stored key of `given` (a key, or for imports also a name in any case), shared-locked
/// so the stage cannot be removed before the caller's transaction ends; `Ok(None)` when the
/// Workspace has no such stage. An empty `given` is no stage.
pub async fn find(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    given: &str,
    by_name: bool,
) -> Result<Option<String>, Error> {
    if given.is_empty() {
        return Ok(Some(String::new()));
    }
    Ok(sqlx::query_scalar(
        "SELECT key FROM lifecycle_stages
         WHERE workspace_id = $1 AND (key = $2 OR ($3 AND lower(name) = lower($2)))
         ORDER BY key = $2 DESC LIMIT 1 FOR SHARE",
    )
    .bind(workspace_id)
    .bind(given)
    .bind(by_name)
    .fetch_optional(conn)
    .await?)
}

/// [`find`] for a caller's key: INVALID_ARGUMENT on `field` when there is no such stage.
pub async fn key(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    given: &str,
    field: &'static str,
) -> Result<String, Error> {
    find(conn, workspace_id, given, false)
        .await?
        .ok_or_else(|| FieldError::new(field, format!("no such lifecycle stage {given:?}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(key: &str, name: &str) -> pb::LifecycleStage {
        pb::LifecycleStage {
            key: key.into(),
            name: name.into(),
        }
    }

    #[test]
    fn lists_are_checked_stage_by_stage() {
        let ok = check(&[
            stage("new_lead", " New Lead "),
            stage("customer", "Customer"),
        ])
        .unwrap();
        assert_eq!(ok[0].name, "New Lead");
        let field = |r: Result<Vec<Stage>, FieldError>| r.unwrap_err().field.into_owned();
        assert_eq!(field(check(&[stage("New", "x")])), "stages[0].key");
        assert_eq!(
            field(check(&[stage("a", "x"), stage("a", "y")])),
            "stages[1].key"
        );
        assert_eq!(field(check(&[stage("a", " ")])), "stages[0].name");
        let many: Vec<_> = (0..21).map(|i| stage(&format!("s{i}"), "x")).collect();
        assert_eq!(field(check(&many)), "stages");
    }
}
