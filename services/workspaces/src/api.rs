//! The WorkspaceService gRPC API.
use std::sync::Arc;

use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{timestamp, uuid};
use ism_platform::paging;
use ism_proto::workspaces::v1 as pb;
use ism_proto::workspaces::v1::workspace_service_server::WorkspaceService;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::keys::Signer;
use crate::store;

/// RPCs callable without a token.
pub const PUBLIC_RPCS: &[&str] = &[
    "/ism.workspaces.v1.WorkspaceService/ExchangeApiKey",
    "/ism.workspaces.v1.WorkspaceService/IssueServiceToken",
    "/ism.workspaces.v1.WorkspaceService/GetPublicKeys",
];

pub struct Api {
    pub pool: PgPool,
    pub signer: Arc<Signer>,
    pub service_secret: SecretString,
}

fn role_from_pb(role: i32) -> Result<Role, Error> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Owner) => Ok(Role::Owner),
        Ok(pb::Role::Manager) => Ok(Role::Manager),
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        _ => Err(
            paging::FieldError::new("role", "must be ROLE_OWNER, ROLE_MANAGER or ROLE_AGENT")
                .into(),
        ),
    }
}

fn role_to_pb(role: &str) -> pb::Role {
    match role {
        "owner" => pb::Role::Owner,
        "manager" => pb::Role::Manager,
        "agent" => pb::Role::Agent,
        _ => pb::Role::Unspecified,
    }
}

fn api_key_to_pb(key: store::ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id.to_string(),
        name: key.name,
        role: role_to_pb(&key.role) as i32,
        prefix: key.prefix,
        created_at: Some(timestamp(key.created_at)),
        revoked_at: key.revoked_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl WorkspaceService for Api {
    #[tracing::instrument(skip_all, err)]
    async fn exchange_api_key(
        &self,
        request: Request<pb::ExchangeApiKeyRequest>,
    ) -> Result<Response<pb::ExchangeApiKeyResponse>, Status> {
        let key = store::authenticate_api_key(&self.pool, request.get_ref().api_key.trim()).await?;
        let role = key
            .role
            .parse::<Role>()
            .map_err(|e| Error::Unexpected(anyhow::anyhow!(e)))?;
        let (access_token, exp) = self
            .signer
            .mint(format!("api_key:{}", key.id), role, Some(key.workspace_id))
            .map_err(Error::Unexpected)?;
        Ok(Response::new(pb::ExchangeApiKeyResponse {
            access_token,
            expires_at: Some(prost_types::Timestamp {
                seconds: exp,
                nanos: 0,
            }),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let request = request.into_inner();
        let service: ism_platform::config::ServiceName = request
            .service
            .parse()
            .map_err(|e: String| Error::Invalid(paging::FieldError::new("service", e)))?;
        let expected = self.service_secret.expose_secret().as_bytes();
        if !bool::from(request.secret.as_bytes().ct_eq(expected)) {
            return Err(Error::Unauthenticated("service secret not recognised").into());
        }
        let (access_token, exp) = self
            .signer
            .mint(format!("service:{service}"), Role::Service, None)
            .map_err(Error::Unexpected)?;
        Ok(Response::new(pb::IssueServiceTokenResponse {
            access_token,
            expires_at: Some(prost_types::Timestamp {
                seconds: exp,
                nanos: 0,
            }),
        }))
    }

    async fn get_public_keys(
        &self,
        _: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        let (kid, x) = self.signer.public();
        Ok(Response::new(pb::GetPublicKeysResponse {
            keys: vec![pb::PublicKey {
                kid: kid.to_owned(),
                algorithm: "EdDSA".to_owned(),
                x: x.to_owned(),
            }],
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::GetWorkspaceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let ws = store::workspace(&self.pool, caller.workspace_id()?).await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            workspace: Some(pb::Workspace {
                id: ws.id.to_string(),
                organization_id: ws.organization_id.to_string(),
                name: ws.name,
                timezone: ws.timezone,
                created_at: Some(timestamp(ws.created_at)),
            }),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Owner)?;
        let request = request.into_inner();
        let role = role_from_pb(request.role)?;
        let (key, secret) =
            store::create_api_key(&self.pool, caller.workspace_id()?, &request.name, role).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key_to_pb(key)),
            secret,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Owner)?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size).map_err(Error::from)?;
        let after = paging::decode_token(&request.page_token).map_err(Error::from)?;
        let rows =
            store::list_api_keys(&self.pool, caller.workspace_id()?, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |k| k.id);
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: rows.into_iter().map(api_key_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Owner)?;
        let id = uuid("id", &request.get_ref().id).map_err(Error::from)?;
        let key = store::revoke_api_key(&self.pool, caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(api_key_to_pb(key)),
        }))
    }
}
