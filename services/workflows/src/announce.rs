//! A run's start and end as events (`workflows.run.*`, written in the transaction that
//! changes the run) and as `ism_workflow_runs_total`; each step taken as
//! `ism_workflow_steps_total`.
use ism_platform::events::{self, Topic, topics};
use ism_proto::events::v1::WorkflowRunChanged;
use sqlx::PgConnection;

use crate::states::RunState;
use crate::store::Run;
use crate::wire;

/// Every outcome counted, so each series exists from the start.
const OUTCOMES: [&str; 4] = ["started", "completed", "failed", "cancelled"];

/// Starts `ism_workflow_runs_total` at zero for every outcome.
pub fn describe() {
    for outcome in OUTCOMES {
        metrics::counter!("ism_workflow_runs_total", "outcome" => outcome).absolute(0);
    }
}

async fn emit(
    conn: &mut PgConnection,
    topic: &Topic<WorkflowRunChanged>,
    outcome: &'static str,
    run: &Run,
) -> sqlx::Result<()> {
    let payload = WorkflowRunChanged {
        run_id: run.id.to_string(),
        workflow_id: run.workflow_id.to_string(),
        version: run.version,
        contact_id: run.contact_id.to_string(),
        conversation_id: run.conversation_id.to_string(),
        channel_id: run.channel_id.to_string(),
        state: wire::run_state(run.state).into(),
        step_id: run.current_step.clone(),
        error: run.error.clone(),
    };
    events::emit(
        conn,
        topic,
        run.workspace_id,
        &run.contact_id.to_string(),
        &payload,
    )
    .await?;
    metrics::counter!("ism_workflow_runs_total", "outcome" => outcome).increment(1);
    Ok(())
}

/// A step of `kind` was taken (`completed`) or failed its run (`failed`), once committed.
pub fn step_taken(kind: &'static str, outcome: &'static str) {
    metrics::counter!("ism_workflow_steps_total", "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// `run` has just started.
pub async fn started(conn: &mut PgConnection, run: &Run) -> sqlx::Result<()> {
    emit(conn, &topics::WORKFLOW_RUN_STARTED, "started", run).await
}

/// `run` has just moved to its current state: an event if that state ends it.
pub async fn moved(conn: &mut PgConnection, run: &Run) -> sqlx::Result<()> {
    let (topic, outcome) = match run.state {
        RunState::Completed => (&topics::WORKFLOW_RUN_COMPLETED, "completed"),
        RunState::Failed => (&topics::WORKFLOW_RUN_FAILED, "failed"),
        RunState::Cancelled => (&topics::WORKFLOW_RUN_CANCELLED, "cancelled"),
        RunState::Running | RunState::Waiting => return Ok(()),
    };
    emit(conn, topic, outcome, run).await
}
