//! The GatewayService gRPC API: authorizes and decodes each call, and hands channel
//! management to [`Channels`].
use std::sync::Arc;

use ism_platform::auth::{Caller, Role};
use ism_platform::config::Settings;
use ism_platform::convert::uuid;
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_proto::gateway::v1 as pb;
use ism_proto::gateway::v1::gateway_service_server::GatewayService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::channel_cache::ChannelCache;
use crate::credentials::Cipher;
use crate::error::Error;
use crate::providers::Kind;
use crate::store;

use crate::channels::Channels;

pub struct Api {
    pub channels: Channels,
}

#[tonic::async_trait]
impl GatewayService for Api {
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let request = request.get_ref();
        let connect = legacy_request(request)?;
        let (channel, webhook_secret) = self
            .channels
            .connect(caller.workspace_id()?, &connect)
            .await?;
        Ok(Response::new(pb::CreateChannelResponse {
            channel: Some(channel),
            webhook_secret,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn connect_channel(
        &self,
        request: Request<pb::ConnectChannelRequest>,
    ) -> Result<Response<pb::ConnectChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let (channel, webhook_secret) = self
            .channels
            .connect(caller.workspace_id()?, request.get_ref())
            .await?;
        Ok(Response::new(pb::ConnectChannelResponse {
            channel: Some(channel),
            webhook_secret,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let channel = store::channel(&self.channels.pool, caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::GetChannelResponse {
            channel: Some(self.channels.to_pb(channel)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size)?;
        let after = paging::decode_token(&request.page_token)?;
        let rows = store::list_channels(
            &self.channels.pool,
            caller.workspace_id()?,
            after,
            limit + 1,
        )
        .await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |c| c.id);
        Ok(Response::new(pb::ListChannelsResponse {
            channels: rows.into_iter().map(|c| self.channels.to_pb(c)).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_channel(
        &self,
        request: Request<pb::UpdateChannelRequest>,
    ) -> Result<Response<pb::UpdateChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let channel = self
            .channels
            .update(caller.workspace_id()?, request.get_ref())
            .await?;
        Ok(Response::new(pb::UpdateChannelResponse {
            channel: Some(channel),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_channel(
        &self,
        request: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        self.channels.delete(caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::DeleteChannelResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn test_channel(
        &self,
        request: Request<pb::TestChannelRequest>,
    ) -> Result<Response<pb::TestChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        Ok(Response::new(
            self.channels.test(caller.workspace_id()?, id).await?,
        ))
    }
}

/// CreateChannel is ConnectChannel for custom channels, which need no credentials.
fn legacy_request(request: &pb::CreateChannelRequest) -> Result<pb::ConnectChannelRequest, Error> {
    if request.r#type != Kind::Custom.channel_type() as i32 {
        return Err(FieldError::new(
            "type",
            "CreateChannel connects custom channels; use ConnectChannel with credentials for the others",
        )
        .into());
    }
    Ok(pb::ConnectChannelRequest {
        r#type: request.r#type,
        name: request.name.clone(),
        outbound_url: request.outbound_url.clone(),
        ..Default::default()
    })
}

/// Connects a custom channel in `workspace_id`; returns it with its webhook secret. For
/// operator bootstrap (`ism admin`): the credentials key comes from the same
/// configuration the gateway reads.
pub async fn create_channel(
    pool: &PgPool,
    workspace_id: Uuid,
    request: &pb::CreateChannelRequest,
) -> Result<(pb::Channel, String), Error> {
    let config: crate::config::GatewaySettings = Settings::load()?.section()?;
    let channels = Channels {
        pool: pool.clone(),
        cipher: Arc::new(Cipher::from_settings(&config)?),
        http: reqwest::Client::new(),
        public_url: config.public_url.trim_end_matches('/').to_owned(),
        // No webhooks are served by this process: nothing to forget.
        webhook_channels: ChannelCache::new(std::time::Duration::ZERO),
    };
    channels
        .connect(workspace_id, &legacy_request(request)?)
        .await
}
