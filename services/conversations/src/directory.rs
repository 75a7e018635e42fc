//! Users and Teams, and Contacts, read from the workspaces and contacts services' APIs
//! with a service token.
use std::collections::HashSet;

use ism_platform::audience;
use ism_platform::auth::Subject;
use ism_platform::error::FieldError;
use ism_platform::peer::Peer;
use ism_platform::personalize::{self, Variables};
use ism_proto::contacts::v1 as contacts;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::assign::Candidate;
use crate::error::Error;

/// The workspaces and contacts services, as this service reads them.
#[derive(Clone)]
pub struct Directory {
    workspaces: Peer<WorkspaceServiceClient<Channel>>,
    contacts: Peer<ContactServiceClient<Channel>>,
}

/// Most candidates one MatchContacts call may name (the contacts service's limit).
pub const MAX_CANDIDATES: usize = 10_000;
/// The field of a view's Contact conditions, as errors name it.
pub const CONTACT_FILTER: &str = "conditions.contact_filter";

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
    pub fn new(
        workspaces: Peer<WorkspaceServiceClient<Channel>>,
        contacts: Peer<ContactServiceClient<Channel>>,
    ) -> Self {
        Self {
            workspaces,
            contacts,
        }
    }

    /// The keys of the Workspace's custom Contact Fields.
    pub async fn field_keys(&self, workspace_id: Uuid) -> Result<Vec<String>, Error> {
        personalize::field_keys(&self.contacts, workspace_id).await
    }

    /// Which of `candidates` are Contacts of the Workspace matching `filter` (at most
    /// [`MAX_CANDIDATES`] per call). With no candidates it only checks the Filter; a
    /// Filter contacts refuses comes back as its field error.
    pub async fn match_contacts(
        &self,
        workspace_id: Uuid,
        filter: &contacts::Filter,
        candidates: &[Uuid],
    ) -> Result<HashSet<Uuid>, Error> {
        match audience::matching(&self.contacts, workspace_id, filter, candidates).await? {
            Ok(matched) => Ok(matched),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                let reason = status
                    .get_error_details()
                    .bad_request()
                    .and_then(|b| b.field_violations.first())
                    .map_or_else(|| status.message().to_owned(), |v| v.description.clone());
                Err(FieldError::new(CONTACT_FILTER, reason).into())
            }
            Err(status) => Err(self.contacts.refused("contacts", &status)),
        }
    }

    /// Snippet variables for the Contact and the caller (a User gives a name).
    pub async fn variables(
        &self,
        workspace_id: Uuid,
        contact_id: Uuid,
        caller: &Subject,
    ) -> Result<Variables, Error> {
        let keys = self.field_keys(workspace_id).await?;
        let request = contacts::GetContactRequest {
            id: contact_id.to_string(),
        };
        let contact = self
            .contacts
            .call(workspace_id, "contact", request, |mut c, r| async move {
                c.get_contact(r).await
            })
            .await?
            .contact
            .unwrap_or_default();
        let mut variables = Variables::of_contact(&contact, &keys);
        let name = match caller.user_id() {
            Some(user_id) => {
                let request = ws::GetUserRequest {
                    id: Uuid::to_string(&user_id),
                };
                self.workspaces
                    .call(workspace_id, "user", request, |mut c, r| async move {
                        c.get_user(r).await
                    })
                    .await?
                    .user
                    .map(|u| u.display_name)
                    .unwrap_or_default()
            }
            None => String::new(),
        };
        variables.user.insert("name".into(), name);
        Ok(variables)
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
        let answer = self
            .workspaces
            .answer(workspace_id, request, |mut c, r| async move {
                c.get_user(r).await
            })
            .await?;
        let user = match answer {
            Ok(response) => response.user,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => return Err(self.workspaces.refused("user", &status)),
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
                    let answer = self
                        .workspaces
                        .answer(workspace_id, request, |mut c, r| async move {
                            c.list_team_members(r).await
                        })
                        .await?;
                    match answer {
                        Ok(r) => (r.users, r.next_page_token),
                        Err(status) if status.code() == tonic::Code::NotFound => {
                            return Err(
                                FieldError::new(field, "is not a Team of this Workspace").into()
                            );
                        }
                        Err(status) => return Err(self.workspaces.refused("team", &status)),
                    }
                }
                None => {
                    let request = ws::ListUsersRequest {
                        page_size: 100,
                        page_token,
                        include_deactivated: false,
                    };
                    let r = self
                        .workspaces
                        .call(workspace_id, "users", request, |mut c, r| async move {
                            c.list_users(r).await
                        })
                        .await?;
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
