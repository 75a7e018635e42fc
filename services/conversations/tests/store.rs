//! The conversations store on a fresh Postgres database.
use chrono::{Duration, SubsecRound, Utc};
use ism_conversations::store::{self, NewMessage, Party};
use ism_platform::config::ServiceName;
use ism_platform::db;
use uuid::Uuid;

#[tokio::test]
async fn inbound_messages_are_stored_once_in_one_active_conversation() {
    let pool = db::scratch(ServiceName::Conversations, &ism_conversations::MIGRATOR)
        .await
        .unwrap();
    let party = Party {
        workspace_id: Uuid::now_v7(),
        contact_id: Uuid::now_v7(),
        channel_id: Uuid::now_v7(),
        contact_external_id: "c1",
    };
    let mut conn = pool.acquire().await.unwrap();
    let now = Utc::now().trunc_subsecs(6);
    let first = store::open_or_find(&mut conn, &party, now).await.unwrap();
    let again = store::open_or_find(&mut conn, &party, now + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(
        first.id, again.id,
        "one active conversation per contact and channel"
    );
    assert_eq!(again.last_message_at, now + Duration::seconds(5));

    let message = |external: &'static str| NewMessage {
        workspace_id: party.workspace_id,
        conversation_id: first.id,
        channel_id: party.channel_id,
        direction: "inbound",
        content: vec![],
        status: "received",
        external_message_id: external,
        client_message_id: None,
        sent_at: now,
    };
    assert!(
        store::insert_message(&mut conn, &message("p-1"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store::insert_message(&mut conn, &message("p-1"))
            .await
            .unwrap()
            .is_none(),
        "a redelivered provider id is not stored twice"
    );
    drop(conn);
    db::drop_scratch(pool).await.unwrap();
}

#[tokio::test]
async fn delivery_status_only_moves_forward() {
    let pool = db::scratch(ServiceName::Conversations, &ism_conversations::MIGRATOR)
        .await
        .unwrap();
    let party = Party {
        workspace_id: Uuid::now_v7(),
        contact_id: Uuid::now_v7(),
        channel_id: Uuid::now_v7(),
        contact_external_id: "c1",
    };
    let mut conn = pool.acquire().await.unwrap();
    let conversation = store::open_or_find(&mut conn, &party, Utc::now())
        .await
        .unwrap();
    let outbound = NewMessage {
        workspace_id: party.workspace_id,
        conversation_id: conversation.id,
        channel_id: party.channel_id,
        direction: "outbound",
        content: vec![],
        status: "pending",
        external_message_id: "",
        client_message_id: Some("r1"),
        sent_at: Utc::now(),
    };
    let message = store::insert_message(&mut conn, &outbound)
        .await
        .unwrap()
        .unwrap();
    let ws = party.workspace_id;
    assert!(
        store::advance_status(&mut conn, ws, message.id, "read", "", "x-1")
            .await
            .unwrap()
    );
    assert!(
        !store::advance_status(&mut conn, ws, message.id, "sent", "", "")
            .await
            .unwrap(),
        "a late 'sent' does not undo 'read'"
    );
    assert!(
        !store::advance_status(&mut conn, Uuid::now_v7(), message.id, "failed", "", "")
            .await
            .unwrap(),
        "another workspace cannot touch it"
    );
    let stored = store::message(&pool, ws, message.id).await.unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.external_message_id.as_str()),
        ("read", "x-1")
    );
    drop(conn);
    db::drop_scratch(pool).await.unwrap();
}
