//! The WorkspaceService gRPC API.
use std::collections::BTreeMap;
use std::sync::Arc;

use ism_platform::auth::{Caller, Role, Subject};
use ism_platform::convert::{timestamp, uuid};
use ism_platform::error::{Checks, FieldError};
use ism_platform::events::{emit, topics};
use ism_platform::paging;
use ism_proto::events::v1::UserAvailabilityChanged;
use ism_proto::workspaces::v1 as pb;
use ism_proto::workspaces::v1::workspace_service_server::WorkspaceService;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgConnection, PgPool};
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{self, Availability, OpeningInterval};
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

fn role_from_pb(role: i32) -> Result<Role, FieldError> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Owner) => Ok(Role::Owner),
        Ok(pb::Role::Manager) => Ok(Role::Manager),
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        _ => Err(FieldError::new(
            "role",
            "must be ROLE_OWNER, ROLE_MANAGER or ROLE_AGENT",
        )),
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

fn stored_role(role: &str) -> Result<Role, Error> {
    role.parse::<Role>()
        .map_err(|e| Error::Unexpected(anyhow::anyhow!(e)))
}

fn availability_from_pb(value: i32) -> Result<Availability, Error> {
    match pb::Availability::try_from(value) {
        Ok(pb::Availability::Online) => Ok(Availability::Online),
        Ok(pb::Availability::Away) => Ok(Availability::Away),
        Ok(pb::Availability::Offline) => Ok(Availability::Offline),
        _ => Err(FieldError::new(
            "availability",
            "must be AVAILABILITY_ONLINE, AVAILABILITY_AWAY or AVAILABILITY_OFFLINE",
        )
        .into()),
    }
}

fn availability_to_pb(stored: &str) -> pb::Availability {
    match Availability::parse(stored) {
        Availability::Online => pb::Availability::Online,
        Availability::Away => pb::Availability::Away,
        Availability::Offline => pb::Availability::Offline,
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

fn workspace_to_pb(ws: store::Workspace) -> pb::Workspace {
    pb::Workspace {
        id: ws.id.to_string(),
        organization_id: ws.organization_id.to_string(),
        name: ws.name,
        timezone: ws.timezone,
        created_at: Some(timestamp(ws.created_at)),
        default_language: ws.default_language,
        business_hours: Some(pb::BusinessHours {
            intervals: ws
                .business_hours
                .0
                .into_iter()
                .map(|i| pb::BusinessHoursInterval {
                    weekday: i.weekday,
                    open: i.open,
                    close: i.close,
                })
                .collect(),
        }),
    }
}

fn organization_to_pb(org: store::Organization) -> pb::Organization {
    pb::Organization {
        id: org.id.to_string(),
        name: org.name,
        created_at: Some(timestamp(org.created_at)),
    }
}

fn user_to_pb(user: store::User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        workspace_id: user.workspace_id.to_string(),
        email: user.email,
        display_name: user.display_name,
        role: role_to_pb(&user.role) as i32,
        availability: availability_to_pb(&user.availability) as i32,
        created_at: Some(timestamp(user.created_at)),
        deactivated_at: user.deactivated_at.map(timestamp),
    }
}

fn team_to_pb(team: store::Team) -> pb::Team {
    pb::Team {
        id: team.id.to_string(),
        name: team.name,
        created_at: Some(timestamp(team.created_at)),
    }
}

fn audit_to_pb(event: store::AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: event.id.to_string(),
        api_key_id: event
            .actor
            .strip_prefix("api_key:")
            .unwrap_or_default()
            .to_owned(),
        actor: event.actor,
        action: event.action,
        target: event.target,
        details: event.details.0.into_iter().collect(),
        occurred_at: Some(timestamp(event.occurred_at)),
    }
}

fn expires(exp: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: exp,
        nanos: 0,
    })
}

fn id(field: &'static str, value: &str) -> Result<Uuid, Error> {
    Ok(uuid(field, value)?)
}

fn page(page_size: i32, token: &str) -> Result<(i64, Option<Uuid>), Error> {
    Ok((paging::page_size(page_size)?, paging::decode_token(token)?))
}

/// The caller, after checking its role allows `required`; and its Workspace.
fn authorize<T>(request: &Request<T>, required: Role) -> Result<(Caller, Uuid), Status> {
    let caller = Caller::of(request)?;
    caller.require(required)?;
    let workspace = caller.workspace_id()?;
    Ok((caller, workspace))
}

/// PERMISSION_DENIED when `caller` would grant or act with more than its own role.
fn not_above(caller: &Caller, role: Role) -> Result<(), Error> {
    if caller.role.allows(role) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "a role may only grant or act with roles up to its own".into(),
        ))
    }
}

fn details<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn audit(
    conn: &mut PgConnection,
    workspace: Uuid,
    caller: &Caller,
    action: &str,
    target: String,
    details: BTreeMap<String, String>,
) -> Result<(), Error> {
    store::audit(conn, workspace, caller.actor(), action, target, details).await
}

fn opening_hours(hours: pb::BusinessHours) -> Result<Vec<OpeningInterval>, Error> {
    Ok(domain::valid_business_hours(
        hours
            .intervals
            .into_iter()
            .map(|i| OpeningInterval {
                weekday: i.weekday,
                open: i.open,
                close: i.close,
            })
            .collect(),
    )?)
}

#[tonic::async_trait]
impl WorkspaceService for Api {
    #[tracing::instrument(skip_all, err)]
    async fn exchange_api_key(
        &self,
        request: Request<pb::ExchangeApiKeyRequest>,
    ) -> Result<Response<pb::ExchangeApiKeyResponse>, Status> {
        let key = store::authenticate_api_key(&self.pool, request.get_ref().api_key.trim()).await?;
        let role = stored_role(&key.role)?;
        let (access_token, exp) = self
            .signer
            .mint(
                Subject::ApiKey(key.id.to_string()).to_string(),
                role,
                Some(key.workspace_id),
            )
            .map_err(Error::Unexpected)?;
        Ok(Response::new(pb::ExchangeApiKeyResponse {
            access_token,
            expires_at: expires(exp),
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
            .map_err(|e: String| Error::invalid("service", e))?;
        let expected = self.service_secret.expose_secret().as_bytes();
        if !bool::from(request.secret.as_bytes().ct_eq(expected)) {
            return Err(Error::Unauthenticated("service secret not recognised".into()).into());
        }
        let (access_token, exp) = self
            .signer
            .mint(
                Subject::Service(service.to_string()).to_string(),
                Role::Service,
                None,
            )
            .map_err(Error::Unexpected)?;
        Ok(Response::new(pb::IssueServiceTokenResponse {
            access_token,
            expires_at: expires(exp),
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
        let (_, ws) = authorize(&request, Role::Agent)?;
        let workspace = store::workspace(&self.pool, ws).await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            workspace: Some(workspace_to_pb(workspace)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let role = role_from_pb(request.role).map_err(Error::from)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let (key, secret) = store::create_api_key(&mut tx, ws, &request.name, role).await?;
        let facts = details([("name", key.name.clone()), ("role", key.role.clone())]);
        audit(
            &mut tx,
            ws,
            &caller,
            "api_key.created",
            format!("api_key:{}", key.id),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
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
        let (_, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let (limit, after) = page(request.page_size, &request.page_token)?;
        let rows = store::list_api_keys(&self.pool, ws, after, limit + 1).await?;
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
        let (caller, ws) = authorize(&request, Role::Owner)?;
        let key_id = id("id", &request.get_ref().id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let key = store::revoke_api_key(&mut tx, ws, key_id).await?;
        let facts = details([("name", key.name.clone())]);
        audit(
            &mut tx,
            ws,
            &caller,
            "api_key.revoked",
            format!("api_key:{key_id}"),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(api_key_to_pb(key)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let changes = store::WorkspaceChanges {
            name: request
                .name
                .map(|n| domain::valid_name("name", &n))
                .transpose()
                .map_err(Error::from)?,
            timezone: request
                .timezone
                .map(|t| domain::valid_timezone(&t))
                .transpose()
                .map_err(Error::from)?,
            default_language: request
                .default_language
                .map(|l| domain::valid_language(&l))
                .transpose()
                .map_err(Error::from)?,
            business_hours: request.business_hours.map(opening_hours).transpose()?,
        };
        let mut facts = BTreeMap::new();
        for (key, value) in [
            ("name", &changes.name),
            ("timezone", &changes.timezone),
            ("default_language", &changes.default_language),
        ] {
            if let Some(value) = value {
                facts.insert(key.to_owned(), value.clone());
            }
        }
        if let Some(hours) = &changes.business_hours {
            facts.insert(
                "business_hours".to_owned(),
                format!("{} intervals", hours.len()),
            );
        }
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let workspace = store::update_workspace(&mut tx, ws, changes).await?;
        audit(
            &mut tx,
            ws,
            &caller,
            "workspace.updated",
            format!("workspace:{ws}"),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::UpdateWorkspaceResponse {
            workspace: Some(workspace_to_pb(workspace)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::CreateWorkspaceResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Owner)?;
        let request = request.into_inner();
        let timezone = match request.timezone.trim() {
            "" => "UTC".to_owned(),
            tz => domain::valid_timezone(tz).map_err(Error::from)?,
        };
        let language = match request.default_language.trim() {
            "" => "en".to_owned(),
            tag => domain::valid_language(tag).map_err(Error::from)?,
        };
        let organization = store::organization_of(&self.pool, ws).await?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let created = store::create_workspace(
            &mut tx,
            organization.id,
            &request.name,
            &timezone,
            &language,
        )
        .await?;
        let (key, owner_api_key) =
            store::create_api_key(&mut tx, created.id, "first owner", Role::Owner).await?;
        let target = format!("workspace:{}", created.id);
        let facts = details([("name", created.name.clone())]);
        audit(
            &mut tx,
            ws,
            &caller,
            "workspace.created",
            target.clone(),
            facts.clone(),
        )
        .await?;
        audit(
            &mut tx,
            created.id,
            &caller,
            "workspace.created",
            target,
            facts,
        )
        .await?;
        let facts = details([("name", key.name.clone()), ("role", key.role.clone())]);
        let target = format!("api_key:{}", key.id);
        audit(
            &mut tx,
            created.id,
            &caller,
            "api_key.created",
            target,
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateWorkspaceResponse {
            workspace: Some(workspace_to_pb(created)),
            owner_api_key,
        }))
    }

    #[tracing::instrument(skip_all, err)]
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
            workspaces: rows.into_iter().map(workspace_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn archive_workspace(
        &self,
        request: Request<pb::ArchiveWorkspaceRequest>,
    ) -> Result<Response<pb::ArchiveWorkspaceResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Owner)?;
        let target_id = id("id", &request.get_ref().id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        store::archive_sibling_workspace(&mut tx, ws, target_id).await?;
        let target = format!("workspace:{target_id}");
        audit(
            &mut tx,
            ws,
            &caller,
            "workspace.archived",
            target.clone(),
            BTreeMap::new(),
        )
        .await?;
        if target_id != ws {
            audit(
                &mut tx,
                target_id,
                &caller,
                "workspace.archived",
                target,
                BTreeMap::new(),
            )
            .await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ArchiveWorkspaceResponse {}))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let organization = store::organization_of(&self.pool, ws).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(organization_to_pb(organization)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn rename_organization(
        &self,
        request: Request<pb::RenameOrganizationRequest>,
    ) -> Result<Response<pb::RenameOrganizationResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Owner)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let organization = store::rename_organization(&mut tx, ws, &request.get_ref().name).await?;
        let target = format!("organization:{}", organization.id);
        let facts = details([("name", organization.name.clone())]);
        audit(&mut tx, ws, &caller, "organization.renamed", target, facts).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::RenameOrganizationResponse {
            organization: Some(organization_to_pb(organization)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let (email, name, role) = (
            domain::valid_email(&request.email),
            domain::valid_name("display_name", &request.display_name),
            role_from_pb(request.role),
        )
            .all()
            .map_err(Error::from)?;
        not_above(&caller, role)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let user = store::create_user(&mut tx, ws, &email, &name, role).await?;
        let facts = details([("email", user.email.clone()), ("role", user.role.clone())]);
        audit(
            &mut tx,
            ws,
            &caller,
            "user.created",
            Subject::User(user.id).to_string(),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user_to_pb(user)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let (_, ws) = authorize(&request, Role::Agent)?;
        let user = store::user(&self.pool, ws, id("id", &request.get_ref().id)?).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_to_pb(user)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
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
            users: rows.into_iter().map(user_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let user_id = id("id", &request.id)?;
        let name = request
            .display_name
            .map(|n| domain::valid_name("display_name", &n))
            .transpose()
            .map_err(Error::from)?;
        let role = match request.role {
            0 => None,
            role => Some(role_from_pb(role).map_err(Error::from)?),
        };
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let current = store::user_for_update(&mut tx, ws, user_id).await?;
        let current_role = stored_role(&current.role)?;
        if let Some(role) = role {
            not_above(&caller, role)?;
            not_above(&caller, current_role)?;
            if current_role == Role::Owner
                && role != Role::Owner
                && current.deactivated_at.is_none()
            {
                store::ensure_another_owner(&mut tx, ws, user_id).await?;
            }
        }
        let mut facts = BTreeMap::new();
        if let Some(name) = &name {
            facts.insert("display_name".to_owned(), name.clone());
        }
        if let Some(role) = role {
            facts.insert("role".to_owned(), role.as_str().to_owned());
        }
        let user = store::update_user(&mut tx, ws, user_id, name, role).await?;
        audit(
            &mut tx,
            ws,
            &caller,
            "user.updated",
            Subject::User(user_id).to_string(),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(user_to_pb(user)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn deactivate_user(
        &self,
        request: Request<pb::DeactivateUserRequest>,
    ) -> Result<Response<pb::DeactivateUserResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let user_id = id("id", &request.get_ref().id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let current = store::user_for_update(&mut tx, ws, user_id).await?;
        let role = stored_role(&current.role)?;
        not_above(&caller, role)?;
        if role == Role::Owner && current.deactivated_at.is_none() {
            store::ensure_another_owner(&mut tx, ws, user_id).await?;
        }
        let user = store::deactivate_user(&mut tx, ws, user_id).await?;
        if current.deactivated_at.is_none() {
            publish_availability(&mut tx, ws, &user, &current.availability).await?;
            audit(
                &mut tx,
                ws,
                &caller,
                "user.deactivated",
                Subject::User(user_id).to_string(),
                BTreeMap::new(),
            )
            .await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::DeactivateUserResponse {
            user: Some(user_to_pb(user)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn set_user_availability(
        &self,
        request: Request<pb::SetUserAvailabilityRequest>,
    ) -> Result<Response<pb::SetUserAvailabilityResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let user_id = id("user_id", &request.user_id)?;
        let availability = availability_from_pb(request.availability)?;
        let is_self = caller.subject == Subject::User(user_id);
        if !is_self {
            caller.require(Role::Manager)?;
        }
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let current = store::user_for_update(&mut tx, ws, user_id).await?;
        if current.deactivated_at.is_some() {
            return Err(
                Error::Precondition(FieldError::new("user_id", "the User is deactivated")).into(),
            );
        }
        let user = store::set_availability(&mut tx, ws, user_id, availability.as_str()).await?;
        publish_availability(&mut tx, ws, &user, &current.availability).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::SetUserAvailabilityResponse {
            user: Some(user_to_pb(user)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn issue_user_token(
        &self,
        request: Request<pb::IssueUserTokenRequest>,
    ) -> Result<Response<pb::IssueUserTokenResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let user_id = id("user_id", &request.get_ref().user_id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let user = store::user_for_update(&mut tx, ws, user_id).await?;
        if user.deactivated_at.is_some() {
            return Err(
                Error::Precondition(FieldError::new("user_id", "the User is deactivated")).into(),
            );
        }
        let role = stored_role(&user.role)?;
        not_above(&caller, role)?;
        let (access_token, exp) = self
            .signer
            .mint(Subject::User(user_id).to_string(), role, Some(ws))
            .map_err(Error::Unexpected)?;
        audit(
            &mut tx,
            ws,
            &caller,
            "user.token_issued",
            Subject::User(user_id).to_string(),
            BTreeMap::new(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::IssueUserTokenResponse {
            access_token,
            expires_at: expires(exp),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let name = domain::valid_name("name", &request.get_ref().name).map_err(Error::from)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let team = store::create_team(&mut tx, ws, &name).await?;
        let facts = details([("name", team.name.clone())]);
        audit(
            &mut tx,
            ws,
            &caller,
            "team.created",
            format!("team:{}", team.id),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(team_to_pb(team)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
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
            teams: rows.into_iter().map(team_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn rename_team(
        &self,
        request: Request<pb::RenameTeamRequest>,
    ) -> Result<Response<pb::RenameTeamResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let request = request.into_inner();
        let team_id = id("id", &request.id)?;
        let name = domain::valid_name("name", &request.name).map_err(Error::from)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let team = store::rename_team(&mut tx, ws, team_id, &name).await?;
        let facts = details([("name", team.name.clone())]);
        audit(
            &mut tx,
            ws,
            &caller,
            "team.renamed",
            format!("team:{team_id}"),
            facts,
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::RenameTeamResponse {
            team: Some(team_to_pb(team)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_team(
        &self,
        request: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let team_id = id("id", &request.get_ref().id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        store::delete_team(&mut tx, ws, team_id).await?;
        audit(
            &mut tx,
            ws,
            &caller,
            "team.deleted",
            format!("team:{team_id}"),
            BTreeMap::new(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::DeleteTeamResponse {}))
    }

    #[tracing::instrument(skip_all, err)]
    async fn add_team_member(
        &self,
        request: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let team_id = id("team_id", &request.get_ref().team_id)?;
        let user_id = id("user_id", &request.get_ref().user_id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        if store::add_team_member(&mut tx, ws, team_id, user_id).await? {
            let facts = details([("user_id", user_id.to_string())]);
            audit(
                &mut tx,
                ws,
                &caller,
                "team.member_added",
                format!("team:{team_id}"),
                facts,
            )
            .await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::AddTeamMemberResponse {}))
    }

    #[tracing::instrument(skip_all, err)]
    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let (caller, ws) = authorize(&request, Role::Manager)?;
        let team_id = id("team_id", &request.get_ref().team_id)?;
        let user_id = id("user_id", &request.get_ref().user_id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        if store::remove_team_member(&mut tx, ws, team_id, user_id).await? {
            let facts = details([("user_id", user_id.to_string())]);
            audit(
                &mut tx,
                ws,
                &caller,
                "team.member_removed",
                format!("team:{team_id}"),
                facts,
            )
            .await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::RemoveTeamMemberResponse {}))
    }

    #[tracing::instrument(skip_all, err)]
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
            users: rows.into_iter().map(user_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
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
            teams: rows.into_iter().map(team_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
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
            events: rows.into_iter().map(audit_to_pb).collect(),
            next_page_token,
        }))
    }
}

/// Enqueues `workspaces.user.availability_changed` when `user`'s availability differs
/// from `previous`, in the caller's transaction.
async fn publish_availability(
    conn: &mut PgConnection,
    workspace: Uuid,
    user: &store::User,
    previous: &str,
) -> Result<(), Error> {
    if user.availability == previous {
        return Ok(());
    }
    let payload = UserAvailabilityChanged {
        user_id: user.id.to_string(),
        availability: user.availability.clone(),
        previous_availability: previous.to_owned(),
        changed_at: Some(timestamp(chrono::Utc::now())),
    };
    emit(
        conn,
        &topics::USER_AVAILABILITY_CHANGED,
        workspace,
        &user.id.to_string(),
        &payload,
    )
    .await?;
    Ok(())
}
