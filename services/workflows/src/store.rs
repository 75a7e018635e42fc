//! SQL of the workflows service's tables, each statement once.
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use ism_proto::workflows::v1 as pb;
use prost::Message;

use crate::error::Error;
use crate::states::{RunState, TriggerKind};

/// A stored workflow; definitions are protobuf encodings.
#[derive(Debug, Clone, FromRow)]
pub struct Workflow {
    pub id: Uuid,
    pub draft: Vec<u8>,
    pub published_version: i32,
    pub published: Option<Vec<u8>>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Signs the webhooks an incoming-webhook trigger takes (`whsec_`).
    pub webhook_secret: String,
}

const WORKFLOW: &str = "SELECT w.id, w.draft, w.published_version, v.definition AS published,
        w.enabled, w.created_at, w.updated_at, w.webhook_secret
    FROM workflows w
    LEFT JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.published_version";

/// The Workspace's workflows, counted under a lock held until the transaction ends so
/// that two creations cannot both pass the limit.
pub async fn count_workflows(conn: &mut PgConnection, workspace_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(workspace_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT count(*) FROM workflows WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(conn)
        .await
}

pub async fn insert_workflow(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    draft: &[u8],
    webhook_secret: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO workflows (id, workspace_id, draft, webhook_secret) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(workspace_id)
    .bind(draft)
    .bind(webhook_secret)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn workflow(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Workflow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{WORKFLOW} WHERE w.workspace_id = $1 AND w.id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn workflows(conn: &mut PgConnection, workspace_id: Uuid) -> sqlx::Result<Vec<Workflow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{WORKFLOW} WHERE w.workspace_id = $1 ORDER BY w.id"
    )))
    .bind(workspace_id)
    .fetch_all(conn)
    .await
}

pub async fn update_draft(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    draft: &[u8],
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE workflows SET draft = $3, updated_at = now() WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(draft)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Publishes `definition` as the workflow's next version, enabled; `asks` when it has an
/// ask step.
pub async fn publish(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    definition: &[u8],
    trigger: TriggerKind,
    asks: bool,
) -> sqlx::Result<bool> {
    let version: Option<i32> = sqlx::query_scalar(
        "UPDATE workflows SET published_version = published_version + 1, trigger_kind = $3,
             asks = $4, enabled = true, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING published_version",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(trigger)
    .bind(asks)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(version) = version else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO workflow_versions (workflow_id, version, definition) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(version)
    .bind(definition)
    .execute(conn)
    .await?;
    Ok(true)
}

pub async fn set_enabled(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    enabled: bool,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE workflows SET enabled = $3 AND published_version > 0, updated_at = now()
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(enabled)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Deletes a workflow and cancels its active runs; the runs cancelled.
pub async fn delete_workflow(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Vec<Run>, Error> {
    let cancelled = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE runs SET state = $3, error = 'its workflow was deleted', updated_at = now()
         WHERE workspace_id = $1 AND workflow_id = $2 AND state IN ('running', 'waiting')
         RETURNING {RUN_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(RunState::Cancelled)
    .fetch_all(&mut *conn)
    .await?;
    ism_platform::db::delete_in_workspace(conn, "workflows", workspace_id, id, "workflow").await?;
    Ok(cancelled)
}

impl Workflow {
    /// The published version it starts runs of, decoded; `None` while it is not published
    /// and enabled.
    pub fn startable(self) -> Result<Option<(Published, pb::WorkflowDefinition)>, Error> {
        let (Some(bytes), true) = (self.published, self.enabled) else {
            return Ok(None);
        };
        let definition = pb::WorkflowDefinition::decode(bytes.as_slice())
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("stored workflow version: {e}")))?;
        let published = Published {
            id: self.id,
            version: self.published_version,
            definition: bytes,
        };
        Ok(Some((published, definition)))
    }
}

/// A schedule due to fire, and the Contact id its firing reached.
#[derive(Debug, FromRow)]
pub struct Due {
    pub workflow_id: Uuid,
    pub workspace_id: Uuid,
    pub due_at: DateTime<Utc>,
    pub after_id: String,
}

/// The schedule due longest, locked (others' locked ones are passed over).
pub async fn due_schedule(conn: &mut PgConnection) -> sqlx::Result<Option<Due>> {
    sqlx::query_as(
        "SELECT workflow_id, workspace_id, due_at, after_id FROM schedules
         WHERE due_at <= now() ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(conn)
    .await
}

/// Sets when a workflow's schedule fires next, from the first Contact.
pub async fn arm_schedule(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    workflow_id: Uuid,
    due_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO schedules (workflow_id, workspace_id, due_at) VALUES ($1, $2, $3)
         ON CONFLICT (workflow_id) DO UPDATE SET due_at = EXCLUDED.due_at, after_id = ''",
    )
    .bind(workflow_id)
    .bind(workspace_id)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The firing under way reached the Contact `after_id`.
pub async fn schedule_reached(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    after_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE schedules SET after_id = $2 WHERE workflow_id = $1")
        .bind(workflow_id)
        .bind(after_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The workflow fires on no schedule.
pub async fn disarm_schedule(conn: &mut PgConnection, workflow_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM schedules WHERE workflow_id = $1")
        .bind(workflow_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives a workflow created before webhook secrets existed its first one.
pub async fn first_secret(conn: &mut PgConnection, id: Uuid, secret: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE workflows SET webhook_secret = $2 WHERE id = $1 AND webhook_secret = ''")
        .bind(id)
        .bind(secret)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a webhook id already started: its run, or why none. `None` the first time, when
/// the id is taken (held until the transaction ends, so a concurrent delivery of the
/// same webhook waits for this one, then finds its answer).
pub async fn take_webhook(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    webhook_id: &str,
) -> sqlx::Result<Option<(Option<Uuid>, String)>> {
    let taken = sqlx::query(
        "INSERT INTO webhook_receipts (workflow_id, webhook_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(workflow_id)
    .bind(webhook_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if taken == 1 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT run_id, skipped FROM webhook_receipts WHERE workflow_id = $1 AND webhook_id = $2",
    )
    .bind(workflow_id)
    .bind(webhook_id)
    .fetch_optional(conn)
    .await
}

/// Records what a webhook id taken by [`take_webhook`] started.
pub async fn answer_webhook(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    webhook_id: &str,
    run_id: Option<Uuid>,
    skipped: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_receipts SET run_id = $3, skipped = $4
         WHERE workflow_id = $1 AND webhook_id = $2",
    )
    .bind(workflow_id)
    .bind(webhook_id)
    .bind(run_id)
    .bind(skipped)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets webhook ids received before `before`: a signature that old is refused anyway.
pub async fn purge_webhooks(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM webhook_receipts WHERE received_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Every published version in force in the Workspace: each workflow's latest.
pub async fn published_all(
    conn: &mut PgConnection,
    workspace_id: Uuid,
) -> sqlx::Result<Vec<Published>> {
    sqlx::query_as(
        "SELECT w.id, w.published_version AS version, v.definition
         FROM workflows w
         JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.published_version
         WHERE w.workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch_all(conn)
    .await
}

/// An enabled workflow's published version, for the trigger consumer.
#[derive(Debug, Clone, FromRow)]
pub struct Published {
    pub id: Uuid,
    pub version: i32,
    pub definition: Vec<u8>,
}

pub async fn triggered(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    kind: TriggerKind,
) -> sqlx::Result<Vec<Published>> {
    sqlx::query_as(
        "SELECT w.id, w.published_version AS version, v.definition
         FROM workflows w
         JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.published_version
         WHERE w.workspace_id = $1 AND w.enabled AND w.trigger_kind = $2",
    )
    .bind(workspace_id)
    .bind(kind)
    .fetch_all(conn)
    .await
}

/// Whether any workflow of any Workspace is enabled with a trigger of `kind` (its queue
/// is bound only then).
pub async fn any_triggered(conn: &mut PgConnection, kind: TriggerKind) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workflows WHERE enabled AND trigger_kind = $1)",
    )
    .bind(kind)
    .fetch_one(conn)
    .await
}

pub async fn published(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    version: i32,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
    )
    .bind(workflow_id)
    .bind(version)
    .fetch_optional(conn)
    .await
}

/// A stored run.
#[derive(Debug, Clone, FromRow)]
pub struct Run {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workflow_id: Uuid,
    pub version: i32,
    pub contact_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub trigger_text: String,
    pub state: RunState,
    pub current_step: String,
    pub step_count: i32,
    pub jumps: sqlx::types::Json<std::collections::HashMap<String, u32>>,
    pub wake_at: DateTime<Utc>,
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Values ask steps saved, by name.
    pub variables: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    /// The ask step whose answer the run waits for; empty when it waits for none.
    pub awaiting: String,
    /// When the awaited answer is too late, or an assignment stops trying.
    pub deadline: Option<DateTime<Utc>>,
    /// The Contact's message not yet taken by the awaited step.
    pub answer: Option<String>,
    pub invalid_answers: i32,
}

impl Run {
    /// Forgets the question the run awaited: it has moved on.
    pub fn stop_awaiting(&mut self) {
        self.awaiting.clear();
        self.deadline = None;
        self.answer = None;
        self.invalid_answers = 0;
    }
}

const RUN_COLUMNS: &str = "id, workspace_id, workflow_id, version, contact_id, conversation_id, \
     channel_id, trigger_text, state, current_step, step_count, jumps, wake_at, error, created_at, \
     updated_at, variables, awaiting, deadline, answer, invalid_answers";

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub workspace_id: Uuid,
    pub workflow_id: Uuid,
    pub version: i32,
    pub contact_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub trigger_text: String,
    pub first_step: String,
    pub variables: std::collections::BTreeMap<String, String>,
}

/// Whether the Contact has an active run of the workflow, and whether any run at all.
pub async fn runs_of(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<(bool, bool)> {
    sqlx::query_as(
        "SELECT coalesce(bool_or(state IN ('running', 'waiting')), false), count(*) > 0
         FROM runs WHERE workflow_id = $1 AND contact_id = $2",
    )
    .bind(workflow_id)
    .bind(contact_id)
    .fetch_one(conn)
    .await
}

/// Cancels the Contact's active run of the workflow; the runs cancelled.
pub async fn cancel_active(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<Vec<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE runs SET state = 'cancelled', error = 'restarted by a new trigger', updated_at = now()
         WHERE workflow_id = $1 AND contact_id = $2 AND state IN ('running', 'waiting')
         RETURNING {RUN_COLUMNS}"
    )))
    .bind(workflow_id)
    .bind(contact_id)
    .fetch_all(conn)
    .await
}

/// Hands a Contact's message to the active runs of its conversation: a run awaiting an
/// answer is woken to take it; any other keeps it until it asks (an ask clears it). A run
/// taking a step holds its row, so a message arriving while its question is being asked
/// waits here and lands after the run has started to await it. Whether some run awaited it.
pub async fn hand_answer(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    text: &str,
) -> sqlx::Result<bool> {
    let awaited: Vec<bool> = sqlx::query_scalar(
        "UPDATE runs SET answer = $2,
             state = CASE WHEN awaiting <> '' THEN 'running' ELSE state END,
             wake_at = CASE WHEN awaiting <> '' THEN now() ELSE wake_at END,
             updated_at = now()
         WHERE conversation_id = $1 AND state IN ('running', 'waiting')
         RETURNING awaiting <> ''",
    )
    .bind(conversation_id)
    .bind(text)
    .fetch_all(conn)
    .await?;
    Ok(awaited.contains(&true))
}

/// Whether a Contact's messages must reach the triggers queue for answers: an enabled
/// workflow asks, or a run awaits an answer.
pub async fn any_asking(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workflows WHERE enabled AND asks)
             OR EXISTS (SELECT 1 FROM runs WHERE state IN ('running', 'waiting') AND awaiting <> '')",
    )
    .fetch_one(conn)
    .await
}

/// Starts a run; `None` when the Contact already has an active one (a concurrent start).
pub async fn insert_run(conn: &mut PgConnection, run: &NewRun) -> sqlx::Result<Option<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO runs (id, workspace_id, workflow_id, version, contact_id, conversation_id,
             channel_id, trigger_text, state, current_step, variables)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (workflow_id, contact_id) WHERE state IN ('running', 'waiting') DO NOTHING
         RETURNING {RUN_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(run.workspace_id)
    .bind(run.workflow_id)
    .bind(run.version)
    .bind(run.contact_id)
    .bind(run.conversation_id)
    .bind(run.channel_id)
    .bind(&run.trigger_text)
    .bind(RunState::Running)
    .bind(&run.first_step)
    .bind(sqlx::types::Json(&run.variables))
    .fetch_optional(conn)
    .await
}

/// Claims up to `limit` due runs, moving each one's wake time `lease` ahead (its lease).
pub async fn claim_runs(
    pool: &PgPool,
    limit: i64,
    lease: std::time::Duration,
) -> sqlx::Result<Vec<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE runs r SET wake_at = now() + make_interval(secs => $2), state = 'running', updated_at = now()
         FROM (SELECT id FROM runs WHERE state IN ('running', 'waiting') AND wake_at <= now()
               ORDER BY wake_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
         WHERE r.id = due.id
         RETURNING {}",
        RUN_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
    )))
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// The run as it is now, locked for its step.
pub async fn lock_run(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records the start of step `seq` (kept when a crashed attempt recorded it already).
pub async fn begin_step(
    conn: &mut PgConnection,
    run_id: Uuid,
    seq: i32,
    step_id: &str,
    kind: &str,
    input: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO run_steps (run_id, seq, step_id, kind, input, started_at)
         VALUES ($1, $2, $3, $4, $5, clock_timestamp())
         ON CONFLICT (run_id, seq) DO NOTHING",
    )
    .bind(run_id)
    .bind(seq)
    .bind(step_id)
    .bind(kind)
    .bind(sqlx::types::Json(input))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn end_step(
    conn: &mut PgConnection,
    run_id: Uuid,
    seq: i32,
    output: &serde_json::Value,
    error: &str,
) -> sqlx::Result<()> {
    // The wall clock, not the transaction's start: a step's duration is its own.
    sqlx::query(
        "UPDATE run_steps SET output = $3, error = $4, finished_at = clock_timestamp()
         WHERE run_id = $1 AND seq = $2",
    )
    .bind(run_id)
    .bind(seq)
    .bind(sqlx::types::Json(output))
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a run on: its state, step, count of steps, jumps, wake time, error, variables
/// and the answer it awaits.
pub async fn advance(conn: &mut PgConnection, run: &Run) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE runs SET state = $2, current_step = $3, step_count = $4, jumps = $5, wake_at = $6,
             error = $7, variables = $8, awaiting = $9, deadline = $10, answer = $11,
             invalid_answers = $12, conversation_id = $13, updated_at = now()
         WHERE id = $1",
    )
    .bind(run.id)
    .bind(run.state)
    .bind(&run.current_step)
    .bind(run.step_count)
    .bind(&run.jumps)
    .bind(run.wake_at)
    .bind(&run.error)
    .bind(&run.variables)
    .bind(&run.awaiting)
    .bind(run.deadline)
    .bind(&run.answer)
    .bind(run.invalid_answers)
    .bind(run.conversation_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn run(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A page of runs of a workflow or of a Contact, newest first, after `before`.
pub async fn runs(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    workflow_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    state: Option<RunState>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR workflow_id = $2)
           AND ($3::uuid IS NULL OR contact_id = $3) AND ($4::text IS NULL OR state = $4)
           AND ($5::uuid IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6"
    )))
    .bind(workspace_id)
    .bind(workflow_id)
    .bind(contact_id)
    .bind(state)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A step a run took.
#[derive(Debug, Clone, FromRow)]
pub struct RunStep {
    pub step_id: String,
    pub kind: String,
    pub input: sqlx::types::Json<serde_json::Value>,
    pub output: Option<sqlx::types::Json<serde_json::Value>>,
    pub error: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn run_steps(conn: &mut PgConnection, run_id: Uuid) -> sqlx::Result<Vec<RunStep>> {
    sqlx::query_as(
        "SELECT step_id, kind, input, output, error, started_at, finished_at
         FROM run_steps WHERE run_id = $1 ORDER BY seq",
    )
    .bind(run_id)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod plan_guard {
    //! The plan guard for runs (ADR 21): on never-analysed tables holding a thousand runs
    //! and their steps, triggering, claiming and taking steps reach the growing tables
    //! only through keyed probes.
    use super::*;
    use ism_platform::config::ServiceName;
    use ism_platform::{db, plans};

    const GROWING: &[&str] = &["runs", "run_steps", "webhook_receipts"];

    fn new_run(workspace_id: Uuid, workflow_id: Uuid) -> NewRun {
        NewRun {
            workspace_id,
            workflow_id,
            version: 1,
            contact_id: Uuid::now_v7(),
            conversation_id: Uuid::now_v7(),
            channel_id: Uuid::now_v7(),
            trigger_text: "hello".into(),
            first_step: "a".into(),
            variables: [("order".to_owned(), "A-1".to_owned())].into(),
        }
    }

    #[tokio::test]
    async fn run_statements_probe_by_key_on_tables_never_analysed() {
        let pool = db::scratch(ServiceName::Workflows, &crate::MIGRATOR)
            .await
            .unwrap();
        plans::never_analysed(&pool, GROWING).await.unwrap();
        let workspace = Uuid::now_v7();
        let mut conn = pool.acquire().await.unwrap();
        let workflow = insert_workflow(&mut conn, workspace, b"draft", "whsec_x")
            .await
            .unwrap();
        publish(
            &mut conn,
            workspace,
            workflow,
            b"v1",
            TriggerKind::MessageReceived,
            true,
        )
        .await
        .unwrap();
        for _ in 0..1000 {
            let run = insert_run(&mut conn, &new_run(workspace, workflow))
                .await
                .unwrap()
                .unwrap();
            begin_step(&mut conn, run.id, 1, "a", "comment", &serde_json::json!({}))
                .await
                .unwrap();
            let hook = run.id.to_string();
            take_webhook(&mut conn, workflow, &hook).await.unwrap();
            answer_webhook(&mut conn, workflow, &hook, Some(run.id), "")
                .await
                .unwrap();
        }
        drop(conn);

        let guarded = plans::guarded_pool(&pool).await.unwrap();
        let lease = std::time::Duration::from_secs(30);
        for _ in 0..7 {
            let mut tx = guarded.begin().await.unwrap();
            let subject = new_run(workspace, workflow);
            triggered(&mut tx, workspace, TriggerKind::MessageReceived)
                .await
                .unwrap();
            runs_of(&mut tx, workflow, subject.contact_id)
                .await
                .unwrap();
            hand_answer(&mut tx, subject.conversation_id, "yes")
                .await
                .unwrap();
            let run = insert_run(&mut tx, &subject).await.unwrap();
            let hook = subject.contact_id.to_string();
            for _ in 0..2 {
                take_webhook(&mut tx, workflow, &hook).await.unwrap();
            }
            answer_webhook(&mut tx, workflow, &hook, run.map(|r| r.id), "")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            for claimed in claim_runs(&guarded, 8, lease).await.unwrap() {
                let mut tx = guarded.begin().await.unwrap();
                let mut run = lock_run(&mut tx, claimed.id).await.unwrap().unwrap();
                published(&mut tx, run.workflow_id, run.version)
                    .await
                    .unwrap();
                let seq = run.step_count + 1;
                begin_step(&mut tx, run.id, seq, "a", "comment", &serde_json::json!({}))
                    .await
                    .unwrap();
                end_step(&mut tx, run.id, seq, &serde_json::json!({}), "")
                    .await
                    .unwrap();
                run.step_count = seq;
                run.state = RunState::Completed;
                advance(&mut tx, &run).await.unwrap();
                tx.commit().await.unwrap();
            }
        }

        plans::assert_probes_by_key(&guarded, GROWING, 8).await;
        guarded.close().await;
    }
}
