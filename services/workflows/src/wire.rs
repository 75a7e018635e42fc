//! Proto <-> domain conversion.
use ism_platform::convert::timestamp;
use ism_proto::workflows::v1 as pb;
use prost::Message;
use uuid::Uuid;

use crate::states::RunState;
use crate::store::{Run, RunStep, Workflow};

fn decode(bytes: &[u8]) -> pb::WorkflowDefinition {
    pb::WorkflowDefinition::decode(bytes).unwrap_or_default()
}

/// A workflow as the API shows it; its webhook secret only to those who `see_secret`.
pub fn workflow(w: Workflow, workspace_id: Uuid, see_secret: bool) -> pb::Workflow {
    let draft = decode(&w.draft);
    let published = w.published.as_deref().map(decode);
    let takes_webhooks = [Some(&draft), published.as_ref()].into_iter().any(|d| {
        matches!(
            d.and_then(|d| d.trigger.as_ref())
                .and_then(|t| t.kind.as_ref()),
            Some(pb::trigger::Kind::IncomingWebhook(_))
        )
    });
    pb::Workflow {
        id: w.id.to_string(),
        webhook_path: if takes_webhooks {
            format!("/hooks/workflows/{workspace_id}/{}", w.id)
        } else {
            String::new()
        },
        webhook_secret: if takes_webhooks && see_secret {
            w.webhook_secret
        } else {
            String::new()
        },
        draft: Some(draft),
        published_version: w.published_version,
        published,
        enabled: w.enabled,
        create_time: Some(timestamp(w.created_at)),
        update_time: Some(timestamp(w.updated_at)),
    }
}

pub fn run_state(state: RunState) -> pb::RunState {
    match state {
        RunState::Running => pb::RunState::Running,
        RunState::Waiting => pb::RunState::Waiting,
        RunState::Completed => pb::RunState::Completed,
        RunState::Failed => pb::RunState::Failed,
        RunState::Cancelled => pb::RunState::Cancelled,
    }
}

/// The stored state of an API state; `None` for UNSPECIFIED or an unknown value.
pub fn run_state_of(value: i32) -> Option<RunState> {
    match pb::RunState::try_from(value).ok()? {
        pb::RunState::Unspecified => None,
        pb::RunState::Running => Some(RunState::Running),
        pb::RunState::Waiting => Some(RunState::Waiting),
        pb::RunState::Completed => Some(RunState::Completed),
        pb::RunState::Failed => Some(RunState::Failed),
        pb::RunState::Cancelled => Some(RunState::Cancelled),
    }
}

fn run_step(s: RunStep) -> pb::RunStep {
    pb::RunStep {
        step_id: s.step_id,
        kind: s.kind,
        input: s.input.0.to_string(),
        output: s.output.map(|o| o.0.to_string()).unwrap_or_default(),
        error: s.error,
        start_time: Some(timestamp(s.started_at)),
        end_time: s.finished_at.map(timestamp),
    }
}

pub fn run(r: Run, steps: Vec<RunStep>) -> pb::Run {
    pb::Run {
        id: r.id.to_string(),
        workflow_id: r.workflow_id.to_string(),
        version: r.version,
        contact_id: r.contact_id.to_string(),
        conversation_id: r.conversation_id.to_string(),
        state: run_state(r.state).into(),
        current_step: r.current_step,
        wake_time: (r.state == RunState::Waiting).then(|| timestamp(r.wake_at)),
        error: r.error,
        steps: steps.into_iter().map(run_step).collect(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        variables: r.variables.0.into_iter().collect(),
        awaiting_answer: !r.awaiting.is_empty() && r.state == RunState::Waiting,
    }
}
