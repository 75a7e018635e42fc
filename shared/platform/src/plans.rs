//! The plan guard: every statement a hot path prepared, explained as the generic plan a
//! pooled connection caches, must reach the tables that grow with use only through keyed
//! index probes.
//!
//! A pooled connection caches a statement's generic plan from its sixth execution, and
//! that plan is made from whatever statistics exist then: on a freshly migrated table that
//! was never analysed, `deleted_at IS NULL` is estimated at 0.5 %, and a join can start
//! from the whole table and probe the keys for each of its rows. Such plans stay fast on
//! an empty database and cost contacts × batch size later (ADR 15, ADR 21). A test runs
//! the hot path on a pool of one connection over never-analysed tables, then asks
//! [`unkeyed_scans`] of that connection.
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Acquire, PgPool, Row};

/// Partial indexes that hold only rows on their way out, so reading one whole stays
/// small however large its table grows: the outbox's unpublished events.
const BOUNDED: &[&str] = &["platform_outbox_pending"];

/// A pool of one connection on `pool`'s database whose statements are planned as the
/// generic plans a long-lived pooled connection caches, so every statement a hot path
/// runs on it stays prepared on that one connection for [`unkeyed_scans`].
pub async fn guarded_pool(pool: &PgPool) -> sqlx::Result<PgPool> {
    let options: PgConnectOptions = (*pool.connect_options()).clone();
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// Stops autovacuum from analysing `tables`, so they stay as a freshly migrated database
/// has them while a test fills them: without statistics.
pub async fn never_analysed(pool: &PgPool, tables: &[&str]) -> sqlx::Result<()> {
    for table in tables {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        )))
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// One scan of a growing table that is not a keyed probe, in one prepared statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnkeyedScan {
    pub statement: String,
    pub scan: String,
}

impl std::fmt::Display for UnkeyedScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n    in: {}", self.scan, self.statement.trim())
    }
}

/// Every scan of a `growing` table, in the generic plan of every statement prepared on the
/// one connection of `guarded` (a [`guarded_pool`]), that reads the table or a whole index
/// of it instead of probing by key: a sequential scan, or an index scan without an index
/// condition. Also the number of statements explained, so a guard can tell it saw the path.
pub async fn unkeyed_scans(
    guarded: &PgPool,
    growing: &[&str],
) -> anyhow::Result<(usize, Vec<UnkeyedScan>)> {
    let mut conn = guarded.acquire().await?;
    let conn = conn.acquire().await?;
    // Unnamed (not persistent), so this query is not among the statements it lists.
    let prepared = sqlx::query(
        "SELECT name, statement, cardinality(parameter_types) AS params
         FROM pg_prepared_statements WHERE NOT from_sql ORDER BY name",
    )
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = Vec::new();
    for row in &prepared {
        let name: String = row.try_get("name")?;
        let statement: String = row.try_get("statement")?;
        let params: i32 = row.try_get("params")?;
        let args = vec!["NULL"; params.max(0) as usize].join(", ");
        let explain = if args.is_empty() {
            format!("EXPLAIN (FORMAT JSON) EXECUTE {name}")
        } else {
            format!("EXPLAIN (FORMAT JSON) EXECUTE {name}({args})")
        };
        let plan: Value = sqlx::raw_sql(sqlx::AssertSqlSafe(explain))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| anyhow::anyhow!("explaining {statement}: {e}"))?
            .try_get::<sqlx::types::Json<Value>, _>(0)?
            .0;
        let mut scans = Vec::new();
        walk(&plan[0]["Plan"], growing, false, &mut scans);
        found.extend(scans.into_iter().map(|scan| UnkeyedScan {
            statement: statement.clone(),
            scan,
        }));
    }
    Ok((prepared.len(), found))
}

/// Panics, naming each scan, unless the one connection of `guarded` prepared at least
/// `at_least` statements (the path ran) and none of them scans a `growing` table
/// instead of probing it by key. The assertion every plan guard test ends with.
pub async fn assert_probes_by_key(guarded: &PgPool, growing: &[&str], at_least: usize) {
    let (explained, unkeyed) = unkeyed_scans(guarded, growing)
        .await
        .expect("explaining the prepared statements");
    assert!(
        explained >= at_least,
        "only {explained} statements were prepared; the path did not run"
    );
    assert!(unkeyed.is_empty(), "{}", report(&unkeyed));
}

/// The scans found, one paragraph each, for a failed assertion.
pub fn report(unkeyed: &[UnkeyedScan]) -> String {
    let scans: Vec<String> = unkeyed.iter().map(ToString::to_string).collect();
    format!(
        "scans that grow with the table, not the keys:\n{}",
        scans.join("\n")
    )
}

/// Collects the unkeyed scans of `growing` tables under `node`. `limited` says that
/// `node` feeds a LIMIT directly (through row locks at most): an index read in its order
/// there stops after the first rows, however large the table.
fn walk(node: &Value, growing: &[&str], limited: bool, found: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    if let Some(table) = node["Relation Name"].as_str()
        && kind.ends_with("Scan")
        && growing.contains(&table)
    {
        let keyed = match kind {
            "Index Scan" | "Index Only Scan" => {
                node.get("Index Cond").is_some() || limited || bounded(node)
            }
            // A partial index read whole names no condition either.
            "Bitmap Heap Scan" => bitmap_keyed(node),
            _ => false,
        };
        if !keyed {
            let index = node["Index Name"]
                .as_str()
                .map(|i| format!(" using {i}"))
                .unwrap_or_default();
            found.push(format!("{kind} on {table}{index}"));
        }
    }
    let limits = kind == "Limit" || (limited && kind == "LockRows");
    for child in node["Plans"].as_array().into_iter().flatten() {
        walk(child, growing, limits, found);
    }
}

fn bounded(node: &Value) -> bool {
    node["Index Name"]
        .as_str()
        .is_some_and(|index| BOUNDED.contains(&index))
}

/// Whether every bitmap index scan under `node` probes its index by a condition.
fn bitmap_keyed(node: &Value) -> bool {
    node["Plans"].as_array().into_iter().flatten().all(|child| {
        match child["Node Type"].as_str().unwrap_or_default() {
            "Bitmap Index Scan" => child.get("Index Cond").is_some() || bounded(child),
            _ => bitmap_keyed(child),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_read_in_order_for_a_limit_is_keyed_enough() {
        let plan = serde_json::json!({
            "Node Type": "Limit",
            "Plans": [{"Node Type": "LockRows", "Plans": [
                {"Node Type": "Index Scan", "Relation Name": "messages",
                 "Index Name": "messages_pending"}]}]
        });
        let mut found = Vec::new();
        walk(&plan, &["messages"], false, &mut found);
        assert!(found.is_empty(), "{found:?}");
        let unlimited = &plan["Plans"][0];
        walk(unlimited, &["messages"], false, &mut found);
        assert_eq!(found, ["Index Scan on messages using messages_pending"]);
    }

    #[test]
    fn a_sequential_or_unconditioned_index_scan_of_a_growing_table_is_found() {
        let plan = serde_json::json!({
            "Node Type": "Nested Loop",
            "Plans": [
                {"Node Type": "ModifyTable", "Relation Name": "contacts"},
                {"Node Type": "Index Scan", "Relation Name": "contacts", "Index Name": "contacts_live_id"},
                {"Node Type": "Index Scan", "Relation Name": "channel_identities",
                 "Index Name": "channel_identities_pkey", "Index Cond": "(workspace_id = k.workspace_id)"},
                {"Node Type": "Seq Scan", "Relation Name": "tags"},
                {"Node Type": "Bitmap Heap Scan", "Relation Name": "contacts",
                 "Recheck Cond": "(deleted_at IS NULL)",
                 "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "contacts_live_id"}]},
                {"Node Type": "Bitmap Heap Scan", "Relation Name": "contacts",
                 "Plans": [{"Node Type": "BitmapOr", "Plans": [
                     {"Node Type": "Bitmap Index Scan", "Index Name": "contacts_email",
                      "Index Cond": "(workspace_id = $1)"}]}]},
                {"Node Type": "Seq Scan", "Relation Name": "contact_fields"}
            ]
        });
        let mut found = Vec::new();
        walk(
            &plan,
            &["contacts", "channel_identities", "tags"],
            false,
            &mut found,
        );
        assert_eq!(
            found,
            [
                "Index Scan on contacts using contacts_live_id",
                "Seq Scan on tags",
                "Bitmap Heap Scan on contacts"
            ]
        );
    }
}
