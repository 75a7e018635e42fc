//! Which of a caller's candidate Contacts match a Filter: the compiled filter narrowed to
//! the candidates' primary keys, so the cost follows the candidates, not the Workspace.
use ism_platform::convert::uuid;
use ism_platform::error::FieldError;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::Error;
use crate::filter::Filter;
use crate::search;

/// Most candidates one request may name.
pub const MAX_CANDIDATES: usize = 10_000;

/// The candidate ids of a request, checked.
pub fn candidates(ids: &[String]) -> Result<Vec<Uuid>, FieldError> {
    if ids.len() > MAX_CANDIDATES {
        return Err(FieldError::new(
            "contact_ids",
            format!("at most {MAX_CANDIDATES}"),
        ));
    }
    ids.iter().map(|id| uuid("contact_ids", id)).collect()
}

/// The `candidates` that are live Contacts of the Workspace matching `filter`.
pub async fn matching(
    pool: &PgPool,
    workspace_id: Uuid,
    filter: &Filter,
    candidates: &[Uuid],
) -> Result<Vec<Uuid>, Error> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let tags = search::tag_ids(pool, workspace_id, filter).await?;
    let mut q = QueryBuilder::<Postgres>::new("SELECT c.id FROM contacts c WHERE ");
    filter.push_where(&mut q, workspace_id, &tags);
    q.push(" AND c.id = ANY(").push_bind(candidates).push(")");
    Ok(q.build_query_scalar().fetch_all(pool).await?)
}
