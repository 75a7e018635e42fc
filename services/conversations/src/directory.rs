//! Users and Teams, read from the workspaces service's API with a service token.
use std::sync::Arc;

use ism_platform::auth::ServiceTokens;
use ism_platform::paging::FieldError;
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::assign::Candidate;
use crate::error::Error;

/// The workspaces service, as this service reads it.
#[derive(Clone)]
pub struct Directory {
    client: WorkspaceServiceClient<Channel>,
    tokens: Arc<ServiceTokens>,
}

fn unavailable(status: tonic::Status) -> Error {
    Error::Unavailable(format!("workspaces: {}", status.message()))
}

fn candidate(user: &ws::User) -> Option<Candidate> {
    if user.deactivated_at.is_some() {
        return None;
    }
    Some(Candidate {
        user_id: user.id.parse().ok()?,
        online: user.availability == ws::Availability::Online as i32,
    })
}

impl Directory {
    pub fn new(client: WorkspaceServiceClient<Channel>, tokens: Arc<ServiceTokens>) -> Self {
        Self { client, tokens }
    }

    /// The active User `user_id` of the Workspace; an error naming `field` otherwise.
    pub async fn user(
        &self,
        workspace_id: Uuid,
        user_id: Uuid,
        field: &'static str,
    ) -> Result<Candidate, Error> {
        let request = ws::GetUserRequest {
            id: user_id.to_string(),
        };
        let request = self
            .tokens
            .request(request, workspace_id)
            .await
            .map_err(unavailable)?;
        let user = match self.client.clone().get_user(request).await {
            Ok(response) => response.into_inner().user,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => return Err(unavailable(status)),
        };
        user.as_ref()
            .and_then(candidate)
            .ok_or_else(|| FieldError::new(field, "is not an active User of this Workspace").into())
    }

    /// The Team's active members, or every active User of the Workspace for `None`; an
    /// unknown Team is an error naming `field`.
    pub async fn candidates(
        &self,
        workspace_id: Uuid,
        team_id: Option<Uuid>,
        field: &'static str,
    ) -> Result<Vec<Candidate>, Error> {
        let mut users = Vec::new();
        let mut page_token = String::new();
        loop {
            let (page, next) = match team_id {
                Some(team_id) => {
                    let request = ws::ListTeamMembersRequest {
                        team_id: team_id.to_string(),
                        page_size: 100,
                        page_token,
                    };
                    let request = self
                        .tokens
                        .request(request, workspace_id)
                        .await
                        .map_err(unavailable)?;
                    match self.client.clone().list_team_members(request).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            (r.users, r.next_page_token)
                        }
                        Err(status) if status.code() == tonic::Code::NotFound => {
                            return Err(
                                FieldError::new(field, "is not a Team of this Workspace").into()
                            );
                        }
                        Err(status) => return Err(unavailable(status)),
                    }
                }
                None => {
                    let request = ws::ListUsersRequest {
                        page_size: 100,
                        page_token,
                        include_deactivated: false,
                    };
                    let request = self
                        .tokens
                        .request(request, workspace_id)
                        .await
                        .map_err(unavailable)?;
                    let r = self
                        .client
                        .clone()
                        .list_users(request)
                        .await
                        .map_err(unavailable)?
                        .into_inner();
                    (r.users, r.next_page_token)
                }
            };
            users.extend(page.iter().filter_map(candidate));
            if next.is_empty() {
                return Ok(users);
            }
            page_token = next;
        }
    }
}
