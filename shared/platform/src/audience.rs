//! Which Contacts match a filter, asked of the contacts service (MatchContacts): custom
//! inboxes, broadcast exclusions and resends all ask the same question.
use std::collections::HashSet;

use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::{Filter, MatchContactsRequest};
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::Error;
use crate::peer::Peer;

/// Which of `candidates` are Contacts of the Workspace matching `filter`; with no
/// candidates it only checks the filter. The contacts service's refusal comes back as
/// its status, for the caller to name the field it stands for.
pub async fn matching(
    contacts: &Peer<ContactServiceClient<Channel>>,
    workspace_id: Uuid,
    filter: &Filter,
    candidates: &[Uuid],
) -> Result<Result<HashSet<Uuid>, Status>, Error> {
    let request = MatchContactsRequest {
        filter: Some(filter.clone()),
        contact_ids: candidates.iter().map(Uuid::to_string).collect(),
    };
    let answer = contacts
        .answer(workspace_id, request, |mut c, r| async move {
            c.match_contacts(r).await
        })
        .await?;
    Ok(answer.map(|matched| {
        matched
            .contact_ids
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect()
    }))
}
