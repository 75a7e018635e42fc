//! The ContactService gRPC API.
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{timestamp, uuid};
use ism_platform::paging::{self, FieldError};
use ism_proto::contacts::v1 as pb;
use ism_proto::contacts::v1::contact_service_server::ContactService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::store::{self, Contact, IdentityKey};

pub struct Api {
    pub pool: PgPool,
}

impl Api {
    async fn with_identities(&self, contacts: Vec<Contact>) -> Result<Vec<pb::Contact>, Error> {
        let Some(first) = contacts.first() else {
            return Ok(Vec::new());
        };
        let ids: Vec<_> = contacts.iter().map(|c| c.id).collect();
        let identities = store::identities(&self.pool, first.workspace_id, &ids).await?;
        Ok(contacts
            .into_iter()
            .map(|c| pb::Contact {
                id: c.id.to_string(),
                workspace_id: c.workspace_id.to_string(),
                first_name: c.first_name,
                last_name: c.last_name,
                identities: identities
                    .iter()
                    .filter(|i| i.contact_id == c.id)
                    .map(|i| pb::ChannelIdentity {
                        channel_id: i.channel_id.to_string(),
                        external_id: i.external_id.clone(),
                        display_name: i.display_name.clone(),
                    })
                    .collect(),
                created_at: Some(timestamp(c.created_at)),
            })
            .collect())
    }

    async fn one(&self, contact: Contact) -> Result<pb::Contact, Error> {
        let mut all = self.with_identities(vec![contact]).await?;
        all.pop()
            .ok_or_else(|| Error::Unexpected(anyhow::anyhow!("contact vanished while reading")))
    }
}

#[tonic::async_trait]
impl ContactService for Api {
    #[tracing::instrument(skip_all, err)]
    async fn resolve_contact(
        &self,
        request: Request<pb::ResolveContactRequest>,
    ) -> Result<Response<pb::ResolveContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let request = request.into_inner();
        let channel_id = uuid("channel_id", &request.channel_id).map_err(Error::from)?;
        let external_id = request.external_id.trim();
        if external_id.is_empty() || external_id.len() > 256 {
            return Err(
                Error::from(FieldError::new("external_id", "must be 1 to 256 bytes")).into(),
            );
        }
        let key = IdentityKey {
            channel_id,
            external_id,
            display_name: request.display_name.trim(),
        };
        let (contact, created) = store::resolve(&self.pool, caller.workspace_id()?, &key).await?;
        Ok(Response::new(pb::ResolveContactResponse {
            contact: Some(self.one(contact).await?),
            created,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = uuid("id", &request.get_ref().id).map_err(Error::from)?;
        let contact = store::get(&self.pool, caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size).map_err(Error::from)?;
        let before = paging::decode_token(&request.page_token).map_err(Error::from)?;
        let rows = store::list(&self.pool, caller.workspace_id()?, before, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |c| c.id);
        Ok(Response::new(pb::ListContactsResponse {
            contacts: self.with_identities(rows).await?,
            next_page_token,
        }))
    }
}
