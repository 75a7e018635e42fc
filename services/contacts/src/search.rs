//! Search over a Workspace's Contacts: sorted keyset pages with a total count, and
//! batches in id order for streaming and export.
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_proto::contacts::v1 as pb;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::Error;
use crate::filter::{Filter, TagIds};
use crate::store::{C_COLUMNS, Contact};

/// What a page is ordered by; every order ends with the Contact id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortBy {
    Created,
    Name,
    LastInteraction,
    Updated,
}

impl SortBy {
    /// The SQL of the sort key, exactly as its index spells it.
    fn expr(self) -> &'static str {
        match self {
            SortBy::Created => "c.created_at",
            SortBy::Name => "c.name_key",
            SortBy::LastInteraction => "coalesce(a.last_interaction_at, '-infinity'::timestamptz)",
            SortBy::Updated => "c.updated_at",
        }
    }

    /// The rows a page is read from, with the Contacts as `c`: the interaction order is
    /// indexed beside them, in `contact_activity`.
    fn from(self) -> &'static str {
        match self {
            SortBy::LastInteraction => {
                "contact_activity a JOIN contacts c
                     ON c.id = a.contact_id AND c.workspace_id = a.workspace_id"
            }
            _ => "contacts c",
        }
    }

    /// The Contact id as the sort's index ends with it.
    fn id(self) -> &'static str {
        match self {
            SortBy::LastInteraction => "a.contact_id",
            _ => "c.id",
        }
    }

    /// The cast that turns a page token's text back into the key's type.
    fn cast(self) -> &'static str {
        match self {
            SortBy::Name => "::text COLLATE \"C\"",
            _ => "::timestamptz",
        }
    }
}

/// A search's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub by: SortBy,
    pub ascending: bool,
}

impl Sort {
    pub fn from_proto(sort: Option<&pb::Sort>) -> Result<Self, FieldError> {
        let Some(sort) = sort else {
            return Ok(Sort {
                by: SortBy::Created,
                ascending: false,
            });
        };
        let by = match pb::SortField::try_from(sort.field) {
            Ok(pb::SortField::Unspecified | pb::SortField::CreatedAt) => SortBy::Created,
            Ok(pb::SortField::Name) => SortBy::Name,
            Ok(pb::SortField::LastInteractionAt) => SortBy::LastInteraction,
            Ok(pb::SortField::UpdatedAt) => SortBy::Updated,
            Err(_) => return Err(FieldError::new("sort.field", "unknown sort field")),
        };
        Ok(Sort {
            by,
            ascending: sort.ascending,
        })
    }
}

/// Where the next page starts: the last row's sort key (as text) and id, and the order
/// it belongs to, so a token is never used with another order.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    sort: Sort,
    key: String,
    id: Uuid,
}

#[derive(FromRow)]
struct Keyed {
    #[sqlx(flatten)]
    contact: Contact,
    sort_key: String,
}

/// One page of a search.
#[derive(Debug)]
pub struct Page {
    pub contacts: Vec<Contact>,
    pub next_page_token: String,
    /// How many match in all, when counted.
    pub total: Option<i64>,
}

/// The ids of the Workspace's Tags named in `filter`.
pub async fn tag_ids(pool: &PgPool, workspace_id: Uuid, filter: &Filter) -> Result<TagIds, Error> {
    let names = filter.tag_names();
    if names.is_empty() {
        return Ok(TagIds::new());
    }
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT lower(name), id FROM tags WHERE workspace_id = $1 AND lower(name) = ANY($2)",
    )
    .bind(workspace_id)
    .bind(&names)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The page of `filter` after `page_token`, in `sort` order, and (when `count`) the
/// total; the two queries run at once.
pub async fn search(
    pool: &PgPool,
    workspace_id: Uuid,
    filter: &Filter,
    sort: Sort,
    page_size: i64,
    page_token: &str,
    count: bool,
) -> Result<Page, Error> {
    let after: Option<Position> = paging::decode_token(page_token)?;
    if after.as_ref().is_some_and(|p| p.sort != sort) {
        return Err(FieldError::new("page_token", "was issued for another sort order").into());
    }
    let tags = tag_ids(pool, workspace_id, filter).await?;
    let page = async {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {C_COLUMNS}, ({})::text AS sort_key FROM {} WHERE ",
            sort.by.expr(),
            sort.by.from()
        ));
        filter.push_where(&mut q, workspace_id, &tags);
        let (cmp, dir) = if sort.ascending {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        if let Some(after) = &after {
            q.push(format!(
                " AND ({}, {}) {cmp} (",
                sort.by.expr(),
                sort.by.id()
            ))
            .push_bind(after.key.clone())
            .push(sort.by.cast())
            .push(", ")
            .push_bind(after.id)
            .push(")");
        }
        // A literal limit (a checked page size): with a bound one, a generic prepared plan
        // cannot tell a short page from a long scan and may walk the sort index instead of
        // intersecting the filter's indexes.
        q.push(format!(
            " ORDER BY {} {dir}, {} {dir} LIMIT {}",
            sort.by.expr(),
            sort.by.id(),
            page_size + 1
        ));
        let rows: Vec<Keyed> = q.build_query_as().fetch_all(pool).await?;
        Ok::<_, Error>(rows)
    };
    let total = async {
        if !count {
            return Ok(None);
        }
        let mut q = QueryBuilder::<Postgres>::new("SELECT count(*) FROM contacts c WHERE ");
        filter.push_where(&mut q, workspace_id, &tags);
        let n: i64 = q.build_query_scalar().fetch_one(pool).await?;
        Ok::<_, Error>(Some(n))
    };
    let (rows, total) = tokio::try_join!(page, total)?;
    let (rows, next_page_token) = paging::finish(rows, page_size, |r| Position {
        sort,
        key: r.sort_key.clone(),
        id: r.contact.id,
    });
    Ok(Page {
        contacts: rows.into_iter().map(|r| r.contact).collect(),
        next_page_token,
        total,
    })
}

/// Up to `limit` Contacts of `filter` with ids above `after`, in id order: one batch of
/// a stream or an export.
pub async fn batch(
    pool: &PgPool,
    workspace_id: Uuid,
    filter: &Filter,
    tags: &TagIds,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Contact>, Error> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {C_COLUMNS} FROM contacts c WHERE "));
    filter.push_where(&mut q, workspace_id, tags);
    if let Some(after) = after {
        q.push(" AND c.id > ").push_bind(after);
    }
    q.push(format!(" ORDER BY c.id LIMIT {limit}"));
    Ok(q.build_query_as().fetch_all(pool).await?)
}
