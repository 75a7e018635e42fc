//! Incoming webhooks: a signed JSON post to a workflow's own URL (taken by the gateway)
//! starts a run for the Contact the body names, in that Contact's most recently active
//! conversation, with variables from the body. A webhook id is taken once.
use ism_platform::signing;
use ism_proto::contacts::v1 as ct;
use ism_proto::workflows::v1 as pb;
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::runs::Runs;
use crate::store;
use crate::triggers::{self, Subject};

/// The longest webhook id kept (the specification sets none; ids are usually short).
const MAX_WEBHOOK_ID: usize = 256;

/// Why a webhook started no run when the workflow's reentry rules say so.
const ALREADY_IN_A_RUN: &str =
    "the Contact is in a run of this workflow, or had one and it runs once per Contact";

impl Runs {
    /// Takes a webhook posted to `workflow_id`: the run it started, or why none.
    pub async fn receive(
        &self,
        workspace_id: Uuid,
        workflow_id: Uuid,
        webhook: &pb::ReceiveWebhookRequest,
    ) -> Result<(Option<Uuid>, String), Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let workflow = store::workflow(&mut conn, workspace_id, workflow_id)
            .await?
            .ok_or(Error::NotFound("workflow"))?;
        drop(conn);
        let secret = SecretString::from(workflow.webhook_secret.clone());
        signing::verify(
            &secret,
            &webhook.webhook_id,
            &webhook.webhook_timestamp,
            &webhook.webhook_signature,
            &webhook.body,
        )
        .map_err(|e| Error::Unauthenticated(e.to_string().into()))?;
        let not_taken = || {
            Error::precondition(
                "workflow",
                "takes no webhooks now: its published version is disabled or has another trigger",
            )
        };
        let (published, definition) = workflow.startable()?.ok_or_else(not_taken)?;
        let Some(pb::trigger::Kind::IncomingWebhook(hook)) =
            definition.trigger.as_ref().and_then(|t| t.kind.as_ref())
        else {
            return Err(not_taken());
        };
        let body: Value = serde_json::from_slice(&webhook.body)
            .map_err(|e| Error::invalid("body", format!("is not JSON: {e}")))?;
        let named = match body.pointer(&hook.contact_pointer) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
            _ => {
                return Err(Error::invalid(
                    "body",
                    format!("names no Contact at {}", hook.contact_pointer),
                ));
            }
        };
        let contact_id = self
            .contact(workspace_id, hook.contact_key(), named)
            .await?;
        let (conversation_id, channel_id) =
            triggers::latest_conversation(&self.peers.conversations, workspace_id, contact_id)
                .await?
                .ok_or_else(|| {
                    Error::precondition("body", "the Contact has no conversation to act in")
                })?;
        let variables = hook
            .save
            .iter()
            .map(|(name, pointer)| {
                let value = match body.pointer(pointer) {
                    None => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                (name.clone(), value)
            })
            .collect();
        let subject = Subject {
            workspace_id,
            contact_id,
            conversation_id,
            channel_id,
            text: String::new(),
            variables,
        };
        if webhook.webhook_id.len() > MAX_WEBHOOK_ID {
            return Err(Error::invalid(
                "webhook_id",
                format!("at most {MAX_WEBHOOK_ID} bytes"),
            ));
        }
        let mut tx = self.pool.begin().await?;
        if let Some(earlier) =
            store::take_webhook(&mut tx, workflow_id, &webhook.webhook_id).await?
        {
            return Ok(earlier);
        }
        let run = triggers::start(&mut tx, &self.peers, &published, &definition, &subject)
            .await?
            .map(|r| r.id);
        let skipped = if run.is_some() { "" } else { ALREADY_IN_A_RUN };
        store::answer_webhook(&mut tx, workflow_id, &webhook.webhook_id, run, skipped).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok((run, skipped.to_owned()))
    }

    /// The Contact a webhook's body names by `key`.
    async fn contact(
        &self,
        workspace_id: Uuid,
        key: pb::ContactKey,
        named: &str,
    ) -> Result<Uuid, Error> {
        let contacts = &self.peers.contacts;
        let id = if key == pb::ContactKey::Id {
            let id = Uuid::parse_str(named)
                .map_err(|_| Error::invalid("body", "the Contact's id is not a UUID"))?;
            let request = ct::GetContactRequest { id: id.to_string() };
            contacts
                .call(workspace_id, "contact", request, |mut c, r| async move {
                    c.get_contact(r).await
                })
                .await?
                .contact
                .map(|c| c.id)
        } else {
            let field = if key == pb::ContactKey::Email {
                "email"
            } else {
                "phone"
            };
            let request = ct::SearchContactsRequest {
                audience: Some(ct::search_contacts_request::Audience::Filter(ct::Filter {
                    groups: vec![ct::ConditionGroup {
                        conditions: vec![ct::Condition {
                            kind: Some(ct::condition::Kind::Field(ct::FieldCondition {
                                field: field.into(),
                                operator: ct::FieldOperator::Is as i32,
                                values: vec![ct::FieldValue {
                                    kind: Some(ct::field_value::Kind::Text(named.to_lowercase())),
                                }],
                            })),
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
                page_size: 1,
                skip_count: true,
                ..Default::default()
            };
            contacts
                .call(workspace_id, "contacts", request, |mut c, r| async move {
                    c.search_contacts(r).await
                })
                .await?
                .contacts
                .into_iter()
                .next()
                .map(|c| c.id)
        };
        let id = id.ok_or(Error::NotFound("contact"))?;
        Uuid::parse_str(&id)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("contacts answered a bad id {id:?}")))
    }
}
