//! The WorkflowService gRPC API: checks the caller and the request, calls one use case.
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::uuid;
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_proto::workflows::v1 as pb;
use ism_proto::workflows::v1::workflow_service_server::WorkflowService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::runs::Runs;
use crate::wire;
use crate::workflows::Workflows;

pub struct Api {
    pub workflows: Workflows,
    pub runs: Runs,
}

/// The caller's Workspace once its role allows `role`: agents read, owners and managers
/// define and run.
fn workspace<T>(request: &Request<T>, role: Role) -> Result<Uuid, Status> {
    let caller = Caller::of(request)?;
    caller.require(role)?;
    caller.workspace_id()
}

/// Whether the caller may see webhook secrets: those who define workflows.
fn sees_secrets<T>(request: &Request<T>) -> Result<bool, Status> {
    Ok(Caller::of(request)?.require(Role::Manager).is_ok())
}

#[tonic::async_trait]
impl WorkflowService for Api {
    async fn create_workflow(
        &self,
        request: Request<pb::CreateWorkflowRequest>,
    ) -> Result<Response<pb::CreateWorkflowResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let workflow = self
            .workflows
            .create(workspace_id, request.into_inner().definition)
            .await?;
        Ok(Response::new(pb::CreateWorkflowResponse {
            workflow: Some(wire::workflow(workflow, workspace_id, true)),
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let secrets = sees_secrets(&request)?;
        let id = uuid("workflow_id", &request.get_ref().workflow_id)?;
        let workflow = self.workflows.read(workspace_id, id).await?;
        Ok(Response::new(pb::GetWorkflowResponse {
            workflow: Some(wire::workflow(workflow, workspace_id, secrets)),
        }))
    }

    async fn list_workflows(
        &self,
        request: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let secrets = sees_secrets(&request)?;
        let workflows = self.workflows.list(workspace_id).await?;
        Ok(Response::new(pb::ListWorkflowsResponse {
            workflows: workflows
                .into_iter()
                .map(|w| wire::workflow(w, workspace_id, secrets))
                .collect(),
        }))
    }

    async fn update_workflow(
        &self,
        request: Request<pb::UpdateWorkflowRequest>,
    ) -> Result<Response<pb::UpdateWorkflowResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let request = request.into_inner();
        let id = uuid("workflow_id", &request.workflow_id)?;
        let workflow = self
            .workflows
            .update(workspace_id, id, request.definition)
            .await?;
        Ok(Response::new(pb::UpdateWorkflowResponse {
            workflow: Some(wire::workflow(workflow, workspace_id, true)),
        }))
    }

    async fn publish_workflow(
        &self,
        request: Request<pb::PublishWorkflowRequest>,
    ) -> Result<Response<pb::PublishWorkflowResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("workflow_id", &request.get_ref().workflow_id)?;
        let workflow = self.workflows.publish(workspace_id, id).await?;
        Ok(Response::new(pb::PublishWorkflowResponse {
            workflow: Some(wire::workflow(workflow, workspace_id, true)),
        }))
    }

    async fn set_workflow_enabled(
        &self,
        request: Request<pb::SetWorkflowEnabledRequest>,
    ) -> Result<Response<pb::SetWorkflowEnabledResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("workflow_id", &request.get_ref().workflow_id)?;
        let workflow = self
            .workflows
            .set_enabled(workspace_id, id, request.get_ref().enabled)
            .await?;
        Ok(Response::new(pb::SetWorkflowEnabledResponse {
            workflow: Some(wire::workflow(workflow, workspace_id, true)),
        }))
    }

    async fn delete_workflow(
        &self,
        request: Request<pb::DeleteWorkflowRequest>,
    ) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("workflow_id", &request.get_ref().workflow_id)?;
        self.workflows.delete(workspace_id, id).await?;
        Ok(Response::new(pb::DeleteWorkflowResponse {}))
    }

    async fn start_run(
        &self,
        request: Request<pb::StartRunRequest>,
    ) -> Result<Response<pb::StartRunResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let workflow_id = uuid("workflow_id", &request.get_ref().workflow_id)?;
        let conversation_id = uuid("conversation_id", &request.get_ref().conversation_id)?;
        let run = self
            .runs
            .start(workspace_id, workflow_id, conversation_id)
            .await?;
        Ok(Response::new(pb::StartRunResponse {
            run: run.map(|r| wire::run(r, Vec::new())),
        }))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let request = request.into_inner();
        let optional = |field: &'static str, value: &str| -> Result<Option<Uuid>, FieldError> {
            if value.is_empty() {
                Ok(None)
            } else {
                uuid(field, value).map(Some)
            }
        };
        let workflow_id = optional("workflow_id", &request.workflow_id)?;
        let contact_id = optional("contact_id", &request.contact_id)?;
        if workflow_id.is_none() && contact_id.is_none() {
            return Err(FieldError::new(
                "workflow_id",
                "a workflow_id or a contact_id is required",
            )
            .into());
        }
        let state = match request.state {
            0 => None,
            value => Some(
                wire::run_state_of(value)
                    .ok_or_else(|| FieldError::new("state", "unknown value"))?,
            ),
        };
        let page_size = paging::page_size(request.page_size)?;
        let after: Option<Uuid> = paging::decode_token(&request.page_token)?;
        let (runs, next_page_token) = self
            .runs
            .list(
                workspace_id,
                workflow_id,
                contact_id,
                state,
                page_size,
                after,
            )
            .await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.into_iter().map(|r| wire::run(r, Vec::new())).collect(),
            next_page_token,
        }))
    }

    async fn get_run(
        &self,
        request: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("run_id", &request.get_ref().run_id)?;
        let (run, steps) = self.runs.read(workspace_id, id).await?;
        Ok(Response::new(pb::GetRunResponse {
            run: Some(wire::run(run, steps)),
        }))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("run_id", &request.get_ref().run_id)?;
        let (run, steps) = self.runs.cancel(workspace_id, id).await?;
        Ok(Response::new(pb::CancelRunResponse {
            run: Some(wire::run(run, steps)),
        }))
    }

    async fn retry_run(
        &self,
        request: Request<pb::RetryRunRequest>,
    ) -> Result<Response<pb::RetryRunResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("run_id", &request.get_ref().run_id)?;
        let (run, steps) = self.runs.retry(workspace_id, id).await?;
        Ok(Response::new(pb::RetryRunResponse {
            run: Some(wire::run(run, steps)),
        }))
    }

    async fn receive_webhook(
        &self,
        request: Request<pb::ReceiveWebhookRequest>,
    ) -> Result<Response<pb::ReceiveWebhookResponse>, Status> {
        // The signature authorises the webhook; the gateway passes it on for any sender.
        let workspace_id = workspace(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = uuid("workflow_id", &request.workflow_id)?;
        let (run_id, skipped) = self.runs.receive(workspace_id, id, &request).await?;
        Ok(Response::new(pb::ReceiveWebhookResponse {
            run_id: run_id.map(|r| r.to_string()).unwrap_or_default(),
            skipped,
        }))
    }
}
