//! Write budgets: what an inbound message and a reply cost the databases, service by
//! service, counted by Postgres itself: rows written, table by table
//! (`pg_stat_user_tables`), statements run and transactions committed
//! (`pg_stat_statements`, which counts each call as it ends; `pg_stat_database` lags by up
//! to ten seconds per connection, too loose to tell one transaction a message). A trigger cascade, a second write of the same row, an
//! extra round trip or a new table on the path shows here as a number that grew, on any
//! machine, where a timed test could not tell it from noise.
//!
//! Messages go one at a time, each waited for to the end of its path, so no batching
//! blurs the counts; what the same services do idle in as long (their pollers) is
//! measured just before and taken off.
//!
//! The budgets are the counts of the code as it is (docs/architecture.md, "Guards on the
//! hot paths"); a change that costs less lowers them, one that costs more says why.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ism_e2e::statements::{Snapshot, Statements};
use ism_e2e::{Platform, Receiver, Tenant, authed};
use ism_platform::config::ServiceName;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::conversations::v1::{ListConversationsRequest, SendMessageRequest};
use ism_proto::types::v1::{MessageContent, Text, message_content::Kind};
use serde_json::json;
use sqlx::PgPool;
use tonic::transport::Channel;

/// Messages of each measured phase.
const N: usize = 40;
/// Rows that `N` inbound messages from a known Contact, in its open conversation, write
/// (the first of them also stops the auto-close timer the Workspace's last reply set).
const INBOUND_ROWS: &[(&str, &str, usize)] = &[
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
const REPLY_ROWS: &[(&str, &str, usize)] = &[
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

/// Statements and transactions one message costs a service's database.
struct Work {
    statements: usize,
    transactions: usize,
}

/// What one inbound message costs, by service (none for a service not named): the
/// gateway takes it in (its row and event in one transaction) and its relay marks the
/// event published; contacts reads the sender's identity and Contact in one statement;
/// conversations finds the message new and the conversation open, stores the message,
/// moves the conversation and stops its auto-close timer in one statement, and emits.
const INBOUND_WORK: &[(&str, Work)] = &[
    (
        "gateway",
        Work {
            statements: 3,
            transactions: 2,
        },
    ),
    (
        "contacts",
        Work {
            statements: 1,
            transactions: 0,
        },
    ),
    (
        "conversations",
        Work {
            statements: 7,
            transactions: 2,
        },
    ),
];
/// What one reply costs, from SendMessage to its `sent` status, by service: conversations
/// stores it pending with its two events, then applies the gateway's status (reading the
/// message and its conversation, moving both, restarting the auto-close timer) with the
/// third; the gateway takes the request in after checking the channel, reads the channel
/// to send, claims the delivery (and claims once more, finding nothing), records the
/// outcome with its status event.
const REPLY_WORK: &[(&str, Work)] = &[
    (
        "gateway",
        Work {
            statements: 9,
            transactions: 3,
        },
    ),
    (
        "conversations",
        Work {
            statements: 12,
            transactions: 4,
        },
    ),
];
/// A per-message figure is over its budget when it exceeds it by more than this: idle
/// polling taken off by time leaves a few calls of noise over `N` messages, while one
/// statement or transaction more per message adds a whole unit.
const SLACK: f64 = 0.5;

/// Longer than Postgres' 10 s idle interval, after which every backend has flushed the
/// counts of what it did.
const STATS_SETTLE: Duration = Duration::from_secs(11);
/// How long the idle services are watched before each phase.
const IDLE: Duration = Duration::from_secs(12);

/// Marks the statements this test runs itself, so they are not counted as the path's.
const OWN: &str = "/* write budget */";
const READ_ROWS: &str =
    "SELECT /* write budget */ relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::bigint
     FROM pg_stat_user_tables WHERE relname NOT LIKE '\\_sqlx%'";
/// Messages of a direction in a status, and events not yet published, in conversations.
const PROBE: &str = "SELECT /* write budget */
       (SELECT count(*) FROM messages WHERE direction = $1 AND status = $2),
       (SELECT count(*) FROM platform_outbox WHERE published_at IS NULL)";

/// The databases' counters at one moment.
struct Reading {
    at: Instant,
    rows: BTreeMap<(String, String), i64>,
    statements: Snapshot,
}

async fn read(platform: &Platform, statements: &Statements) -> Reading {
    let mut rows = BTreeMap::new();
    for service in ServiceName::ALL.map(ServiceName::as_str) {
        let db = platform.database(service).await;
        let tables: Vec<(String, i64)> = sqlx::query_as(READ_ROWS).fetch_all(&db).await.unwrap();
        for (table, n) in tables {
            rows.insert((service.to_owned(), table), n);
        }
        db.close().await;
    }
    Reading {
        at: Instant::now(),
        rows,
        statements: statements.snapshot().await.unwrap(),
    }
}

/// A transaction committed, as `pg_stat_statements` names it.
const COMMIT: &str = "COMMIT";

/// Statements not counted as the path's: transaction control (the transactions are
/// counted as commits; a look that found nothing rolls back), and the outbox relay's look
/// for events, which a writer's wake-up sends before its commit, so that it may look once
/// more, finding nothing, depending on how soon that commit lands; what the relay
/// publishes shows in the outbox rows it marks and its commits.
fn uncounted(query: &str) -> bool {
    matches!(query, "BEGIN" | "ROLLBACK")
        || query.starts_with("SELECT id, routing_key, body, headers FROM platform_outbox")
}

/// Calls per service and statement text between two readings, this test's own and the
/// uncounted apart.
fn calls(from: &Reading, to: &Reading) -> BTreeMap<(String, String), f64> {
    let mut path = BTreeMap::new();
    for spent in to.statements.since(&from.statements) {
        if !uncounted(&spent.query) && !spent.query.contains(OWN) {
            *path.entry((spent.service, spent.query)).or_default() += spent.calls as f64;
        }
    }
    path
}

/// What a phase cost per message, against a budget: rows exactly, statements and
/// transactions beyond what the idle window before it cost in as long.
fn over_budget(
    idle: (&Reading, &Reading),
    busy: (&Reading, &Reading),
    rows_budget: &[(&str, &str, usize)],
    work_budget: &[(&str, Work)],
) -> Vec<String> {
    let mut over = Vec::new();
    for ((service, table), n) in &busy.1.rows {
        let rows = n - busy
            .0
            .rows
            .get(&(service.clone(), table.clone()))
            .unwrap_or(&0);
        let allowed = rows_budget
            .iter()
            .find(|(s, t, _)| s == service && t == table)
            .map_or(0, |(_, _, rows)| *rows);
        if rows as usize > allowed {
            over.push(format!(
                "{service}.{table}: {rows} rows for {N} messages, budget {allowed}"
            ));
        }
    }

    let scale = (busy.1.at - busy.0.at).as_secs_f64() / (idle.1.at - idle.0.at).as_secs_f64();
    let idle_calls = calls(idle.0, idle.1);
    let busy_calls = calls(busy.0, busy.1);
    for service in ServiceName::ALL.map(ServiceName::as_str) {
        let (statements_allowed, transactions_allowed) = work_budget
            .iter()
            .find(|(s, _)| *s == service)
            .map_or((0, 0), |(_, w)| (w.statements, w.transactions));
        let mut statements: Vec<(f64, &str)> = busy_calls
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(key, n)| {
                let idle = idle_calls.get(key).copied().unwrap_or(0.0);
                ((n - idle * scale) / N as f64, key.1.as_str())
            })
            .collect();
        statements.sort_by(|a, b| b.0.total_cmp(&a.0));
        let transactions: f64 = statements
            .iter()
            .filter(|(_, query)| *query == COMMIT)
            .map(|(n, _)| n)
            .sum();
        let total: f64 = statements
            .iter()
            .filter(|(_, query)| *query != COMMIT)
            .map(|(n, _)| n)
            .sum();
        println!("{service}: {total:.2} statements, {transactions:.2} transactions per message");
        if total > statements_allowed as f64 + SLACK
            || transactions > transactions_allowed as f64 + SLACK
        {
            let mut report = format!(
                "{service}: {total:.2} statements per message (budget {statements_allowed}), \
                 {transactions:.2} transactions (budget {transactions_allowed}); \
                 those run at least once per two messages:"
            );
            for (n, query) in statements.iter().filter(|(n, _)| *n >= 0.5) {
                let query: String = query.chars().take(160).collect();
                report.push_str(&format!("\n  {n:.2}  {query}"));
            }
            over.push(report);
        }
    }
    over
}

/// Watches the idle services for [`IDLE`] from `idle`, then runs `during` and lets the
/// counts settle: what it cost beyond its budgets, and the last reading, which starts the
/// next phase's idle window.
async fn phase(
    platform: &Platform,
    statements: &Statements,
    idle: Reading,
    during: impl Future<Output = ()>,
    rows: &[(&str, &str, usize)],
    work: &[(&str, Work)],
) -> (Vec<String>, Reading) {
    tokio::time::sleep(IDLE).await;
    let start = read(platform, statements).await;
    during.await;
    tokio::time::sleep(STATS_SETTLE).await;
    let end = read(platform, statements).await;
    let over = over_budget((&idle, &start), (&start, &end), rows, work);
    (over, end)
}

/// Waits until conversations holds `count` messages of `direction` in `status` and has
/// published every event.
async fn settled(conversations: &PgPool, direction: &str, status: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (messages, unpublished): (i64, i64) = sqlx::query_as(PROBE)
            .bind(direction)
            .bind(status)
            .fetch_one(conversations)
            .await
            .unwrap();
        if messages == count && unpublished == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} {direction} messages {status} with every event published \
             (now {messages}, {unpublished} unpublished)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn webhook_body(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"message_id": id, "from": {"id": "c1"}, "text": "hello"})).unwrap()
}

/// Sends inbound messages one at a time, each stored and its event published before the
/// next.
async fn inbound(platform: &Platform, tenant: &Tenant, ids: std::ops::Range<usize>) {
    let conversations = platform.database("conversations").await;
    for n in ids {
        let body = webhook_body(&format!("m-{n}"));
        let (code, _) = platform
            .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
            .await;
        assert_eq!(code, 200);
        settled(&conversations, "inbound", "received", n as i64 + 1).await;
    }
    conversations.close().await;
}

/// A conversation to reply in, and a client with a token, taken before counting starts.
struct Replying {
    client: ConversationServiceClient<Channel>,
    token: String,
    conversation_id: String,
}

async fn replying(platform: &Platform, tenant: &Tenant) -> Replying {
    let token = platform.token(tenant).await;
    let mut client = platform.conversations().await;
    let conversation_id = client
        .list_conversations(authed(&token, ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .conversations
        .remove(0)
        .id;
    Replying {
        client,
        token,
        conversation_id,
    }
}

/// Sends replies one at a time, each sent and its events published before the next.
async fn replies(platform: &Platform, replying: &Replying, ids: std::ops::Range<usize>) {
    let conversations = platform.database("conversations").await;
    let mut client = replying.client.clone();
    for n in ids {
        let request = SendMessageRequest {
            conversation_id: replying.conversation_id.clone(),
            content: Some(MessageContent {
                kind: Some(Kind::Text(Text {
                    body: format!("reply {n}"),
                })),
                ..Default::default()
            }),
            client_message_id: format!("r-{n}"),
            snippet_id: String::new(),
        };
        client
            .send_message(authed(&replying.token, request))
            .await
            .unwrap();
        settled(&conversations, "outbound", "sent", n as i64 + 1).await;
    }
    conversations.close().await;
}

#[tokio::test]
async fn an_inbound_message_and_a_reply_cost_no_more_than_their_budgets() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let statements = Statements::connect(&platform.id)
        .await
        .expect("the write budgets count statements with pg_stat_statements");
    // The Contact, its conversation and the channel's caches exist before counting.
    inbound(&platform, &tenant, 0..1).await;
    let replying = replying(&platform, &tenant).await;
    replies(&platform, &replying, 0..1).await;
    tokio::time::sleep(STATS_SETTLE).await;

    let idle = read(&platform, &statements).await;
    let (inbound_over, end) = phase(
        &platform,
        &statements,
        idle,
        inbound(&platform, &tenant, 1..N + 1),
        INBOUND_ROWS,
        INBOUND_WORK,
    )
    .await;
    let (over, _) = phase(
        &platform,
        &statements,
        end,
        replies(&platform, &replying, 1..N + 1),
        REPLY_ROWS,
        REPLY_WORK,
    )
    .await;
    assert!(
        inbound_over.is_empty(),
        "inbound messages over budget:\n{}",
        inbound_over.join("\n")
    );
    assert!(over.is_empty(), "replies over budget:\n{}", over.join("\n"));
}
