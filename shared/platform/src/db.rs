//! Connection pools and migrations: each service owns one database, created when
//! missing, migrated with the platform's tables (outbox, inbox) and its own.
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres};
use uuid::Uuid;

use crate::config::{DatabaseSettings, ServiceName};

/// Platform tables every service database has (versions 1..999).
static PLATFORM_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A pool on `service`'s database, creating the database first when it is missing.
pub async fn connect(settings: &DatabaseSettings, service: ServiceName) -> anyhow::Result<PgPool> {
    let url = settings.url_for(service)?;
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("database URL of {service}: {e}"))?;
    let options = options.log_statements(tracing::log::LevelFilter::Debug);
    create_database_if_missing(&options).await?;
    let open = || {
        PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .connect_with(options.clone())
    };
    // A first connection slower than `acquire_timeout_ms` (a short wait for busy pools,
    // while many processes start at once) is not a reason to give up starting.
    let pool = open
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(1))
                .without_max_times()
                .with_total_delay(Some(Duration::from_secs(30))),
        )
        .when(|e| matches!(e, sqlx::Error::PoolTimedOut))
        .notify(|_, after| {
            tracing::warn!(%service, retry_in_ms = after.as_millis() as u64, "the first database connection took longer than database.acquire_timeout_ms; trying again");
        })
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the {service} database: {e}"))?;
    Ok(pool)
}

async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        // The name comes from our own configuration and is quoted as an identifier.
        match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another replica created it between our check and our create: Postgres says
            // so as a duplicate database, or, when both creates ran at once, as a unique
            // violation of its catalog.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A connection of `pool` for a handler, a pool timeout being UNAVAILABLE as everywhere.
pub async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, crate::error::Error> {
    Ok(pool.acquire().await?)
}

/// Deletes row `id` of `table` in `workspace_id`; NOT_FOUND naming `what` when the
/// Workspace has no such row.
pub async fn delete_in_workspace<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    table: &'static str,
    workspace_id: Uuid,
    id: Uuid,
    what: &'static str,
) -> Result<(), crate::error::Error> {
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(crate::error::Error::NotFound(what));
    }
    Ok(())
}

/// Applies the platform's and then the service's migrations.
pub async fn migrate(pool: &PgPool, service_migrations: &Migrator) -> anyhow::Result<()> {
    let all = PLATFORM_MIGRATIONS
        .iter()
        .chain(service_migrations.iter())
        .cloned()
        .collect();
    Migrator::with_migrations(all)
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))
}

/// Connects and migrates `service`'s database in one step.
pub async fn prepare(
    settings: &DatabaseSettings,
    service: ServiceName,
    service_migrations: &Migrator,
) -> anyhow::Result<PgPool> {
    let pool = connect(settings, service).await?;
    migrate(&pool, service_migrations).await?;
    Ok(pool)
}

/// A new, empty, migrated database for one test, on the server of `database.url`;
/// dropped when the [`Scratch`] is, also when the test fails.
pub async fn scratch(
    service: ServiceName,
    service_migrations: &Migrator,
) -> anyhow::Result<Scratch> {
    let mut settings = crate::config::Settings::load()?.database;
    settings.name_prefix = format!("ism_scratch_{}", uuid::Uuid::new_v4().simple());
    settings.max_connections = 20;
    let pool = prepare(&settings, service, service_migrations).await?;
    Ok(Scratch { pool })
}

/// A pool on a [`scratch`] database, which it drops when it goes.
#[derive(Debug)]
pub struct Scratch {
    pool: PgPool,
}

impl std::ops::Deref for Scratch {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let options = (*self.pool.connect_options()).clone();
        let Some(name) = options
            .get_database()
            .filter(|name| name.starts_with("ism_scratch_"))
            .map(str::to_owned)
        else {
            return;
        };
        // On a thread and runtime of its own: the test's runtime may be unwinding from a
        // failed assertion, or be a single thread that this drop would block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = options.database("postgres").connect().await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("scratch database left behind: {e:#}");
        }
    }
}
