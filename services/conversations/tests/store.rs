//! The conversations store on a fresh Postgres database: lifecycle and its timers,
//! metrics, assignment decisions under concurrency, and reports.
use chrono::{DateTime, Duration, SubsecRound, Utc};
use ism_conversations::inbound::{Arrival, store_arrivals};
use ism_conversations::lifecycle::{self, Closing};
use ism_conversations::merges;
use ism_conversations::settings::{self, WorkspaceSettings};
use ism_conversations::states::{Author, Delivery, Direction, Status};
use ism_conversations::store::{self, Conversation, Found, NewMessage, Party};
use ism_conversations::{Candidate, Error, Rules, Strategy, decide};
use ism_platform::config::ServiceName;
use ism_platform::db;
use ism_proto::events::v1::MessageReceived;
use sqlx::PgPool;
use uuid::Uuid;

async fn fresh() -> db::Scratch {
    db::scratch(ServiceName::Conversations, &ism_conversations::MIGRATOR)
        .await
        .unwrap()
}

fn party(workspace_id: Uuid) -> Party<'static> {
    Party {
        workspace_id,
        contact_id: Uuid::now_v7(),
        channel_id: Uuid::now_v7(),
        channel_type: 1,
        contact_external_id: "c1",
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Stores a message from `sender` the way the service does and applies it.
async fn write(pool: &PgPool, c: &Conversation, sender: &str, external: &str, at: DateTime<Utc>) {
    let mut conn = pool.acquire().await.unwrap();
    let sender: Author = sender.parse().unwrap();
    let from_contact = sender == Author::Contact;
    let direction = if from_contact {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    let message = NewMessage {
        workspace_id: c.workspace_id,
        conversation_id: c.id,
        channel_id: c.channel_id,
        direction,
        content: vec![],
        status: if from_contact {
            Delivery::Received
        } else {
            Delivery::Pending
        },
        external_message_id: external,
        client_message_id: None,
        sent_at: at,
        sender,
        sender_id: "",
        mentions: &[],
    };
    store::insert_message(&mut conn, &message)
        .await
        .unwrap()
        .unwrap();
    store::record_message(&mut conn, c.id, sender, at, at)
        .await
        .unwrap();
}

async fn get(pool: &PgPool, c: &Conversation) -> Conversation {
    let mut conn = pool.acquire().await.unwrap();
    store::conversation(&mut conn, c.workspace_id, c.id)
        .await
        .unwrap()
}

async fn open(pool: &PgPool, party: &Party<'_>, at: DateTime<Utc>) -> (Conversation, Found) {
    let mut conn = pool.acquire().await.unwrap();
    store::open_or_find(&mut conn, party, at).await.unwrap()
}

#[tokio::test]
async fn inbound_messages_are_stored_once_in_one_active_conversation() {
    let pool = fresh().await;
    let party = party(Uuid::now_v7());
    let t = now();
    let (first, found) = open(&pool, &party, t).await;
    assert_eq!(found, Found::Opened);
    assert_eq!(first.opened_by, Author::Contact);
    assert_eq!(first.opened_by_id, party.contact_id.to_string());
    let (again, found) = open(&pool, &party, t + Duration::seconds(5)).await;
    assert_eq!(
        (again.id, found),
        (first.id, Found::Open),
        "one active conversation per contact and channel"
    );
    write(&pool, &first, "contact", "p-1", t).await;
    let mut conn = pool.acquire().await.unwrap();
    let stored = store::stored_inbound(
        &mut conn,
        &[
            (party.workspace_id, party.channel_id, "p-1"),
            (party.workspace_id, party.channel_id, "p-2"),
            (Uuid::now_v7(), party.channel_id, "p-1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        stored,
        [(party.workspace_id, party.channel_id, "p-1".to_owned())].into(),
        "a redelivered provider id is recognised, in its own workspace only"
    );
    drop(conn);
}

fn received(external: &str) -> MessageReceived {
    MessageReceived {
        external_message_id: external.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_batch_of_arrivals_stores_each_provider_message_once_and_opens_wakes_or_finds() {
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let (new, snoozed, open_one) = (
        party(workspace_id),
        party(workspace_id),
        party(workspace_id),
    );
    let t = now();
    let (asleep, _) = open(&pool, &snoozed, t).await;
    let (awake, _) = open(&pool, &open_one, t).await;
    write(&pool, &awake, "contact", "o-0", t).await;
    let mut conn = pool.acquire().await.unwrap();
    lifecycle::snooze(
        &mut conn,
        workspace_id,
        asleep.id,
        t + Duration::hours(3),
        t,
    )
    .await
    .unwrap();
    let messages = [
        (&new, received("n-1"), t + Duration::seconds(1)),
        (&new, received("n-2"), t + Duration::seconds(2)),
        (&snoozed, received("s-1"), t + Duration::seconds(3)),
        (&open_one, received("o-0"), t + Duration::seconds(4)),
        (&open_one, received("o-1"), t + Duration::seconds(5)),
        (&new, received("n-1"), t + Duration::seconds(6)),
    ];
    let arrivals: Vec<Arrival<'_>> = messages
        .iter()
        .map(|(party, received, sent_at)| Arrival {
            party: Party { ..**party },
            received,
            sent_at: *sent_at,
        })
        .collect();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let stored = store_arrivals(&mut tx, &arrivals).await.unwrap();
    tx.commit().await.unwrap();
    let summary: Vec<(&str, Found)> = stored
        .iter()
        .map(|s| (s.message.external_message_id.as_str(), s.found))
        .collect();
    assert_eq!(
        summary,
        [
            ("n-1", Found::Opened),
            ("n-2", Found::Open),
            ("s-1", Found::Woken),
            ("o-1", Found::Open),
        ],
        "the stored o-0 and the repeated n-1 are left out; each conversation opened or woken once"
    );
    assert_eq!(stored[0].conversation.id, stored[1].conversation.id);
    assert_eq!(stored[2].conversation.id, asleep.id);
    assert_eq!(stored[3].conversation.id, awake.id);
    let woken = get(&pool, &asleep).await;
    assert_eq!((woken.status.as_str(), woken.snoozed_until), ("open", None));
    let opened = get(&pool, &stored[0].conversation).await;
    assert_eq!(opened.last_message_at, t + Duration::seconds(2));
    assert_eq!(opened.waiting_since, Some(t + Duration::seconds(1)));
    assert_eq!(opened.last_message_from, Author::Contact);
    let events: Vec<String> =
        sqlx::query_scalar("SELECT routing_key FROM platform_outbox ORDER BY seq")
            .fetch_all(&*pool)
            .await
            .unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.as_str() == kind).count();
    assert_eq!(count("conversations.message.created"), 4);
    assert_eq!(count("conversations.conversation.opened"), 1);
    assert_eq!(count("conversations.conversation.woken"), 1);
    drop(conn);
}

#[tokio::test]
async fn a_message_after_closing_opens_a_new_conversation_and_one_while_snoozed_wakes_it() {
    let pool = fresh().await;
    let party = party(Uuid::now_v7());
    let t = now();
    let (first, _) = open(&pool, &party, t).await;
    let mut conn = pool.acquire().await.unwrap();
    lifecycle::snooze(
        &mut conn,
        party.workspace_id,
        first.id,
        t + Duration::hours(3),
        t,
    )
    .await
    .unwrap();
    drop(conn);
    let (woken, found) = open(&pool, &party, t + Duration::minutes(1)).await;
    assert_eq!((woken.id, found), (first.id, Found::Woken));
    assert_eq!(woken.status, Status::Open);
    assert_eq!(woken.snoozed_until, None);
    let none = lifecycle::fire_due(&pool, t + Duration::hours(4), 100)
        .await
        .unwrap();
    assert!(none.woken.is_empty(), "the wake-up was cancelled");

    let mut conn = pool.acquire().await.unwrap();
    let closing = Closing {
        closed_by: "user:x",
        category: "",
        summary: "",
        at: t + Duration::minutes(2),
    };
    lifecycle::close(&mut conn, party.workspace_id, first.id, &closing)
        .await
        .unwrap();
    drop(conn);
    let (second, found) = open(&pool, &party, t + Duration::minutes(3)).await;
    assert_eq!(found, Found::Opened);
    assert_ne!(second.id, first.id);
    assert_eq!(
        second.contact_id, first.contact_id,
        "history stays with the contact"
    );
    assert_eq!(get(&pool, &first).await.status, Status::Closed);
}

#[tokio::test]
async fn a_snoozed_conversation_wakes_by_itself_at_its_time_and_not_before() {
    let pool = fresh().await;
    let party = party(Uuid::now_v7());
    let t = now();
    let (c, _) = open(&pool, &party, t).await;
    let mut conn = pool.acquire().await.unwrap();
    let past = lifecycle::snooze(
        &mut conn,
        party.workspace_id,
        c.id,
        t - Duration::minutes(1),
        t,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&past, Error::Invalid(f) if f.names("until")),
        "{past:?}"
    );
    assert_eq!(
        get(&pool, &c).await.status,
        Status::Open,
        "nothing changed on bad input"
    );
    let until = t + Duration::hours(2);
    lifecycle::snooze(&mut conn, party.workspace_id, c.id, until, t)
        .await
        .unwrap();
    drop(conn);

    let early = lifecycle::fire_due(&pool, until - Duration::seconds(1), 100)
        .await
        .unwrap();
    assert!(early.woken.is_empty());
    assert_eq!(get(&pool, &c).await.status, Status::Snoozed);
    let due = lifecycle::fire_due(&pool, until, 100).await.unwrap();
    assert_eq!(due.woken, vec![(party.workspace_id, c.id)]);
    assert_eq!(get(&pool, &c).await.status, Status::Open);
    let again = lifecycle::fire_due(&pool, until + Duration::hours(1), 100)
        .await
        .unwrap();
    assert!(again.woken.is_empty(), "a timer fires once");
}

#[tokio::test]
async fn only_a_users_reply_starts_auto_close_and_the_contact_stops_it() {
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let mut conn = pool.acquire().await.unwrap();
    let custom = WorkspaceSettings {
        auto_close_minutes: 30,
        ..Default::default()
    };
    settings::save(&mut conn, workspace_id, &custom)
        .await
        .unwrap();
    drop(conn);
    let t = now();
    let (bot_only, _) = open(&pool, &party(workspace_id), t).await;
    write(&pool, &bot_only, "bot", "", t).await;
    write(&pool, &bot_only, "workflow", "", t).await;
    write(&pool, &bot_only, "broadcast", "", t).await;
    let (answered, _) = open(&pool, &party(workspace_id), t).await;
    write(&pool, &answered, "user", "", t).await;
    let (reopened_talk, _) = open(&pool, &party(workspace_id), t).await;
    write(&pool, &reopened_talk, "user", "", t).await;
    write(
        &pool,
        &reopened_talk,
        "contact",
        "in-1",
        t + Duration::minutes(5),
    )
    .await;

    let before = lifecycle::fire_due(&pool, t + Duration::minutes(29), 100)
        .await
        .unwrap();
    assert!(before.closed.is_empty());
    let fired = lifecycle::fire_due(&pool, t + Duration::minutes(31), 100)
        .await
        .unwrap();
    assert_eq!(fired.closed, vec![(workspace_id, answered.id)]);
    let closed = get(&pool, &answered).await;
    assert_eq!(
        (closed.status.as_str(), closed.closed_at),
        ("closed", Some(t + Duration::minutes(31)))
    );
    assert_eq!(get(&pool, &bot_only).await.status, Status::Open);
    assert_eq!(get(&pool, &reopened_talk).await.status, Status::Open);
}

#[tokio::test]
async fn first_response_and_response_count_ignore_bot_workflow_and_broadcast_messages() {
    let pool = fresh().await;
    let t = now();
    let (c, _) = open(&pool, &party(Uuid::now_v7()), t).await;
    write(&pool, &c, "bot", "", t + Duration::seconds(5)).await;
    write(&pool, &c, "workflow", "", t + Duration::seconds(6)).await;
    write(&pool, &c, "user", "", t + Duration::seconds(90)).await;
    write(&pool, &c, "contact", "in-2", t + Duration::seconds(100)).await;
    write(&pool, &c, "user", "", t + Duration::seconds(120)).await;
    let c = get(&pool, &c).await;
    assert_eq!(c.first_response_at, Some(t + Duration::seconds(90)));
    assert_eq!(c.response_count, 2);
    assert_eq!(c.last_message_from, Author::User);
    assert_eq!(c.waiting_since, None);
}

fn rules(strategy: Strategy, cap: i32, online_only: bool) -> Rules {
    Rules {
        strategy,
        team_id: None,
        online_only,
        cap,
    }
}

async fn decide_once(
    pool: &PgPool,
    c: &Conversation,
    rules: &Rules,
    candidates: &[Candidate],
) -> Option<Uuid> {
    let mut tx = pool.begin().await.unwrap();
    let locked = store::lock_conversation(&mut tx, c.workspace_id, c.id)
        .await
        .unwrap();
    let decided = decide(&mut tx, &locked, rules, candidates, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    decided.and_then(|c| c.assignee_user_id)
}

#[tokio::test]
async fn round_robin_goes_round_and_least_open_fills_the_lightest_online_user() {
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let mut users: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    users.sort();
    let candidates: Vec<Candidate> = users
        .iter()
        .map(|&user_id| Candidate {
            user_id,
            online: true,
        })
        .collect();
    let t = now();
    let mut chosen = Vec::new();
    for _ in 0..4 {
        let (c, _) = open(&pool, &party(workspace_id), t).await;
        chosen.push(
            decide_once(
                &pool,
                &c,
                &rules(Strategy::RoundRobin, 0, true),
                &candidates,
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(chosen, vec![users[0], users[1], users[2], users[0]]);

    let mut with_offline = candidates.clone();
    with_offline[1].online = false;
    let (c, _) = open(&pool, &party(workspace_id), t).await;
    let least = decide_once(
        &pool,
        &c,
        &rules(Strategy::LeastOpen, 0, true),
        &with_offline,
    )
    .await;
    assert_eq!(
        least,
        Some(users[2]),
        "users[1] is as light but offline; users[0] has two"
    );
}

#[tokio::test]
async fn concurrent_decisions_never_give_a_user_more_than_the_cap() {
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let candidates: Vec<Candidate> = (0..3)
        .map(|_| Candidate {
            user_id: Uuid::now_v7(),
            online: true,
        })
        .collect();
    let t = now();
    let mut conversations = Vec::new();
    for _ in 0..40 {
        conversations.push(open(&pool, &party(workspace_id), t).await.0);
    }
    let cap = 4;
    let decisions = conversations.iter().enumerate().map(|(i, c)| {
        let pool = pool.clone();
        let candidates = candidates.clone();
        let strategy = if i % 2 == 0 {
            Strategy::LeastOpen
        } else {
            Strategy::RoundRobin
        };
        let c = c.clone();
        async move { decide_once(&pool, &c, &rules(strategy, cap, false), &candidates).await }
    });
    let results = futures::future::join_all(decisions).await;
    let assigned = results.iter().filter(|r| r.is_some()).count();
    assert_eq!(assigned, 12, "three users, four slots each");
    let loads: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT assignee_user_id, count(*) FROM conversations
         WHERE workspace_id = $1 AND assignee_user_id IS NOT NULL AND status <> 'closed' GROUP BY 1",
    )
    .bind(workspace_id)
    .fetch_all(&*pool)
    .await
    .unwrap();
    assert_eq!(loads.len(), 3);
    assert!(loads.iter().all(|&(_, n)| n == cap as i64), "{loads:?}");

    let mut conn = pool.acquire().await.unwrap();
    let busy = conversations
        .iter()
        .find(|c| results[conversations.iter().position(|x| x.id == c.id).unwrap()].is_some())
        .unwrap();
    let closing = Closing {
        closed_by: "user:x",
        category: "",
        summary: "",
        at: t,
    };
    lifecycle::close(&mut conn, workspace_id, busy.id, &closing)
        .await
        .unwrap();
    let oldest = ism_conversations::oldest_unassigned(&mut conn, workspace_id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    let unassigned_ids: Vec<Uuid> = conversations
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_none())
        .map(|(c, _)| c.id)
        .collect();
    assert_eq!(
        oldest.id, unassigned_ids[0],
        "the backlog is handed out oldest first"
    );
    let freed = decide_once(
        &pool,
        &oldest,
        &rules(Strategy::LeastOpen, cap, false),
        &candidates,
    )
    .await;
    assert!(freed.is_some(), "closing one freed a slot");
}

#[tokio::test]
async fn delivery_status_only_moves_forward() {
    let pool = fresh().await;
    let t = now();
    let (c, _) = open(&pool, &party(Uuid::now_v7()), t).await;
    let mut conn = pool.acquire().await.unwrap();
    let outbound = NewMessage {
        workspace_id: c.workspace_id,
        conversation_id: c.id,
        channel_id: c.channel_id,
        direction: Direction::Outbound,
        content: vec![],
        status: Delivery::Pending,
        external_message_id: "",
        client_message_id: Some("r1"),
        sent_at: t,
        sender: Author::User,
        sender_id: "u",
        mentions: &[],
    };
    let message = store::insert_message(&mut conn, &outbound)
        .await
        .unwrap()
        .unwrap();
    let ws = c.workspace_id;
    let read = store::advance_status(&mut conn, ws, message.id, Delivery::Read, "", "x-1")
        .await
        .unwrap();
    assert_eq!(read.map(|a| a.conversation_id), Some(c.id));
    assert!(
        store::advance_status(&mut conn, ws, message.id, Delivery::Sent, "", "")
            .await
            .unwrap()
            .is_none(),
        "a late 'sent' does not undo 'read'"
    );
    assert!(
        store::advance_status(
            &mut conn,
            Uuid::now_v7(),
            message.id,
            Delivery::Failed,
            "",
            ""
        )
        .await
        .unwrap()
        .is_none(),
        "another workspace cannot touch it"
    );
    let stored = store::message(&pool, ws, message.id).await.unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.external_message_id.as_str()),
        ("read", "x-1")
    );
    drop(conn);
}

#[tokio::test]
async fn reports_give_medians_percentiles_and_categories_per_channel() {
    use ism_conversations::report::{Grouping, report};
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let t = now();
    let channel = party(workspace_id);
    let mut responses = Vec::new();
    for minutes in [1, 2, 3, 4, 10] {
        let p = Party {
            contact_id: Uuid::now_v7(),
            ..party(workspace_id)
        };
        let p = Party {
            channel_id: channel.channel_id,
            ..p
        };
        let (c, _) = open(&pool, &p, t).await;
        write(&pool, &c, "contact", &format!("in-{minutes}"), t).await;
        write(&pool, &c, "bot", "", t + Duration::seconds(1)).await;
        write(&pool, &c, "user", "", t + Duration::minutes(minutes)).await;
        let mut conn = pool.acquire().await.unwrap();
        let category = if minutes < 3 { "Resolved" } else { "Spam" };
        let closing = Closing {
            closed_by: "user:x",
            category,
            summary: "",
            at: t + Duration::minutes(2 * minutes),
        };
        lifecycle::close(&mut conn, workspace_id, c.id, &closing)
            .await
            .unwrap();
        responses.push(minutes);
    }
    let rows = report(
        &pool,
        workspace_id,
        t - Duration::hours(1),
        t + Duration::hours(1),
        Grouping::Channel,
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.key, channel.channel_id.to_string());
    assert_eq!((row.opened, row.closed), (5, 5));
    assert_eq!(row.first_response_median_seconds, Some(180.0));
    // p90 of 60, 120, 180, 240, 600 seconds, interpolated.
    assert_eq!(row.first_response_p90_seconds, Some(456.0));
    assert_eq!(row.resolution_median_seconds, Some(360.0));
    assert_eq!((row.messages_in, row.messages_out), (5, 10));
    assert_eq!(row.closing_categories.get("Resolved"), Some(&2));
    assert_eq!(row.closing_categories.get("Spam"), Some(&3));
}

#[tokio::test]
async fn inbox_views_combine_status_assignee_team_channel_and_waiting_conditions() {
    use ism_conversations::inbox::{self, Assignee, Filter};
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let (me, team) = (Uuid::now_v7(), Uuid::now_v7());
    let t = now();
    let (waiting_long, _) = open(&pool, &party(workspace_id), t - Duration::hours(2)).await;
    write(
        &pool,
        &waiting_long,
        "contact",
        "w-1",
        t - Duration::hours(2),
    )
    .await;
    let (mine, _) = open(&pool, &party(workspace_id), t).await;
    write(&pool, &mine, "contact", "w-2", t).await;
    write(&pool, &mine, "user", "", t + Duration::seconds(1)).await;
    let (snoozed, _) = open(&pool, &party(workspace_id), t).await;
    let mut conn = pool.acquire().await.unwrap();
    let locked = store::lock_conversation(&mut conn, workspace_id, mine.id)
        .await
        .unwrap();
    ism_conversations::assign(&mut conn, &locked, Some(me), Some(team), "test")
        .await
        .unwrap();
    lifecycle::snooze(
        &mut conn,
        workspace_id,
        snoozed.id,
        t + Duration::hours(1),
        t,
    )
    .await
    .unwrap();
    drop(conn);
    let (elsewhere, _) = open(&pool, &party(Uuid::now_v7()), t).await;

    let ids = |rows: Vec<Conversation>| rows.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let view = |filter: Filter| {
        let pool = pool.clone();
        async move {
            let rows = inbox::page(&pool, workspace_id, &filter, None, 50)
                .await
                .unwrap();
            let total = inbox::count(&pool, workspace_id, &filter).await.unwrap();
            assert_eq!(total as usize, rows.len());
            ids(rows)
        }
    };
    let all = view(Filter::open()).await;
    assert_eq!(
        all,
        vec![mine.id, waiting_long.id],
        "open only, most recent first, own workspace only"
    );
    assert!(!all.contains(&elsewhere.id));
    let unassigned = view(Filter {
        assignee: Assignee::Nobody,
        ..Filter::open()
    })
    .await;
    assert_eq!(unassigned, vec![waiting_long.id]);
    let by_me = view(Filter {
        assignee: Assignee::Users(vec![me]),
        team_ids: vec![team],
        ..Filter::open()
    })
    .await;
    assert_eq!(by_me, vec![mine.id]);
    let waiting = view(Filter {
        unread: true,
        last_message_from: Some(Author::Contact),
        waiting_since_before: Some(t - Duration::hours(1)),
        ..Filter::open()
    })
    .await;
    assert_eq!(waiting, vec![waiting_long.id]);
    let snoozed_view = view(Filter {
        statuses: vec![Status::Snoozed],
        channel_ids: vec![snoozed.channel_id],
        ..Filter::open()
    })
    .await;
    assert_eq!(snoozed_view, vec![snoozed.id]);

    let first = inbox::page(&pool, workspace_id, &Filter::open(), None, 1)
        .await
        .unwrap();
    let key = (first[0].last_message_at, first[0].id);
    let second = inbox::page(&pool, workspace_id, &Filter::open(), Some(key), 1)
        .await
        .unwrap();
    assert_eq!(ids(second), vec![waiting_long.id], "keyset pages continue");
}

#[tokio::test]
async fn a_merged_contacts_conversations_move_to_the_survivor_and_one_stays_active_per_channel() {
    let pool = fresh().await;
    let workspace_id = Uuid::now_v7();
    let at = now();
    let source_here = party(workspace_id);
    let source_elsewhere = Party {
        channel_id: Uuid::now_v7(),
        ..source_here
    };
    let target_here = Party {
        contact_id: Uuid::now_v7(),
        ..source_here
    };
    let other_workspace = Party {
        workspace_id: Uuid::now_v7(),
        ..source_here
    };
    let (clashing, _) = open(&pool, &source_here, at).await;
    let (alone, _) = open(&pool, &source_elsewhere, at).await;
    let (surviving, _) = open(&pool, &target_here, at).await;
    let (untouched, _) = open(&pool, &other_workspace, at).await;

    let mut conn = pool.acquire().await.unwrap();
    let moved = merges::move_conversations(
        &mut conn,
        workspace_id,
        source_here.contact_id,
        target_here.contact_id,
        at,
    )
    .await
    .unwrap();
    drop(conn);

    assert_eq!(moved, 2);
    let clashing = get(&pool, &clashing).await;
    assert_eq!(clashing.contact_id, target_here.contact_id);
    assert_eq!(clashing.status, Status::Closed);
    let alone = get(&pool, &alone).await;
    assert_eq!(
        (alone.contact_id, alone.status.as_str()),
        (target_here.contact_id, "open")
    );
    assert_eq!(alone.opened_by_id, target_here.contact_id.to_string());
    assert_eq!(get(&pool, &surviving).await.status, Status::Open);
    let untouched = get(&pool, &untouched).await;
    assert_eq!(
        untouched.contact_id, source_here.contact_id,
        "another workspace"
    );
    // The survivor's next message on the shared channel joins its own conversation.
    let (next, found) = open(&pool, &target_here, at).await;
    assert_eq!((next.id, found), (surviving.id, Found::Open));
}

/// The plan guard (ADR 21) over conversations' hot statements: the inbound batch, and
/// a reply's lock, store and status update, on never-analysed tables holding a thousand
/// conversations and messages.
#[tokio::test]
async fn hot_statements_probe_by_key_on_tables_never_analysed() {
    const GROWING: &[&str] = &[
        "conversations",
        "messages",
        "conversation_timers",
        "platform_outbox",
    ];
    let pool = fresh().await;
    ism_platform::plans::never_analysed(&pool, GROWING)
        .await
        .unwrap();
    let workspace_id = Uuid::now_v7();
    let t = now();
    let mut parties = Vec::new();
    for n in 0..1000 {
        let party = party(workspace_id);
        let (conversation, _) = open(&pool, &party, t).await;
        write(&pool, &conversation, "contact", &format!("m-{n}"), t).await;
        parties.push((party, conversation));
    }

    let guarded = ism_platform::plans::guarded_pool(&pool).await.unwrap();
    let mut conn = guarded.acquire().await.unwrap();
    let (known, replied) = (&parties[7], &parties[9]);
    let new = party(workspace_id);
    let messages = [
        (&known.0, received("m-7"), t),
        (&known.0, received("k-1"), t + Duration::seconds(1)),
        (&new, received("n-1"), t + Duration::seconds(2)),
    ];
    let arrivals: Vec<Arrival<'_>> = messages
        .iter()
        .map(|(party, received, sent_at)| Arrival {
            party: Party { ..**party },
            received,
            sent_at: *sent_at,
        })
        .collect();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    assert_eq!(store_arrivals(&mut tx, &arrivals).await.unwrap().len(), 2);
    tx.commit().await.unwrap();

    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let conversation = store::lock_conversation(&mut tx, workspace_id, replied.1.id)
        .await
        .unwrap();
    assert!(
        store::message_by_client_id(&mut tx, workspace_id, "reply-1")
            .await
            .unwrap()
            .is_none()
    );
    let reply = NewMessage {
        workspace_id,
        conversation_id: conversation.id,
        channel_id: conversation.channel_id,
        direction: Direction::Outbound,
        content: vec![],
        status: Delivery::Pending,
        external_message_id: "",
        client_message_id: Some("reply-1"),
        sent_at: t,
        sender: Author::User,
        sender_id: "u1",
        mentions: &[],
    };
    let message = store::insert_message(&mut tx, &reply)
        .await
        .unwrap()
        .unwrap();
    store::record_message(&mut tx, conversation.id, Author::User, t, t)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store::advance_status(
        &mut conn,
        workspace_id,
        message.id,
        Delivery::Sent,
        "",
        "p-1",
    )
    .await
    .unwrap();
    drop(conn);

    ism_platform::plans::assert_probes_by_key(&guarded, GROWING, 6).await;
    guarded.close().await;
}
