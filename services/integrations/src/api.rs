//! The IntegrationService gRPC API: checks the caller and the request, calls one use case.
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{from_timestamp, timestamp, uuid};
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_proto::integrations::v1 as pb;
use ism_proto::integrations::v1::integration_service_server::IntegrationService;
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::bots::Bots;
use crate::catalog::EVENT_TYPES;
use crate::endpoints::Endpoints;
use crate::log::Log;
use crate::wire;

pub struct Api {
    pub endpoints: Endpoints,
    pub log: Log,
    pub bots: Bots,
}

/// The caller's Workspace once its role allows `role`: agents read, owners and managers
/// manage.
fn workspace<T>(request: &Request<T>, role: Role) -> Result<Uuid, Status> {
    let caller = Caller::of(request)?;
    caller.require(role)?;
    caller.workspace_id()
}

#[tonic::async_trait]
impl IntegrationService for Api {
    async fn list_webhook_event_types(
        &self,
        request: Request<pb::ListWebhookEventTypesRequest>,
    ) -> Result<Response<pb::ListWebhookEventTypesResponse>, Status> {
        workspace(&request, Role::Agent)?;
        Ok(Response::new(pb::ListWebhookEventTypesResponse {
            event_types: EVENT_TYPES.iter().map(wire::event_type).collect(),
        }))
    }

    async fn create_webhook_endpoint(
        &self,
        request: Request<pb::CreateWebhookEndpointRequest>,
    ) -> Result<Response<pb::CreateWebhookEndpointResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let definition = request.into_inner().definition;
        let (endpoint, secret) = self.endpoints.create(workspace_id, definition).await?;
        Ok(Response::new(pb::CreateWebhookEndpointResponse {
            endpoint: Some(wire::endpoint(endpoint)),
            secret: secret.expose_secret().to_owned(),
        }))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<Response<pb::GetWebhookEndpointResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("endpoint_id", &request.get_ref().endpoint_id)?;
        let endpoint = self.endpoints.read(workspace_id, id).await?;
        Ok(Response::new(pb::GetWebhookEndpointResponse {
            endpoint: Some(wire::endpoint(endpoint)),
        }))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<pb::ListWebhookEndpointsRequest>,
    ) -> Result<Response<pb::ListWebhookEndpointsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let endpoints = self.endpoints.list(workspace_id).await?;
        Ok(Response::new(pb::ListWebhookEndpointsResponse {
            endpoints: endpoints.into_iter().map(wire::endpoint).collect(),
        }))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::UpdateWebhookEndpointResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let request = request.into_inner();
        let id = uuid("endpoint_id", &request.endpoint_id)?;
        let endpoint = self
            .endpoints
            .update(workspace_id, id, request.definition)
            .await?;
        Ok(Response::new(pb::UpdateWebhookEndpointResponse {
            endpoint: Some(wire::endpoint(endpoint)),
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> Result<Response<pb::DeleteWebhookEndpointResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("endpoint_id", &request.get_ref().endpoint_id)?;
        self.endpoints.delete(workspace_id, id).await?;
        Ok(Response::new(pb::DeleteWebhookEndpointResponse {}))
    }

    async fn set_webhook_endpoint_enabled(
        &self,
        request: Request<pb::SetWebhookEndpointEnabledRequest>,
    ) -> Result<Response<pb::SetWebhookEndpointEnabledResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("endpoint_id", &request.get_ref().endpoint_id)?;
        let enabled = request.get_ref().enabled;
        let endpoint = self
            .endpoints
            .set_enabled(workspace_id, id, enabled)
            .await?;
        Ok(Response::new(pb::SetWebhookEndpointEnabledResponse {
            endpoint: Some(wire::endpoint(endpoint)),
        }))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("endpoint_id", &request.get_ref().endpoint_id)?;
        let overlap = request.get_ref().overlap_seconds;
        let (secret, until) = self.endpoints.rotate(workspace_id, id, overlap).await?;
        Ok(Response::new(pb::RotateWebhookSecretResponse {
            secret: secret.expose_secret().to_owned(),
            previous_secret_expire_time: Some(timestamp(until)),
        }))
    }

    async fn test_webhook_endpoint(
        &self,
        request: Request<pb::TestWebhookEndpointRequest>,
    ) -> Result<Response<pb::TestWebhookEndpointResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("endpoint_id", &request.get_ref().endpoint_id)?;
        let attempt = self.endpoints.test(workspace_id, id).await?;
        Ok(Response::new(pb::TestWebhookEndpointResponse {
            attempt: Some(wire::attempt(attempt)),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let request = request.into_inner();
        let endpoint_id = uuid("endpoint_id", &request.endpoint_id)?;
        let state = match request.state {
            0 => None,
            value => Some(
                wire::delivery_state_of(value)
                    .ok_or_else(|| FieldError::new("state", "unknown value"))?,
            ),
        };
        let page_size = paging::page_size(request.page_size)?;
        let after: Option<Uuid> = paging::decode_token(&request.page_token)?;
        let event_type = (!request.event_type.is_empty()).then_some(request.event_type.as_str());
        let (deliveries, next_page_token) = self
            .log
            .deliveries(
                workspace_id,
                endpoint_id,
                state,
                event_type,
                page_size,
                after,
            )
            .await?;
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: deliveries.into_iter().map(wire::delivery).collect(),
            next_page_token,
        }))
    }

    async fn list_webhook_attempts(
        &self,
        request: Request<pb::ListWebhookAttemptsRequest>,
    ) -> Result<Response<pb::ListWebhookAttemptsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("delivery_id", &request.get_ref().delivery_id)?;
        let attempts = self.log.attempts(workspace_id, id).await?;
        Ok(Response::new(pb::ListWebhookAttemptsResponse {
            attempts: attempts.into_iter().map(wire::attempt).collect(),
        }))
    }

    async fn resend_webhook_delivery(
        &self,
        request: Request<pb::ResendWebhookDeliveryRequest>,
    ) -> Result<Response<pb::ResendWebhookDeliveryResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("delivery_id", &request.get_ref().delivery_id)?;
        let delivery = self.log.resend(workspace_id, id).await?;
        Ok(Response::new(pb::ResendWebhookDeliveryResponse {
            delivery: Some(wire::delivery(delivery)),
        }))
    }

    async fn recover_webhook_endpoint(
        &self,
        request: Request<pb::RecoverWebhookEndpointRequest>,
    ) -> Result<Response<pb::RecoverWebhookEndpointResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let request = request.into_inner();
        let id = uuid("endpoint_id", &request.endpoint_id)?;
        let since = match &request.since {
            None => None,
            Some(ts) => Some(
                from_timestamp(ts)
                    .ok_or_else(|| FieldError::new("since", "is not a valid time"))?,
            ),
        };
        let recovered = self.log.recover(workspace_id, id, since).await?;
        Ok(Response::new(pb::RecoverWebhookEndpointResponse {
            recovered: recovered as i64,
        }))
    }

    async fn create_bot(
        &self,
        request: Request<pb::CreateBotRequest>,
    ) -> Result<Response<pb::CreateBotResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let bot = self
            .bots
            .create(workspace_id, request.into_inner().definition)
            .await?;
        Ok(Response::new(pb::CreateBotResponse {
            bot: Some(wire::bot(bot)),
        }))
    }

    async fn get_bot(
        &self,
        request: Request<pb::GetBotRequest>,
    ) -> Result<Response<pb::GetBotResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("bot_id", &request.get_ref().bot_id)?;
        let bot = self.bots.read(workspace_id, id).await?;
        Ok(Response::new(pb::GetBotResponse {
            bot: Some(wire::bot(bot)),
        }))
    }

    async fn list_bots(
        &self,
        request: Request<pb::ListBotsRequest>,
    ) -> Result<Response<pb::ListBotsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let bots = self.bots.list(workspace_id).await?;
        Ok(Response::new(pb::ListBotsResponse {
            bots: bots.into_iter().map(wire::bot).collect(),
        }))
    }

    async fn update_bot(
        &self,
        request: Request<pb::UpdateBotRequest>,
    ) -> Result<Response<pb::UpdateBotResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let request = request.into_inner();
        let id = uuid("bot_id", &request.bot_id)?;
        let bot = self
            .bots
            .update(workspace_id, id, request.definition)
            .await?;
        Ok(Response::new(pb::UpdateBotResponse {
            bot: Some(wire::bot(bot)),
        }))
    }

    async fn delete_bot(
        &self,
        request: Request<pb::DeleteBotRequest>,
    ) -> Result<Response<pb::DeleteBotResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("bot_id", &request.get_ref().bot_id)?;
        self.bots.delete(workspace_id, id).await?;
        Ok(Response::new(pb::DeleteBotResponse {}))
    }

    async fn set_bot_enabled(
        &self,
        request: Request<pb::SetBotEnabledRequest>,
    ) -> Result<Response<pb::SetBotEnabledResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("bot_id", &request.get_ref().bot_id)?;
        let bot = self
            .bots
            .set_enabled(workspace_id, id, request.get_ref().enabled)
            .await?;
        Ok(Response::new(pb::SetBotEnabledResponse {
            bot: Some(wire::bot(bot)),
        }))
    }

    async fn test_bot(
        &self,
        request: Request<pb::TestBotRequest>,
    ) -> Result<Response<pb::TestBotResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let request = request.into_inner();
        let id = uuid("bot_id", &request.bot_id)?;
        let answer = self.bots.test(workspace_id, id, request.text).await?;
        Ok(Response::new(wire::answer(answer)))
    }
}
