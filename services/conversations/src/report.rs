//! Reports over a date range: conversations opened and closed, first response and
//! resolution times (median, p90), messages in and out, closing-note categories.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ism_platform::error::FieldError;
use ism_proto::conversations::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Error;

/// What rows are grouped by.
#[derive(Debug, Clone, Copy)]
pub enum Grouping {
    User,
    Team,
    Channel,
    Day,
}

impl TryFrom<i32> for Grouping {
    type Error = FieldError;

    fn try_from(value: i32) -> Result<Self, FieldError> {
        match pb::ReportGrouping::try_from(value) {
            Ok(pb::ReportGrouping::User) => Ok(Grouping::User),
            Ok(pb::ReportGrouping::Team) => Ok(Grouping::Team),
            Ok(pb::ReportGrouping::Channel) => Ok(Grouping::Channel),
            Ok(pb::ReportGrouping::Day) => Ok(Grouping::Day),
            _ => Err(FieldError::new(
                "group_by",
                "choose user, team, channel or day",
            )),
        }
    }
}

impl Grouping {
    /// The SQL of the group key of conversation `c`, with `at` the time that places a
    /// row in a day.
    fn key(self, at: &str) -> String {
        match self {
            Grouping::User => "coalesce(c.assignee_user_id::text, '')".into(),
            Grouping::Team => "coalesce(c.assignee_team_id::text, '')".into(),
            Grouping::Channel => "c.channel_id::text".into(),
            Grouping::Day => format!("to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        }
    }
}

fn row(rows: &mut BTreeMap<String, pb::ReportRow>, key: String) -> &mut pb::ReportRow {
    rows.entry(key.clone()).or_insert_with(|| pb::ReportRow {
        key,
        ..Default::default()
    })
}

type Timing = (String, i64, Option<f64>, Option<f64>);

/// The rows of `sql`, a query grouped by key over `$1` the workspace and `[$2, $3)`.
async fn grouped<T>(
    pool: &PgPool,
    sql: String,
    workspace_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<T>, Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(workspace_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?)
}

/// Per group: the conversations whose `at` falls in the range, and the median and p90
/// seconds from their creation to `end`, among those that reached it.
fn timing_sql(grouping: Grouping, at: &str, end: &str) -> String {
    format!(
        "SELECT {key} AS key, count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {end} - c.created_at)::float8)
                    FILTER (WHERE {end} IS NOT NULL),
                percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM {end} - c.created_at)::float8)
                    FILTER (WHERE {end} IS NOT NULL)
         FROM conversations c WHERE c.workspace_id = $1 AND {at} >= $2 AND {at} < $3 GROUP BY 1",
        key = grouping.key(at)
    )
}

/// One row per group with any activity in `[from, to)`, ordered by key.
pub async fn report(
    pool: &PgPool,
    workspace_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    grouping: Grouping,
) -> Result<Vec<pb::ReportRow>, Error> {
    let mut rows: BTreeMap<String, pb::ReportRow> = BTreeMap::new();

    let sql = timing_sql(grouping, "c.created_at", "c.first_response_at");
    let opened: Vec<Timing> = grouped(pool, sql, workspace_id, from, to).await?;
    for (key, count, median, p90) in opened {
        let r = row(&mut rows, key);
        r.opened = count;
        r.first_response_median_seconds = median;
        r.first_response_p90_seconds = p90;
    }

    let sql = timing_sql(grouping, "c.closed_at", "c.closed_at");
    let closed: Vec<Timing> = grouped(pool, sql, workspace_id, from, to).await?;
    for (key, count, median, p90) in closed {
        let r = row(&mut rows, key);
        r.closed = count;
        r.resolution_median_seconds = median;
        r.resolution_p90_seconds = p90;
    }

    let sql = format!(
        "SELECT {key} AS key, c.closing_category, count(*)
         FROM conversations c WHERE c.workspace_id = $1 AND c.closed_at >= $2 AND c.closed_at < $3
           AND c.closing_category <> '' GROUP BY 1, 2",
        key = grouping.key("c.closed_at")
    );
    let categories: Vec<(String, String, i64)> = grouped(pool, sql, workspace_id, from, to).await?;
    for (key, category, count) in categories {
        row(&mut rows, key)
            .closing_categories
            .insert(category, count);
    }

    let sql = format!(
        "SELECT {key} AS key, count(*) FILTER (WHERE m.direction = 'inbound'),
                count(*) FILTER (WHERE m.direction = 'outbound')
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.workspace_id = $1 AND m.sent_at >= $2 AND m.sent_at < $3 AND m.direction <> 'internal'
         GROUP BY 1",
        key = grouping.key("m.sent_at")
    );
    let messages: Vec<(String, i64, i64)> = grouped(pool, sql, workspace_id, from, to).await?;
    for (key, inbound, outbound) in messages {
        let r = row(&mut rows, key);
        r.messages_in = inbound;
        r.messages_out = outbound;
    }
    Ok(rows.into_values().collect())
}
