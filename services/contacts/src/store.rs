//! Contacts and channel identities in Postgres.
use chrono::{DateTime, Utc};
use ism_platform::events;
use ism_proto::events::v1::ContactCreated;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Error;

#[derive(Debug, Clone, FromRow)]
pub struct Contact {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct Identity {
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub external_id: String,
    pub display_name: String,
}

/// What identifies a person on a channel, with a name hint for a new Contact.
pub struct IdentityKey<'a> {
    pub channel_id: Uuid,
    pub external_id: &'a str,
    pub display_name: &'a str,
}

/// The Contact with this identity, created (with its event) when there is none. Safe
/// under concurrency: the identity's primary key lets exactly one creator win; the
/// others roll back and read the winner.
pub async fn resolve(
    pool: &PgPool,
    workspace_id: Uuid,
    key: &IdentityKey<'_>,
) -> Result<(Contact, bool), Error> {
    loop {
        if let Some(contact) = find_by_identity(pool, workspace_id, key).await? {
            return Ok((contact, false));
        }
        let mut tx = pool.begin().await?;
        let (first, last) = split_name(key.display_name);
        let contact: Contact = sqlx::query_as(
            "INSERT INTO contacts (id, workspace_id, first_name, last_name) VALUES ($1, $2, $3, $4)
             RETURNING id, workspace_id, first_name, last_name, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(workspace_id)
        .bind(first)
        .bind(last)
        .fetch_one(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO channel_identities (workspace_id, channel_id, external_id, contact_id, display_name)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(workspace_id)
        .bind(key.channel_id)
        .bind(key.external_id)
        .bind(contact.id)
        .bind(key.display_name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            continue;
        }
        let payload = ContactCreated {
            contact_id: contact.id.to_string(),
            channel_id: key.channel_id.to_string(),
            external_id: key.external_id.to_owned(),
        };
        let event = events::new_event(
            "contacts.contact.created",
            workspace_id,
            &contact.id.to_string(),
            &payload,
        );
        events::enqueue(&mut tx, &event).await?;
        tx.commit().await?;
        return Ok((contact, true));
    }
}

async fn find_by_identity(
    pool: &PgPool,
    workspace_id: Uuid,
    key: &IdentityKey<'_>,
) -> Result<Option<Contact>, Error> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.workspace_id, c.first_name, c.last_name, c.created_at
         FROM channel_identities i JOIN contacts c ON c.id = i.contact_id
         WHERE i.workspace_id = $1 AND i.channel_id = $2 AND i.external_id = $3",
    )
    .bind(workspace_id)
    .bind(key.channel_id)
    .bind(key.external_id)
    .fetch_optional(pool)
    .await?)
}

fn split_name(display_name: &str) -> (String, String) {
    let name = display_name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_owned(), last.trim().to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

pub async fn get(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Contact, Error> {
    sqlx::query_as(
        "SELECT id, workspace_id, first_name, last_name, created_at FROM contacts WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::ContactNotFound)
}

/// Newest first, after the keyset position `before`.
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Contact>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, workspace_id, first_name, last_name, created_at FROM contacts
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(workspace_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The identities of `contacts`, for one round trip per page.
pub async fn identities(
    pool: &PgPool,
    workspace_id: Uuid,
    contacts: &[Uuid],
) -> Result<Vec<Identity>, Error> {
    Ok(sqlx::query_as(
        "SELECT contact_id, channel_id, external_id, display_name FROM channel_identities
         WHERE workspace_id = $1 AND contact_id = ANY($2) ORDER BY created_at",
    )
    .bind(workspace_id)
    .bind(contacts)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn display_names_split_into_first_and_last() {
        assert_eq!(
            split_name(" Ada  Lovelace "),
            ("Ada".into(), "Lovelace".into())
        );
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
        assert_eq!(split_name(""), (String::new(), String::new()));
    }
}
