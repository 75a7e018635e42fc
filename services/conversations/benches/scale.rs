//! Conversations at scale: one Workspace with 100,000 conversations and 5,000,000
//! messages on a scratch database. Prints each figure beside its aim and beside plain
//! Postgres doing the same query shape in the same run.
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ism_conversations::inbound::Arrival;
use ism_conversations::inbox::{self, Assignee, Filter};
use ism_conversations::store::{self, Party};
use ism_conversations::{Candidate, Rules, Strategy, decide};
use ism_platform::config::ServiceName;
use ism_platform::db;
use ism_proto::events::v1::{MessageReceived, Sender};
use sqlx::PgPool;
use uuid::Uuid;

const CONVERSATIONS: i64 = 100_000;
const MESSAGES: i64 = 5_000_000;
const USERS: usize = 50;
const SAMPLES: usize = 300;
const WORKERS: usize = 16;

fn p99(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    let index = (samples.len() * 99 / 100).min(samples.len() - 1);
    samples[index].as_secs_f64() * 1000.0
}

fn line(what: &str, ours: f64, aim: &str, plain: f64, unit: &str) {
    println!(
        "{what:<52} {ours:>10.2} {unit:<6} (aim {aim:<10}) plain Postgres {plain:>10.2} {unit}"
    );
}

/// One Workspace's dataset, generated inside Postgres.
async fn seed(
    pool: &PgPool,
    workspace_id: Uuid,
    users: &[Uuid],
    teams: &[Uuid],
) -> anyhow::Result<()> {
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO conversations (id, workspace_id, contact_id, channel_id, contact_external_id, status,
                                    opened_by, opened_by_id, created_at, last_message_at, assignee_user_id,
                                    assignee_team_id, last_message_from, waiting_since, snoozed_until, closed_at)
         SELECT gen_random_uuid(), $1, gen_random_uuid(), ('00000000-0000-0000-0000-00000000000' || (i % 10))::uuid,
                'c' || i, s.status, 'contact', '', now() - make_interval(mins => (i % 43200)::int) - interval '1 hour',
                now() - make_interval(mins => (i % 43200)::int),
                CASE WHEN i % 5 = 0 THEN NULL ELSE ($2::uuid[])[1 + i % array_length($2, 1)] END,
                ($3::uuid[])[1 + i % array_length($3, 1)],
                CASE WHEN i % 2 = 0 THEN 'contact' ELSE 'user' END,
                CASE WHEN i % 2 = 0 THEN now() - make_interval(mins => (i % 43200)::int) END,
                CASE WHEN s.status = 'snoozed' THEN now() + interval '1 day' END,
                CASE WHEN s.status = 'closed' THEN now() END
         FROM generate_series(1, $4) AS i,
              LATERAL (SELECT CASE WHEN i % 10 < 7 THEN 'open' WHEN i % 10 = 7 THEN 'snoozed' ELSE 'closed' END AS status) s",
    )
    .bind(workspace_id)
    .bind(users)
    .bind(teams)
    .bind(CONVERSATIONS)
    .execute(pool)
    .await?;
    let per = MESSAGES / CONVERSATIONS;
    sqlx::query(
        "INSERT INTO messages (id, workspace_id, conversation_id, channel_id, direction, content, status,
                               external_message_id, sent_at, sender)
         SELECT gen_random_uuid(), c.workspace_id, c.id, c.channel_id,
                CASE WHEN n % 2 = 0 THEN 'inbound' ELSE 'outbound' END, '\\x0a070a0568656c6c6f'::bytea,
                CASE WHEN n % 2 = 0 THEN 'received' ELSE 'read' END,
                CASE WHEN n % 2 = 0 THEN c.id::text || '-' || n ELSE '' END,
                c.last_message_at - make_interval(mins => n::int),
                CASE WHEN n % 2 = 0 THEN 'contact' ELSE 'user' END
         FROM conversations c, generate_series(1, $2) AS n WHERE c.workspace_id = $1",
    )
    .bind(workspace_id)
    .bind(per)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE conversations").execute(pool).await?;
    sqlx::query("ANALYZE messages").execute(pool).await?;
    sqlx::query("VACUUM (ANALYZE) conversations")
        .execute(pool)
        .await?;
    println!(
        "seeded {CONVERSATIONS} conversations and {MESSAGES} messages in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn inbox_views(
    pool: &PgPool,
    workspace_id: Uuid,
    users: &[Uuid],
    teams: &[Uuid],
) -> anyhow::Result<()> {
    let views = [
        ("all open", Filter::open(), "status = 'open'".to_owned()),
        (
            "unassigned",
            Filter {
                assignee: Assignee::Nobody,
                ..Filter::open()
            },
            "status = 'open' AND assignee_user_id IS NULL".to_owned(),
        ),
        (
            "mine",
            Filter {
                assignee: Assignee::Users(vec![users[0]]),
                ..Filter::open()
            },
            format!("status = 'open' AND assignee_user_id = '{}'", users[0]),
        ),
        (
            "team, waiting > 60 min",
            Filter {
                team_ids: vec![teams[0]],
                unread: true,
                waiting_since_before: Some(Utc::now() - chrono::TimeDelta::minutes(60)),
                ..Filter::open()
            },
            format!(
                "status = 'open' AND assignee_team_id = '{}' AND waiting_since IS NOT NULL AND waiting_since < now() - interval '60 minutes'",
                teams[0]
            ),
        ),
    ];
    for (name, filter, plain_where) in views {
        let mut ours = Vec::with_capacity(SAMPLES);
        let mut plain = Vec::with_capacity(SAMPLES);
        let plain_sql = format!(
            "SELECT id FROM conversations WHERE workspace_id = $1 AND {plain_where} ORDER BY last_message_at DESC, id DESC LIMIT 51"
        );
        let plain_count =
            format!("SELECT count(*) FROM conversations WHERE workspace_id = $1 AND {plain_where}");
        for _ in 0..SAMPLES {
            let started = Instant::now();
            // As ListInboxConversations does: the page and the count at once.
            let (page, total) = tokio::try_join!(
                inbox::page(pool, workspace_id, &filter, None, 51),
                inbox::count(pool, workspace_id, &filter),
            )?;
            ours.push(started.elapsed());
            assert!(page.len() as i64 <= total);
            let started = Instant::now();
            let _: (Vec<(Uuid,)>, i64) = tokio::try_join!(
                sqlx::query_as(sqlx::AssertSqlSafe(plain_sql.clone()))
                    .bind(workspace_id)
                    .fetch_all(pool),
                sqlx::query_scalar(sqlx::AssertSqlSafe(plain_count.clone()))
                    .bind(workspace_id)
                    .fetch_one(pool),
            )?;
            plain.push(started.elapsed());
        }
        line(
            &format!("inbox view first page + count, p99 [{name}]"),
            p99(ours),
            "< 50 ms",
            p99(plain),
            "ms",
        );
    }
    Ok(())
}

async fn latest_messages(pool: &PgPool, workspace_id: Uuid) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE workspace_id = $1 ORDER BY random() LIMIT $2",
    )
    .bind(workspace_id)
    .bind(SAMPLES as i64)
    .fetch_all(pool)
    .await?;
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for &id in &ids {
        let started = Instant::now();
        let page = store::list_messages(pool, workspace_id, id, None, 51).await?;
        ours.push(started.elapsed());
        assert_eq!(page.len() as i64, MESSAGES / CONVERSATIONS);
        let started = Instant::now();
        let _: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM messages WHERE conversation_id = $1 ORDER BY sent_at DESC, id DESC LIMIT 51",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        plain.push(started.elapsed());
    }
    line(
        "latest 50 messages of a conversation, p99",
        p99(ours),
        "< 10 ms",
        p99(plain),
        "ms",
    );
    Ok(())
}

/// Runs `work(i)` for i in 0..n on WORKERS tasks; the rate per second.
async fn rate<F, Fut>(n: usize, work: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let work = work.clone();
        tasks.spawn(async move {
            let mut i = worker;
            while i < n {
                work(i).await?;
                i += WORKERS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Messages a lane's batch stores in one transaction: the inbound consumer's largest
/// batch, which a lane has waiting under load (`amqp.prefetch` 512 over 4 lanes).
const BATCH: usize = 32;

async fn inserts(pool: &PgPool, workspace_id: Uuid) -> anyhow::Result<()> {
    const N: usize = 20_000;
    let contacts: Vec<Uuid> = (0..2_000).map(|_| Uuid::now_v7()).collect();
    let channel_id = Uuid::now_v7();
    let run = Uuid::now_v7();
    // Stores messages `first..first + count` in one transaction, as a batch of the
    // inbound consumer does.
    let store = move |pool: PgPool, contacts: Arc<Vec<Uuid>>, first: usize, count: usize| async move {
        let now = Utc::now();
        let externals: Vec<String> = (first..first + count)
            .map(|i| format!("{run}-{i}"))
            .collect();
        let received: Vec<MessageReceived> = externals
            .iter()
            .map(|external| MessageReceived {
                channel_id: channel_id.to_string(),
                external_message_id: external.clone(),
                sender: Some(Sender {
                    external_id: external.clone(),
                    display_name: String::new(),
                }),
                ..Default::default()
            })
            .collect();
        let arrivals: Vec<Arrival<'_>> = (first..first + count)
            .zip(&received)
            .map(|(i, received)| Arrival {
                party: Party {
                    workspace_id,
                    contact_id: contacts[i % contacts.len()],
                    channel_id,
                    channel_type: 1,
                    contact_external_id: &received.external_message_id,
                },
                received,
                sent_at: now,
            })
            .collect();
        let mut tx = pool.begin().await?;
        ism_conversations::inbound::store_arrivals(&mut tx, &arrivals).await?;
        tx.commit().await?;
        anyhow::Ok(())
    };
    let contacts = Arc::new(contacts);
    let single = {
        let (pool, contacts) = (pool.clone(), contacts.clone());
        rate(N, move |i| store(pool.clone(), contacts.clone(), i, 1)).await?
    };
    let batched = {
        let (pool, contacts) = (pool.clone(), contacts.clone());
        rate(N / BATCH, move |i| {
            store(pool.clone(), contacts.clone(), N + i * BATCH, BATCH)
        })
        .await?
            * BATCH as f64
    };
    let (target, target_channel): (Uuid, Uuid) =
        sqlx::query_as("SELECT id, channel_id FROM conversations WHERE workspace_id = $1 LIMIT 1")
            .bind(workspace_id)
            .fetch_one(pool)
            .await?;
    // The same rows inserted plainly, `count` per transaction.
    let plain_store = move |pool: PgPool, first: usize, count: usize| async move {
        let mut tx = pool.begin().await?;
        for i in first..first + count {
            sqlx::query(
                "INSERT INTO messages (id, workspace_id, conversation_id, channel_id, direction, content, status,
                                       external_message_id, sent_at)
                 VALUES ($1, $2, $3, $4, 'inbound', '\\x00'::bytea, 'received', $5, now())",
            )
            .bind(Uuid::now_v7())
            .bind(workspace_id)
            .bind(target)
            .bind(target_channel)
            .bind(format!("plain-{run}-{i}"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        anyhow::Ok(())
    };
    let plain_single = {
        let pool = pool.clone();
        rate(N, move |i| plain_store(pool.clone(), i, 1)).await?
    };
    let plain_batched = {
        let pool = pool.clone();
        rate(N / BATCH, move |i| {
            plain_store(pool.clone(), N + i * BATCH, BATCH)
        })
        .await?
            * BATCH as f64
    };
    line(
        "inbound message stored, one per transaction, /s",
        single,
        ">= 3000/s",
        plain_single,
        "/s",
    );
    line(
        &format!("inbound message stored, {BATCH} per transaction (a batch), /s"),
        batched,
        ">= 3000/s",
        plain_batched,
        "/s",
    );
    Ok(())
}

async fn assign_next(pool: &PgPool, workspace_id: Uuid) -> anyhow::Result<()> {
    const N: usize = 10_000;
    const CAP: i32 = 150;
    let team = Some(Uuid::now_v7());
    let candidates: Vec<Candidate> = (0..USERS)
        .map(|_| Candidate {
            user_id: Uuid::now_v7(),
            online: true,
        })
        .collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE workspace_id = $1 AND status = 'open' LIMIT $2",
    )
    .bind(workspace_id)
    .bind(N as i64 * 2)
    .fetch_all(pool)
    .await?;
    let (decisions, updates) = ids.split_at(N);
    let rules = Rules {
        strategy: Strategy::LeastOpen,
        team_id: team,
        online_only: true,
        cap: CAP,
    };
    let ours = {
        let (pool, candidates, decisions) = (pool.clone(), candidates.clone(), decisions.to_vec());
        rate(N, move |i| {
            let (pool, candidates, id) = (pool.clone(), candidates.clone(), decisions[i]);
            async move {
                let mut tx = pool.begin().await?;
                let current = store::lock_conversation(&mut tx, workspace_id, id).await?;
                decide(&mut tx, &current, &rules, &candidates, "bench").await?;
                tx.commit().await?;
                Ok(())
            }
        })
        .await?
    };
    let over: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT assignee_user_id FROM conversations
          WHERE workspace_id = $1 AND status <> 'closed' AND assignee_user_id = ANY($2)
          GROUP BY 1 HAVING count(*) > $3) o",
    )
    .bind(workspace_id)
    .bind(candidates.iter().map(|c| c.user_id).collect::<Vec<_>>())
    .bind(i64::from(CAP))
    .fetch_one(pool)
    .await?;
    let assigned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversations WHERE workspace_id = $1 AND assignee_user_id = ANY($2)",
    )
    .bind(workspace_id)
    .bind(candidates.iter().map(|c| c.user_id).collect::<Vec<_>>())
    .fetch_one(pool)
    .await?;
    let plain = {
        let (pool, updates, user) = (pool.clone(), updates.to_vec(), candidates[0].user_id);
        rate(N, move |i| {
            let (pool, id) = (pool.clone(), updates[i]);
            async move {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT id FROM conversations WHERE id = $1 FOR UPDATE")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE conversations SET assignee_user_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        })
        .await?
    };
    line(
        "AssignNext decisions (50 Users, cap 150), /s",
        ours,
        ">= 1000/s",
        plain,
        "/s",
    );
    println!(
        "  {assigned} of {N} assigned (50 x cap 150 = 7500 slots); Users over the cap: {over}"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = db::scratch(ServiceName::Conversations, &ism_conversations::MIGRATOR).await?;
    let workspace_id = Uuid::now_v7();
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::now_v7()).collect();
    let teams: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();

    async {
        seed(&pool, workspace_id, &users, &teams).await?;
        println!("{:<52} {:>17} {:<16} baseline", "figure", "ours", "");
        inbox_views(&pool, workspace_id, &users, &teams).await?;
        latest_messages(&pool, workspace_id).await?;
        inserts(&pool, workspace_id).await?;
        assign_next(&pool, workspace_id).await
    }
    .await
}
