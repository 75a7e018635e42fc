//! Channels and Contacts, read from the gateway's and the contacts service's APIs.
use std::collections::HashSet;

use ism_platform::audience;
use ism_platform::error::{FieldError, Violations};
use ism_platform::peer::Peer;
use ism_platform::personalize;
use ism_proto::broadcasts::v1 as pb;
use ism_proto::contacts::v1 as contacts;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::gateway::v1 as gateway;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::error::Error;

/// The gateway and contacts services, as this service reads them.
#[derive(Clone)]
pub struct Directory {
    pub gateway: Peer<GatewayServiceClient<Channel>>,
    pub contacts: Peer<ContactServiceClient<Channel>>,
}

/// Contacts per batch while an audience is frozen (streamed, or a resend's read).
pub const FREEZE_BATCH: i32 = 1000;

/// Records `status`'s field violations (or its message), each under `field`.
fn report(all: &mut Violations, field: &str, status: &Status) {
    let details = status.get_error_details();
    let reported = details.bad_request().map(|b| b.field_violations.clone());
    match reported {
        Some(reported) if !reported.is_empty() => {
            for v in reported {
                all.push(FieldError::new(
                    format!("{field}.{}", v.field),
                    v.description,
                ));
            }
        }
        _ => all.push(FieldError::new(
            field.to_owned(),
            status.message().to_owned(),
        )),
    }
}

/// The contacts service's audience of `audience`'s source; `None` when it is not one of
/// contacts' (unset, or an earlier broadcast's recipients).
fn source(audience: &pb::Audience) -> Option<contacts::stream_contacts_request::Audience> {
    use contacts::stream_contacts_request::Audience as Stream;
    match audience.source.as_ref()? {
        pb::audience::Source::Filter(filter) => Some(Stream::Filter(filter.clone())),
        pb::audience::Source::SegmentId(id) => Some(Stream::SegmentId(id.clone())),
        pb::audience::Source::FailedRecipientsOf(_) => None,
    }
}

impl Directory {
    /// The Workspace's Channel `id`; `None` when it has none.
    pub async fn channel(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<Option<gateway::Channel>, Error> {
        let request = gateway::GetChannelRequest { id: id.to_string() };
        let answer = self
            .gateway
            .answer(workspace_id, request, |mut c, r| async move {
                c.get_channel(r).await
            })
            .await?;
        match answer {
            Ok(response) => Ok(response.channel),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.gateway.refused("channel", &status)),
        }
    }

    /// The keys of the Workspace's custom Contact Fields.
    pub async fn field_keys(&self, workspace_id: Uuid) -> Result<Vec<String>, Error> {
        personalize::field_keys(&self.contacts, workspace_id).await
    }

    /// How many live Contacts a contacts audience's source holds (exclusions not
    /// subtracted), or what is wrong with it under `field` (a filter contacts refuses, an
    /// unknown Segment).
    pub async fn count(
        &self,
        workspace_id: Uuid,
        audience: &pb::Audience,
        field: &str,
    ) -> Result<Result<i64, Violations>, Error> {
        use contacts::search_contacts_request::Audience as Search;
        use contacts::stream_contacts_request::Audience as Stream;
        let (source, source_field) = match source(audience) {
            Some(Stream::Filter(filter)) => (Search::Filter(filter), "filter"),
            Some(Stream::SegmentId(id)) => (Search::SegmentId(id), "segment_id"),
            None => {
                let missing = FieldError::new(
                    format!("{field}.source"),
                    "a filter or a segment_id is required",
                );
                return Ok(Err(missing.into()));
            }
        };
        let mut checks = Violations::new();
        if let Some(exclude) = &audience.exclude {
            let request = contacts::MatchContactsRequest {
                filter: Some(exclude.clone()),
                contact_ids: Vec::new(),
            };
            let answer = self
                .contacts
                .answer(workspace_id, request, |mut c, r| async move {
                    c.match_contacts(r).await
                })
                .await?;
            match answer {
                Ok(_) => {}
                Err(status) if status.code() == Code::InvalidArgument => {
                    report(&mut checks, &format!("{field}.exclude"), &status);
                }
                Err(status) => return Err(self.contacts.refused("contacts", &status)),
            }
        }
        let request = contacts::SearchContactsRequest {
            audience: Some(source),
            page_size: 1,
            ..Default::default()
        };
        let answer = self
            .contacts
            .answer(workspace_id, request, |mut c, r| async move {
                c.search_contacts(r).await
            })
            .await?;
        let at = format!("{field}.{source_field}");
        match answer {
            Ok(found) if checks.is_empty() => Ok(Ok(found.total_count)),
            Ok(_) => Ok(Err(checks)),
            Err(status) if status.code() == Code::InvalidArgument => {
                report(&mut checks, &at, &status);
                Ok(Err(checks))
            }
            Err(status) if status.code() == Code::NotFound => {
                checks.push(FieldError::new(at, "no such segment in this workspace"));
                Ok(Err(checks))
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                checks.push(FieldError::new(at, status.message().to_owned()));
                Ok(Err(checks))
            }
            Err(status) => Err(self.contacts.refused("contacts", &status)),
        }
    }

    /// The Contacts of `audience`'s source after `after`, in id order and batches.
    pub async fn stream(
        &self,
        workspace_id: Uuid,
        audience: &pb::Audience,
        after: Option<Uuid>,
    ) -> Result<Streaming<contacts::StreamContactsResponse>, Error> {
        let request = contacts::StreamContactsRequest {
            audience: source(audience),
            batch_size: FREEZE_BATCH,
            after_id: after.map(|id| id.to_string()).unwrap_or_default(),
        };
        self.contacts
            .call(workspace_id, "audience", request, |mut c, r| async move {
                c.stream_contacts(r).await
            })
            .await
    }

    /// Which of `candidates` are live Contacts that may receive broadcasts: not blocked,
    /// not opted out, not deleted.
    pub async fn reachable(
        &self,
        workspace_id: Uuid,
        candidates: &[Uuid],
    ) -> Result<HashSet<Uuid>, Error> {
        let yes_no = |field: &str| contacts::Condition {
            kind: Some(contacts::condition::Kind::Field(contacts::FieldCondition {
                field: field.to_owned(),
                operator: contacts::FieldOperator::Is as i32,
                values: vec![contacts::FieldValue {
                    kind: Some(contacts::field_value::Kind::Checkbox(false)),
                }],
            })),
        };
        let filter = contacts::Filter {
            groups: vec![contacts::ConditionGroup {
                conditions: vec![yes_no("blocked"), yes_no("broadcast_opt_out")],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.matching(workspace_id, &filter, candidates).await
    }

    /// Which of `candidates` match `filter`.
    pub async fn matching(
        &self,
        workspace_id: Uuid,
        filter: &contacts::Filter,
        candidates: &[Uuid],
    ) -> Result<HashSet<Uuid>, Error> {
        audience::matching(&self.contacts, workspace_id, filter, candidates)
            .await?
            .map_err(|status| self.contacts.refused("contacts", &status))
    }
}
