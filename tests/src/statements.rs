//! The statements that cost Postgres the most during a benchmark, read from
//! `pg_stat_statements` when the server has it loaded (`scripts/dev-infra.sh stats`, which
//! `make bench` runs), so that a regression names its statement in the same report.
use std::collections::HashMap;

use sqlx::PgPool;

/// Statement counters of one platform's databases at one moment.
pub struct Snapshot(HashMap<(String, i64), Counters>);

#[derive(Clone, Default)]
struct Counters {
    query: String,
    calls: i64,
    total_ms: f64,
    rows: i64,
}

/// A reader of `pg_stat_statements` for the databases named `<prefix>_*`.
pub struct Statements {
    pool: PgPool,
    databases: String,
}

impl Statements {
    /// A reader for the databases of `platform_id`, or `None` (and why) when the server
    /// has no `pg_stat_statements`.
    pub async fn connect(platform_id: &str) -> Result<Self, String> {
        let pool = PgPool::connect("postgres://ism:ism@127.0.0.1:5432/postgres")
            .await
            .map_err(|e| e.to_string())?;
        let reader = Self {
            pool,
            databases: format!("ism_{platform_id}_%"),
        };
        reader.snapshot().await.map_err(|e| {
            format!(
                "pg_stat_statements is not available ({e}); scripts/dev-infra.sh stats loads it"
            )
        })?;
        Ok(reader)
    }

    /// The counters now.
    pub async fn snapshot(&self) -> sqlx::Result<Snapshot> {
        let rows: Vec<(String, i64, String, i64, f64, i64)> = sqlx::query_as(
            "SELECT d.datname::text, s.queryid, s.query, s.calls, s.total_exec_time, s.rows
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname LIKE $1 AND s.queryid IS NOT NULL",
        )
        .bind(&self.databases)
        .fetch_all(&self.pool)
        .await?;
        Ok(Snapshot(
            rows.into_iter()
                .map(|(db, id, query, calls, total_ms, rows)| {
                    let service = db.rsplit('_').next().unwrap_or_default().to_owned();
                    let counters = Counters {
                        query,
                        calls,
                        total_ms,
                        rows,
                    };
                    ((service, id), counters)
                })
                .collect(),
        ))
    }
}

/// What one statement cost between two snapshots.
#[derive(Clone, Default)]
pub struct Spent {
    /// The service whose database ran it.
    pub service: String,
    /// Its normalised text, on one line.
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub rows: i64,
}

impl Snapshot {
    /// The statements run since `before`, each once, with what they cost meanwhile.
    pub fn since(&self, before: &Snapshot) -> Vec<Spent> {
        self.0
            .iter()
            .map(|(key, now)| {
                let then = before.0.get(key).cloned().unwrap_or_default();
                Spent {
                    service: key.0.clone(),
                    query: now.query.split_whitespace().collect::<Vec<_>>().join(" "),
                    calls: now.calls - then.calls,
                    total_ms: now.total_ms - then.total_ms,
                    rows: now.rows - then.rows,
                }
            })
            .filter(|spent| spent.calls > 0)
            .collect()
    }
}

/// Prints the `top` statements by Postgres time between `before` and `after`, with their
/// time per stored message (`per` messages were stored meanwhile).
pub fn print_top(before: &Snapshot, after: &Snapshot, per: u64, top: usize) {
    let mut spent = after.since(before);
    spent.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    let total: f64 = spent.iter().map(|s| s.total_ms).sum();
    let per = per.max(1) as f64;
    println!(
        "Postgres statement time: {:.0} ms in all, {:.3} ms per stored message; the {top} costliest:",
        total,
        total / per
    );
    println!(
        "{:>10} {:>9} {:>8} {:>9} {:>8}  {:<14} statement",
        "total ms", "ms/msg", "calls", "mean ms", "rows", "database"
    );
    for s in spent.iter().take(top) {
        let text: String = s.query.chars().take(110).collect();
        println!(
            "{:>10.0} {:>9.3} {:>8} {:>9.3} {:>8}  {:<14} {text}",
            s.total_ms,
            s.total_ms / per,
            s.calls,
            s.total_ms / s.calls as f64,
            s.rows,
            s.service
        );
    }
}
