//! Enums stored as text bind as text, read back as themselves, and refuse a spelling
//! they do not know instead of reading it as something else.
use ism_platform::config::ServiceName;
use ism_platform::db;
use sqlx::migrate::Migrator;

ism_platform::stored_enum! {
    /// A state as a service would store it.
    enum State {
        Open = "open",
        Closed = "closed",
    }
}

#[tokio::test]
async fn stored_enums_round_trip_and_refuse_unknown_spellings() {
    let pool = db::scratch(ServiceName::Broadcasts, &Migrator::DEFAULT)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE things (id int PRIMARY KEY, state text NOT NULL)")
        .execute(&*pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO things VALUES (1, $1), (2, 'open'), (3, 'Open')")
        .bind(State::Closed)
        .execute(&*pool)
        .await
        .unwrap();

    let stored: String = sqlx::query_scalar("SELECT state FROM things WHERE id = 1")
        .fetch_one(&*pool)
        .await
        .unwrap();
    assert_eq!(stored, "closed", "bound as its spelling");

    let open: Vec<i32> = sqlx::query_scalar("SELECT id FROM things WHERE state = ANY($1)")
        .bind(vec![State::Open])
        .fetch_all(&*pool)
        .await
        .unwrap();
    assert_eq!(open, [2], "an array binds as text[] and matches exactly");

    let read: State = sqlx::query_scalar("SELECT state FROM things WHERE id = 2")
        .fetch_one(&*pool)
        .await
        .unwrap();
    assert_eq!(read, State::Open);

    let unknown = sqlx::query_scalar::<_, State>("SELECT state FROM things WHERE id = 3")
        .fetch_one(&*pool)
        .await
        .unwrap_err();
    let reason = unknown.to_string();
    assert!(
        reason.contains("\"Open\"") && reason.contains("open, closed"),
        "the decode error names the value and the known spellings: {reason}"
    );
}
