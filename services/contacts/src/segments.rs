//! Segments: Filters saved under a name. A Segment's Filter is checked when saved and
//! again on every use, against the field definitions of that moment.
use chrono::{DateTime, Utc};
use ism_platform::convert::timestamp;
use ism_platform::error::FieldError;
use ism_proto::contacts::v1 as pb;
use prost::Message;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::fields;

/// A stored Segment.
#[derive(Debug, Clone, FromRow)]
pub struct Segment {
    pub id: Uuid,
    pub name: String,
    filter: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Segment {
    /// The saved Filter.
    pub fn filter(&self) -> Result<pb::Filter, Error> {
        pb::Filter::decode(self.filter.as_slice())
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("segment {}: {e}", self.id)))
    }

    pub fn to_proto(&self) -> Result<pb::Segment, Error> {
        Ok(pb::Segment {
            id: self.id.to_string(),
            name: self.name.clone(),
            filter: Some(self.filter()?),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        })
    }
}

const COLUMNS: &str = "id, name, filter, created_at, updated_at";

fn name(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 100 {
        return Err(FieldError::new("name", "must be 1 to 100 characters"));
    }
    Ok(value.to_owned())
}

/// Checks a Segment's name and Filter before it is stored.
async fn checked(
    pool: &PgPool,
    workspace_id: Uuid,
    segment_name: &str,
    filter: &pb::Filter,
) -> Result<String, Error> {
    let segment_name = name(segment_name)?;
    let schema = fields::schema(&mut *pool.acquire().await?, workspace_id).await?;
    crate::filter::check(filter, &schema)?;
    Ok(segment_name)
}

pub async fn create(
    pool: &PgPool,
    workspace_id: Uuid,
    segment_name: &str,
    filter: &pb::Filter,
) -> Result<Segment, Error> {
    let segment_name = checked(pool, workspace_id, segment_name, filter).await?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO segments (id, workspace_id, name, filter) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(&segment_name)
    .bind(filter.encode_to_vec())
    .fetch_one(pool)
    .await
    .map_err(Error::from)
}

pub async fn get(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Segment, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM segments WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("segment"))
}

/// Segments by name then id, after the keyset position `after`.
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Segment>, Error> {
    let (after_name, after_id) = after.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM segments
         WHERE workspace_id = $1 AND ($2::text IS NULL OR (name, id) > ($2, $3))
         ORDER BY name, id LIMIT $4"
    )))
    .bind(workspace_id)
    .bind(after_name)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn update(
    pool: &PgPool,
    workspace_id: Uuid,
    id: Uuid,
    segment_name: &str,
    filter: &pb::Filter,
) -> Result<Segment, Error> {
    let segment_name = checked(pool, workspace_id, segment_name, filter).await?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE segments SET name = $3, filter = $4, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(&segment_name)
    .bind(filter.encode_to_vec())
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("segment"))
}

pub async fn delete(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
    ism_platform::db::delete_in_workspace(pool, "segments", workspace_id, id, "segment").await
}
