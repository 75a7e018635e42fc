//! Snippets: canned replies whose variables ({{contact.first_name}}, custom fields as
//! {{contact.fields.<key>}}, {{user.name}}) are checked when saved and rendered, with
//! strict undefined, when sent.
use chrono::{DateTime, Utc};
use ism_platform::error::{Checks, FieldError, Violations};
use ism_platform::personalize::{self, Sender, Variables};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;

/// Longest snippet body, in bytes.
const MAX_BODY: usize = 4096;

#[derive(Debug, Clone, FromRow)]
pub struct Snippet {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub owner: Option<String>,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The shortcut, title and body to store, or every field that is wrong; `field_keys`
/// are the Workspace's custom Contact Field keys.
pub fn validate(
    shortcut: &str,
    title: &str,
    body: &str,
    field_keys: &[String],
) -> Result<(), Violations> {
    (
        check_shortcut(shortcut),
        check_title(title),
        check_body(body, field_keys),
    )
        .all()
        .map(drop)
}

fn check_shortcut(shortcut: &str) -> Result<(), FieldError> {
    let shortcut_ok = !shortcut.is_empty()
        && shortcut.len() <= 32
        && shortcut
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !shortcut_ok {
        return Err(FieldError::new(
            "shortcut",
            "1 to 32 letters, digits, '-' or '_'",
        ));
    }
    Ok(())
}

fn check_title(title: &str) -> Result<(), FieldError> {
    if title.trim().is_empty() || title.chars().count() > 100 {
        return Err(FieldError::new("title", "must have 1 to 100 characters"));
    }
    Ok(())
}

fn check_body(body: &str, field_keys: &[String]) -> Result<(), FieldError> {
    if body.trim().is_empty() || body.len() > MAX_BODY {
        return Err(FieldError::new(
            "body",
            format!("must have 1 to {MAX_BODY} bytes"),
        ));
    }
    personalize::check("body", body, field_keys, Sender::User)
}

/// `body` with its variables replaced; an error naming `snippet_id` if one is unknown.
pub fn render(body: &str, variables: &Variables) -> Result<String, FieldError> {
    personalize::render(body, variables)
        .map_err(|e| FieldError::new("snippet_id", format!("cannot render the snippet: {e}")))
}

const COLUMNS: &str = "id, workspace_id, owner, shortcut, title, body, created_at, updated_at";

/// A new snippet; `owner` set for a personal one.
pub struct NewSnippet<'a> {
    pub workspace_id: Uuid,
    pub owner: Option<&'a str>,
    pub shortcut: &'a str,
    pub title: &'a str,
    pub body: &'a str,
}

pub async fn create(conn: &mut PgConnection, new: &NewSnippet<'_>) -> Result<Snippet, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO snippets (id, workspace_id, owner, shortcut, title, body) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(new.workspace_id)
    .bind(new.owner)
    .bind(new.shortcut)
    .bind(new.title)
    .bind(new.body)
    .fetch_one(conn)
    .await
    .map_err(Error::from)
}

/// A snippet the caller `subject` can see: shared, or their own.
pub async fn visible(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    subject: &str,
    id: Uuid,
) -> Result<Snippet, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM snippets WHERE workspace_id = $1 AND id = $2 AND (owner IS NULL OR owner = $3)"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(subject)
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound("snippet"))
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    shortcut: &str,
    title: &str,
    body: &str,
) -> Result<Snippet, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE snippets SET shortcut = $2, title = $3, body = $4, updated_at = now() WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(shortcut)
    .bind(title)
    .bind(body)
    .fetch_one(conn)
    .await
    .map_err(Error::from)
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM snippets WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Snippets `subject` sees whose shortcut starts with `prefix`, by shortcut, after
/// the keyset position `after`.
pub async fn search(
    pool: &PgPool,
    workspace_id: Uuid,
    subject: &str,
    prefix: &str,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Snippet>, Error> {
    let (shortcut, id) = after.unzip();
    let pattern = format!(
        "{}%",
        prefix
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM snippets
         WHERE workspace_id = $1 AND (owner IS NULL OR owner = $2) AND lower(shortcut) LIKE $3
           AND ($4::text IS NULL OR (lower(shortcut), id) > ($4, $5))
         ORDER BY lower(shortcut), id LIMIT $6"
    )))
    .bind(workspace_id)
    .bind(subject)
    .bind(pattern)
    .bind(shortcut)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_must_be_known_when_saved() {
        let keys = vec!["plan".to_owned()];
        let ok =
            "Hi {{ contact.first_name }}, your {{ contact.fields.plan }} plan. {{ user.name }}";
        assert!(validate("hi", "Hi", ok, &keys).is_ok());
        for bad in [
            "{{ contact.shoe_size }}",
            "{{ contact.fields.tier }}",
            "{{ account.name }}",
            "{{ contact }}",
            "{{ unclosed",
        ] {
            assert!(
                validate("hi", "Hi", bad, &keys).unwrap_err().names("body"),
                "{bad}"
            );
        }
        assert!(
            validate("a b", "Hi", ok, &keys)
                .unwrap_err()
                .names("shortcut")
        );
        let all_three = validate("a b", "", "{{ unclosed", &keys).unwrap_err();
        let fields: Vec<&str> = all_three.iter().map(|v| v.field.as_ref()).collect();
        assert_eq!(fields, ["shortcut", "title", "body"]);
    }

    #[test]
    fn rendering_fills_contact_fields_and_the_user_name() {
        let mut variables = Variables::default();
        variables.contact.insert("first_name".into(), "Ada".into());
        variables
            .contact
            .insert("fields".into(), serde_json::json!({"plan": "Gold"}));
        variables.user.insert("name".into(), "Grace".into());
        assert_eq!(
            render(
                "Hi {{ contact.first_name }}, {{ contact.fields.plan }} here. {{ user.name }}",
                &variables
            )
            .unwrap(),
            "Hi Ada, Gold here. Grace"
        );
        assert_eq!(
            render("{{ contact.last_name }}", &variables)
                .unwrap_err()
                .field,
            "snippet_id",
            "strict: a missing value is an error, not an empty string"
        );
    }
}
