//! The WorkspaceService gRPC API: authorizes the caller, decodes the request, calls one
//! use case and encodes its result.
use std::sync::Arc;

use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{cut, uuid};
use ism_platform::paging;
use ism_proto::workspaces::v1 as pb;
use ism_proto::workspaces::v1::workspace_service_server::WorkspaceService;
use secrecy::SecretString;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::audit::Actor;
use crate::error::Error;
use crate::guard::{Credential, Guard};
use crate::keys::Signer;
use crate::tenancy::{self, Settings};
use crate::users::{self, NewUser, UserChanges};
use crate::{api_keys, store, teams, tokens, wire};

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
    pub guard: Guard,
}

/// What a credential names, cut to a length fit for a rate-limit key.
fn named(value: &str) -> &str {
    cut(value, 64).unwrap_or(value)
}

fn id(field: &'static str, value: &str) -> Result<Uuid, Error> {
    Ok(uuid(field, value)?)
}

fn page(page_size: i32, token: &str) -> Result<(i64, Option<Uuid>), Error> {
    Ok((paging::page_size(page_size)?, paging::decode_token(token)?))
}

/// The caller as an actor, after checking its role allows `required`; and its Workspace.
fn authorize<T>(request: &Request<T>, required: Role) -> Result<(Actor, Uuid), Status> {
    let caller = Caller::of(request)?;
    caller.require(required)?;
    let workspace = caller.workspace_id()?;
    Ok((Actor::caller(&caller), workspace))
}

#[tonic::async_trait]
impl WorkspaceService for Api {
    // A wrong credential is the caller's mistake, logged by the guard as a warning.
    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn exchange_api_key(
        &self,
        request: Request<pb::ExchangeApiKeyRequest>,
    ) -> Result<Response<pb::ExchangeApiKeyResponse>, Status> {
        let source = request.remote_addr().map(|a| a.ip());
        let presented = request.get_ref().api_key.trim();
        let prefix = store::split_api_key(presented).map_or("malformed", |(prefix, _)| prefix);
        let (access_token, exp) = self
            .guard
            .check(
                Credential::ApiKey(named(prefix)),
                source,
                tokens::for_api_key(&self.pool, &self.signer, presented),
            )
            .await?;
        Ok(Response::new(pb::ExchangeApiKeyResponse {
            access_token,
            expires_at: wire::expires(exp),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let source = request.remote_addr().map(|a| a.ip());
        let request = request.into_inner();
        let (access_token, exp) = self
            .guard
            .check(
                Credential::Service(named(&request.service)),
                source,
                async {
                    tokens::for_service(
                        &self.signer,
                        &self.service_secret,
                        &request.service,
                        &request.secret,
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::IssueServiceTokenResponse {
            access_token,
            expires_at: wire::expires(exp),
        }))
    }

    async fn get_public_keys(
        &self,
        request: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        self.guard
            .call("GetPublicKeys", request.remote_addr().map(|a| a.ip()))
            .await?;
        let (kid, x) = self.signer.public();
        Ok(Response::new(pb::GetPublicKeysResponse {
            keys: vec![pb::PublicKey {
                kid: kid.to_owned(),
                algorithm: "EdDSA".to_owned(),
                x: x.to_owned(),
            }],
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::GetWorkspaceResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let workspace = store::workspace(&self.pool, ws).await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            workspace: Some(wire::workspace(workspace)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let role = wire::role(request.role)?;
        let (key, secret) = api_keys::create(&self.pool, &actor, ws, &request.name, role).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(wire::api_key(key)),
            secret,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_api_keys(&self.pool, ws, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |k| k.id);
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: rows.into_iter().map(wire::api_key).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Owner)?;
        let key_id = id("id", &request.get_ref().id)?;
        let key = api_keys::revoke(&self.pool, &actor, ws, key_id).await?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(wire::api_key(key)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let settings = Settings {
            name: request.name.as_deref(),
            timezone: request.timezone.as_deref(),
            default_language: request.default_language.as_deref(),
            business_hours: request.business_hours.map(wire::business_hours),
        };
        let workspace = tenancy::update(&self.pool, &actor, ws, settings).await?;
        Ok(Response::new(pb::UpdateWorkspaceResponse {
            workspace: Some(wire::workspace(workspace)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::CreateWorkspaceResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let (created, owner_api_key) = tenancy::create_sibling(
            &self.pool,
            &actor,
            ws,
            &request.name,
            &request.timezone,
            &request.default_language,
        )
        .await?;
        Ok(Response::new(pb::CreateWorkspaceResponse {
            workspace: Some(wire::workspace(created)),
            owner_api_key,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_sibling_workspaces(&self.pool, ws, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |w| w.id);
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: rows.into_iter().map(wire::workspace).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn archive_workspace(
        &self,
        request: Request<pb::ArchiveWorkspaceRequest>,
    ) -> Result<Response<pb::ArchiveWorkspaceResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Owner)?;
        let target = id("id", &request.get_ref().id)?;
        tenancy::archive(&self.pool, &actor, ws, target).await?;
        Ok(Response::new(pb::ArchiveWorkspaceResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let organization = store::organization_of(&self.pool, ws).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(wire::organization(organization)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn rename_organization(
        &self,
        request: Request<pb::RenameOrganizationRequest>,
    ) -> Result<Response<pb::RenameOrganizationResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Owner)?;
        let name = &request.get_ref().name;
        let organization = tenancy::rename_organization(&self.pool, &actor, ws, name).await?;
        Ok(Response::new(pb::RenameOrganizationResponse {
            organization: Some(wire::organization(organization)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let new = NewUser {
            email: &request.email,
            display_name: &request.display_name,
            role: wire::role(request.role),
        };
        let user = users::create(&self.pool, &actor, ws, new).await?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(wire::user(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let user = store::user(&self.pool, ws, id("id", &request.get_ref().id)?).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(wire::user(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_users(
            &self.pool,
            ws,
            request.include_deactivated,
            after,
            limit + 1,
        )
        .await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |u| u.id);
        Ok(Response::new(pb::ListUsersResponse {
            users: rows.into_iter().map(wire::user).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let user_id = id("id", &request.id)?;
        let changes = UserChanges {
            display_name: request.display_name.as_deref(),
            role: wire::role_change(request.role),
        };
        let user = users::update(&self.pool, &actor, ws, user_id, changes).await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(wire::user(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn deactivate_user(
        &self,
        request: Request<pb::DeactivateUserRequest>,
    ) -> Result<Response<pb::DeactivateUserResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let user_id = id("id", &request.get_ref().id)?;
        let user = users::deactivate(&self.pool, &actor, ws, user_id).await?;
        Ok(Response::new(pb::DeactivateUserResponse {
            user: Some(wire::user(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn set_user_availability(
        &self,
        request: Request<pb::SetUserAvailabilityRequest>,
    ) -> Result<Response<pb::SetUserAvailabilityResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let user_id = id("user_id", &request.user_id)?;
        let availability = wire::availability(request.availability)?;
        let user = users::set_availability(&self.pool, &actor, ws, user_id, availability).await?;
        Ok(Response::new(pb::SetUserAvailabilityResponse {
            user: Some(wire::user(user)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn issue_user_token(
        &self,
        request: Request<pb::IssueUserTokenRequest>,
    ) -> Result<Response<pb::IssueUserTokenResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let user_id = id("user_id", &request.get_ref().user_id)?;
        let (access_token, exp) =
            tokens::for_user(&self.pool, &self.signer, &actor, ws, user_id).await?;
        Ok(Response::new(pb::IssueUserTokenResponse {
            access_token,
            expires_at: wire::expires(exp),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let team = teams::create(&self.pool, &actor, ws, &request.get_ref().name).await?;
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(wire::team(team)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_teams(&self.pool, ws, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |t| t.id);
        Ok(Response::new(pb::ListTeamsResponse {
            teams: rows.into_iter().map(wire::team).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn rename_team(
        &self,
        request: Request<pb::RenameTeamRequest>,
    ) -> Result<Response<pb::RenameTeamResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let team_id = id("id", &request.id)?;
        let team = teams::rename(&self.pool, &actor, ws, team_id, &request.name).await?;
        Ok(Response::new(pb::RenameTeamResponse {
            team: Some(wire::team(team)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_team(
        &self,
        request: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let team_id = id("id", &request.get_ref().id)?;
        teams::delete(&self.pool, &actor, ws, team_id).await?;
        Ok(Response::new(pb::DeleteTeamResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn add_team_member(
        &self,
        request: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let team_id = id("team_id", &request.get_ref().team_id)?;
        let user_id = id("user_id", &request.get_ref().user_id)?;
        teams::set_member(&self.pool, &actor, ws, team_id, user_id, true).await?;
        Ok(Response::new(pb::AddTeamMemberResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let (actor, ws) = authorize(&request, Role::Manager)?;
        let team_id = id("team_id", &request.get_ref().team_id)?;
        let user_id = id("user_id", &request.get_ref().user_id)?;
        teams::set_member(&self.pool, &actor, ws, team_id, user_id, false).await?;
        Ok(Response::new(pb::RemoveTeamMemberResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_team_members(
        &self,
        request: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let team_id = id("team_id", &request.team_id)?;
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_team_members(&self.pool, ws, team_id, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |u| u.id);
        Ok(Response::new(pb::ListTeamMembersResponse {
            users: rows.into_iter().map(wire::user).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_user_teams(
        &self,
        request: Request<pb::ListUserTeamsRequest>,
    ) -> Result<Response<pb::ListUserTeamsResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let user_id = id("user_id", &request.user_id)?;
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_user_teams(&self.pool, ws, user_id, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |t| t.id);
        Ok(Response::new(pb::ListUserTeamsResponse {
            teams: rows.into_iter().map(wire::team).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let (limit, before) = page(request.page_size, &request.page_token)?;
        let rows = store::list_audit_events(&self.pool, ws, before, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |e| e.id);
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: rows.into_iter().map(wire::audit_event).collect(),
            next_page_token,
        }))
    }
}
