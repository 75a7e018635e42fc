//! The GatewayService gRPC API: channel management.
use aws_lc_rs::rand::SecureRandom;
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{timestamp, uuid};
use ism_platform::paging::{self, FieldError};
use ism_proto::gateway::v1 as pb;
use ism_proto::gateway::v1::gateway_service_server::GatewayService;
use ism_proto::types::v1::ChannelType;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::Error;
use crate::store::{self, Channel};

pub struct Api {
    pub pool: PgPool,
}

fn channel_to_pb(channel: Channel) -> pb::Channel {
    pb::Channel {
        webhook_path: format!("/webhooks/{}/{}", channel.kind, channel.id),
        id: channel.id.to_string(),
        workspace_id: channel.workspace_id.to_string(),
        r#type: match channel.kind.as_str() {
            "custom" => ChannelType::Custom as i32,
            _ => ChannelType::Unspecified as i32,
        },
        name: channel.name,
        outbound_url: channel.outbound_url,
        created_at: Some(timestamp(channel.created_at)),
    }
}

fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(hex::encode(bytes))
}

fn validate_create(request: &pb::CreateChannelRequest) -> Result<(String, String), FieldError> {
    if request.r#type != ChannelType::Custom as i32 {
        return Err(FieldError::new(
            "type",
            "only CHANNEL_TYPE_CUSTOM can be connected in this version",
        ));
    }
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(FieldError::new("name", "must be 1 to 100 characters"));
    }
    let url = reqwest::Url::parse(request.outbound_url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| FieldError::new("outbound_url", "must be an absolute http(s) URL"))?;
    Ok((name.to_owned(), url.to_string()))
}

#[tonic::async_trait]
impl GatewayService for Api {
    #[tracing::instrument(skip_all, err)]
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let (channel, webhook_secret) =
            create_channel(&self.pool, caller.workspace_id()?, request.get_ref()).await?;
        Ok(Response::new(pb::CreateChannelResponse {
            channel: Some(channel),
            webhook_secret,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = uuid("id", &request.get_ref().id).map_err(Error::from)?;
        let channel = store::channel(&self.pool, caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::GetChannelResponse {
            channel: Some(channel_to_pb(channel)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size).map_err(Error::from)?;
        let after = paging::decode_token(&request.page_token).map_err(Error::from)?;
        let rows =
            store::list_channels(&self.pool, caller.workspace_id()?, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |c| c.id);
        Ok(Response::new(pb::ListChannelsResponse {
            channels: rows.into_iter().map(channel_to_pb).collect(),
            next_page_token,
        }))
    }
}

/// Connects a channel in `workspace_id`; returns it with its webhook secret. Also used
/// by operator bootstrap (`ism admin`).
pub async fn create_channel(
    pool: &PgPool,
    workspace_id: Uuid,
    request: &pb::CreateChannelRequest,
) -> Result<(pb::Channel, String), Error> {
    let (name, outbound_url) = validate_create(request)?;
    let webhook_secret = new_secret()?;
    let channel = Channel {
        id: Uuid::now_v7(),
        workspace_id,
        kind: "custom".to_owned(),
        name,
        outbound_url,
        webhook_secret: webhook_secret.clone(),
        created_at: chrono::Utc::now(),
    };
    let channel = store::create_channel(pool, &channel).await?;
    Ok((channel_to_pb(channel), webhook_secret))
}
