//! Write budgets: the rows an inbound message and a reply write, table by table, across
//! every service database, counted by Postgres itself (`pg_stat_user_tables`). A trigger
//! cascade, a second write of the same row or a new table on the path shows here as a
//! number that grew, on any machine, where a timed test could not tell it from noise.
//!
//! The budgets are the counts of the code as it is (docs/architecture.md, "Guards on the
//! hot paths"); a change that writes less lowers them, one that writes more says why.
use std::collections::BTreeMap;
use std::time::Duration;

use ism_e2e::{Platform, Receiver, Tenant, authed, eventually};
use ism_platform::config::ServiceName;
use ism_proto::conversations::v1::{
    ListConversationsRequest, ListMessagesRequest, SendMessageRequest,
};
use ism_proto::types::v1::{DeliveryStatus, MessageContent, Text, message_content::Kind};
use serde_json::json;

/// Messages of each measured phase.
const N: usize = 20;
/// Rows that `N` inbound messages from a known Contact, in its open conversation, write
/// (the first of them also stops the auto-close timer the Workspace's last reply set).
const INBOUND: &[(&str, &str, usize)] = &[
    ("gateway", "inbound_messages", N),
    // Each event is inserted, then marked published.
    ("gateway", "platform_outbox", 2 * N),
    ("conversations", "platform_inbox", N),
    ("conversations", "messages", N),
    ("conversations", "conversations", N),
    ("conversations", "conversation_timers", 1),
    ("conversations", "platform_outbox", 2 * N),
];
/// Rows that `N` replies write, from SendMessage to their `sent` status.
const REPLY: &[(&str, &str, usize)] = &[
    // Stored pending, then moved to sent.
    ("conversations", "messages", 2 * N),
    ("conversations", "conversations", N),
    // The auto-close timer, restarted by each reply.
    ("conversations", "conversation_timers", N),
    // message.created, delivery.requested and message.status_changed, each inserted and
    // marked published.
    ("conversations", "platform_outbox", 6 * N),
    ("conversations", "platform_inbox", N),
    ("gateway", "platform_inbox", N),
    // Queued, claimed, finished.
    ("gateway", "deliveries", 3 * N),
    ("gateway", "platform_outbox", 2 * N),
];
/// Longer than Postgres' 10 s idle interval, after which every backend has flushed the
/// counts of what it did.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// Rows inserted, updated and deleted so far, by service and table.
async fn written(platform: &Platform) -> BTreeMap<(String, String), i64> {
    let mut rows = BTreeMap::new();
    for service in ServiceName::ALL.map(ServiceName::as_str) {
        let db = platform.database(service).await;
        let tables: Vec<(String, i64)> = sqlx::query_as(
            "SELECT relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::bigint
             FROM pg_stat_user_tables WHERE relname NOT LIKE '\\_sqlx%'",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        for (table, n) in tables {
            rows.insert((service.to_owned(), table), n);
        }
        db.close().await;
    }
    rows
}

/// The tables `during` wrote more rows to than `budget` allows (none for a table it does
/// not name), once the statistics settled.
async fn per_message<F: Future<Output = ()>>(
    platform: &Platform,
    budget: &[(&str, &str, usize)],
    during: F,
) -> Vec<String> {
    let before = written(platform).await;
    during.await;
    tokio::time::sleep(STATS_SETTLE).await;
    let after = written(platform).await;
    let mut over = Vec::new();
    for ((service, table), n) in &after {
        let rows = n - before.get(&(service.clone(), table.clone())).unwrap_or(&0);
        if rows == 0 {
            continue;
        }
        let allowed = budget
            .iter()
            .find(|(s, t, _)| s == service && t == table)
            .map_or(0, |(_, _, rows)| *rows);
        if rows as usize > allowed {
            over.push(format!(
                "{service}.{table}: {rows} rows for {N} messages, budget {allowed}"
            ));
        }
    }
    over
}

fn webhook_body(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"message_id": id, "from": {"id": "c1"}, "text": "hello"})).unwrap()
}

async fn inbound(platform: &Platform, tenant: &Tenant, ids: std::ops::Range<usize>) {
    let expected = ids.end;
    for n in ids {
        let body = webhook_body(&format!("m-{n}"));
        let (code, _) = platform
            .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
            .await;
        assert_eq!(code, 200);
    }
    platform.stored_external_ids(tenant, expected).await;
}

async fn replies(platform: &Platform, tenant: &Tenant, ids: std::ops::Range<usize>) {
    let token = platform.token(tenant).await;
    let mut client = platform.conversations().await;
    let conversation = client
        .list_conversations(authed(&token, ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .conversations
        .remove(0);
    let sent = ids.end;
    for n in ids {
        let request = SendMessageRequest {
            conversation_id: conversation.id.clone(),
            content: Some(MessageContent {
                kind: Some(Kind::Text(Text {
                    body: format!("reply {n}"),
                })),
                ..Default::default()
            }),
            client_message_id: format!("r-{n}"),
            snippet_id: String::new(),
        };
        client.send_message(authed(&token, request)).await.unwrap();
    }
    eventually(Duration::from_secs(60), "every reply sent", || {
        let (mut client, token, id) = (client.clone(), token.clone(), conversation.id.clone());
        async move {
            let request = ListMessagesRequest {
                conversation_id: id,
                page_size: 100,
                ..Default::default()
            };
            let messages = client
                .list_messages(authed(&token, request))
                .await
                .ok()?
                .into_inner()
                .messages;
            let done = messages
                .iter()
                .filter(|m| m.status == DeliveryStatus::Sent as i32)
                .count();
            (done == sent).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn an_inbound_message_and_a_reply_write_no_more_rows_than_their_budgets() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    // The Contact, its conversation and the channel's caches exist before counting.
    inbound(&platform, &tenant, 0..1).await;
    replies(&platform, &tenant, 0..1).await;
    tokio::time::sleep(STATS_SETTLE).await;

    let over = per_message(&platform, INBOUND, inbound(&platform, &tenant, 1..N + 1)).await;
    assert!(
        over.is_empty(),
        "inbound messages over budget:\n{}",
        over.join("\n")
    );
    let over = per_message(&platform, REPLY, replies(&platform, &tenant, 1..N + 1)).await;
    assert!(over.is_empty(), "replies over budget:\n{}", over.join("\n"));
}
