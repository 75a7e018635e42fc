//! Scratch databases go with their test, also when it fails.
use ism_platform::config::ServiceName;
use ism_platform::db;
use sqlx::migrate::Migrator;

#[tokio::test]
async fn a_failing_tests_scratch_database_is_dropped() {
    let (named, name) = tokio::sync::oneshot::channel();
    let failed = tokio::spawn(async move {
        let scratch = db::scratch(ServiceName::Broadcasts, &Migrator::DEFAULT)
            .await
            .unwrap();
        named.send((*scratch.connect_options()).clone()).unwrap();
        panic!("a failed assertion");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());

    let options = name.await.unwrap();
    let name = options.get_database().unwrap().to_owned();
    let admin = sqlx::PgPool::connect_with(options.database("postgres"))
        .await
        .unwrap();
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!left, "{name} was left behind");
}
