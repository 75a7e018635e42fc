//! The BroadcastService gRPC API: checks the caller and the request, calls one use case.
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{from_timestamp, uuid};
use ism_platform::error::{FieldError, Violations};
use ism_platform::paging;
use ism_proto::broadcasts::v1 as pb;
use ism_proto::broadcasts::v1::broadcast_service_server::BroadcastService;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::lifecycle::Broadcasts;
use crate::reads;
use crate::states::{RecipientStatus, State};
use crate::wire;

pub struct Api {
    pub broadcasts: Broadcasts,
}

/// The caller's Workspace once its role allows `role`: agents read, owners and
/// managers define and run.
fn workspace<T>(request: &Request<T>, role: Role) -> Result<Uuid, Status> {
    let caller = Caller::of(request)?;
    caller.require(role)?;
    caller.workspace_id()
}

/// The stored values of repeated API enums, or the first unknown one under `field`.
fn each<T>(
    field: &'static str,
    values: &[i32],
    of: impl Fn(i32) -> Option<T>,
) -> Result<Vec<T>, FieldError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            of(*v).ok_or_else(|| FieldError::new(format!("{field}[{i}]"), "unknown value"))
        })
        .collect()
}

impl Api {
    async fn one(&self, broadcast: crate::store::Broadcast) -> Result<pb::Broadcast, Status> {
        let mut all = reads::with_stats(&self.broadcasts.pool, vec![broadcast]).await?;
        all.pop()
            .ok_or_else(|| Status::internal("a broadcast went missing while it was read"))
    }
}

/// A server stream of `T`.
type Feed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl BroadcastService for Api {
    type ExportRecipientsStream = Feed<pb::ExportRecipientsResponse>;

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_broadcast(
        &self,
        request: Request<pb::CreateBroadcastRequest>,
    ) -> Result<Response<pb::CreateBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let definition = request.into_inner().definition;
        let broadcast = self.broadcasts.create(workspace_id, definition).await?;
        Ok(Response::new(pb::CreateBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    async fn get_broadcast(
        &self,
        request: Request<pb::GetBroadcastRequest>,
    ) -> Result<Response<pb::GetBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("id", &request.get_ref().id)?;
        let broadcast = self.broadcasts.read(workspace_id, id).await?;
        Ok(Response::new(pb::GetBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    async fn list_broadcasts(
        &self,
        request: Request<pb::ListBroadcastsRequest>,
    ) -> Result<Response<pb::ListBroadcastsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let mut violations = Violations::new();
        let limit = violations.check(paging::page_size(r.page_size));
        let states: Option<Vec<State>> =
            violations.check(each("states", &r.states, wire::state_of));
        violations.finish()?;
        let label = (!r.label.is_empty()).then_some(r.label.as_str());
        let (broadcasts, next_page_token) = reads::page(
            &self.broadcasts.pool,
            workspace_id,
            &states.unwrap_or_default(),
            label,
            limit.unwrap_or_default(),
            &r.page_token,
        )
        .await?;
        Ok(Response::new(pb::ListBroadcastsResponse {
            broadcasts,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_broadcast(
        &self,
        request: Request<pb::UpdateBroadcastRequest>,
    ) -> Result<Response<pb::UpdateBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let broadcast = self
            .broadcasts
            .update(workspace_id, id, r.definition)
            .await?;
        Ok(Response::new(pb::UpdateBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_broadcast(
        &self,
        request: Request<pb::DeleteBroadcastRequest>,
    ) -> Result<Response<pb::DeleteBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        self.broadcasts.delete(workspace_id, id).await?;
        Ok(Response::new(pb::DeleteBroadcastResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn schedule_broadcast(
        &self,
        request: Request<pb::ScheduleBroadcastRequest>,
    ) -> Result<Response<pb::ScheduleBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let r = request.into_inner();
        let mut violations = Violations::new();
        let id = violations.check(uuid("id", &r.id));
        let send_at = violations.check(
            r.send_at
                .as_ref()
                .and_then(from_timestamp)
                .ok_or_else(|| FieldError::new("send_at", "is required: a valid instant")),
        );
        let missed = violations.check(
            wire::missed_of(r.missed_schedule)
                .ok_or_else(|| FieldError::new("missed_schedule", "unknown value")),
        );
        violations.finish()?;
        let (Some(id), Some(send_at), Some(missed)) = (id, send_at, missed) else {
            return Err(Status::internal("a checked request lacks a part"));
        };
        let broadcast = self
            .broadcasts
            .schedule(workspace_id, id, send_at, missed)
            .await?;
        Ok(Response::new(pb::ScheduleBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn start_broadcast(
        &self,
        request: Request<pb::StartBroadcastRequest>,
    ) -> Result<Response<pb::StartBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let broadcast = self.broadcasts.start(workspace_id, id).await?;
        Ok(Response::new(pb::StartBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn pause_broadcast(
        &self,
        request: Request<pb::PauseBroadcastRequest>,
    ) -> Result<Response<pb::PauseBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let broadcast = self.broadcasts.pause(workspace_id, id).await?;
        Ok(Response::new(pb::PauseBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn resume_broadcast(
        &self,
        request: Request<pb::ResumeBroadcastRequest>,
    ) -> Result<Response<pb::ResumeBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let broadcast = self.broadcasts.resume(workspace_id, id).await?;
        Ok(Response::new(pb::ResumeBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn cancel_broadcast(
        &self,
        request: Request<pb::CancelBroadcastRequest>,
    ) -> Result<Response<pb::CancelBroadcastResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let broadcast = self.broadcasts.cancel(workspace_id, id).await?;
        Ok(Response::new(pb::CancelBroadcastResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }

    async fn list_recipients(
        &self,
        request: Request<pb::ListRecipientsRequest>,
    ) -> Result<Response<pb::ListRecipientsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let mut violations = Violations::new();
        let id = violations.check(uuid("broadcast_id", &r.broadcast_id));
        let limit = violations.check(paging::page_size(r.page_size));
        let statuses: Option<Vec<RecipientStatus>> =
            violations.check(each("statuses", &r.statuses, wire::recipient_status_of));
        violations.finish()?;
        let (Some(id), Some(limit), Some(statuses)) = (id, limit, statuses) else {
            return Err(Status::internal("a checked request lacks a part"));
        };
        // Another Workspace's broadcast is not found, before any recipient is read.
        self.broadcasts.read(workspace_id, id).await?;
        let (recipients, next_page_token) =
            reads::recipients(&self.broadcasts.pool, id, &statuses, limit, &r.page_token).await?;
        Ok(Response::new(pb::ListRecipientsResponse {
            recipients,
            next_page_token,
        }))
    }

    async fn export_recipients(
        &self,
        request: Request<pb::ExportRecipientsRequest>,
    ) -> Result<Response<Self::ExportRecipientsStream>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let mut violations = Violations::new();
        let id = violations.check(uuid("broadcast_id", &r.broadcast_id));
        let statuses: Option<Vec<RecipientStatus>> =
            violations.check(each("statuses", &r.statuses, wire::recipient_status_of));
        violations.finish()?;
        let (Some(id), Some(statuses)) = (id, statuses) else {
            return Err(Status::internal("a checked request lacks a part"));
        };
        self.broadcasts.read(workspace_id, id).await?;
        let chunks = reads::export(self.broadcasts.pool.clone(), id, statuses).map(|chunk| {
            chunk
                .map(|data| pb::ExportRecipientsResponse { data })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn resend_to_failed(
        &self,
        request: Request<pb::ResendToFailedRequest>,
    ) -> Result<Response<pb::ResendToFailedResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let r = request.into_inner();
        let id = uuid("broadcast_id", &r.broadcast_id)?;
        let broadcast = self
            .broadcasts
            .resend_to_failed(workspace_id, id, &r.name)
            .await?;
        Ok(Response::new(pb::ResendToFailedResponse {
            broadcast: Some(self.one(broadcast).await?),
        }))
    }
}
