//! A Workspace with one of everything, for the tests that call every RPC against it (the
//! isolation and role matrices).
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ism_proto::broadcasts::v1 as broadcasts;
use ism_proto::contacts::v1 as contacts;
use ism_proto::conversations::v1 as conversations;
use ism_proto::integrations::v1 as ig;
use ism_proto::types::v1::{MessageContent, Text, message_content};
use ism_proto::workflows::v1 as wf;
use ism_proto::workspaces::v1 as ws;
use serde_json::json;
use tonic::Status;

use crate::platform::{Platform, Tenant, eventually};

/// What one call of a matrix row answers: the response printed, or the refusal.
pub type Reply = Pin<Box<dyn Future<Output = Result<String, Status>> + Send>>;

/// A Workspace with one of everything: a channel, a contact with a conversation and a
/// message, a User in a Team, an extra API key and a draft broadcast.
#[derive(Debug, Clone)]
pub struct Side {
    /// The tenant the Workspace was bootstrapped as.
    pub tenant: Tenant,
    /// An access token of the tenant's owner API key.
    pub token: String,
    /// The Workspace.
    pub workspace_id: String,
    /// Its custom channel.
    pub channel_id: String,
    /// The Contact who wrote the first message.
    pub contact_id: String,
    /// The Contact's conversation.
    pub conversation_id: String,
    /// The Contact's first message.
    pub message_id: String,
    /// An agent User, member of `team_id`.
    pub user_id: String,
    /// A Team.
    pub team_id: String,
    /// An agent API key besides the owner's.
    pub api_key_id: String,
    /// A shared Snippet.
    pub snippet_id: String,
    /// A custom inbox.
    pub inbox_id: String,
    /// A Segment.
    pub segment_id: String,
    /// A finished contact import.
    pub import_id: String,
    /// A draft broadcast to every Contact.
    pub broadcast_id: String,
    /// A disabled webhook endpoint following Tags added.
    pub webhook_endpoint_id: String,
    /// Its (skipped) delivery of the Tag added to the Contact.
    pub webhook_delivery_id: String,
    /// A disabled bot on an OpenAI-compatible stand-in.
    pub bot_id: String,
    /// The stand-in's base URL, for bots the matrices create.
    pub openai_url: String,
    /// A manual workflow (published, then disabled) that comments once.
    pub workflow_id: String,
    /// Its completed run in the Contact's conversation.
    pub run_id: String,
}

impl Side {
    /// Ids a response to another Workspace must never contain (the channel id is left
    /// out: a caller may name it in ResolveContact).
    pub fn secret_ids(&self) -> [&str; 18] {
        [
            &self.broadcast_id,
            &self.workflow_id,
            &self.run_id,
            &self.bot_id,
            &self.webhook_endpoint_id,
            &self.webhook_delivery_id,
            &self.snippet_id,
            &self.inbox_id,
            &self.segment_id,
            &self.import_id,
            &self.workspace_id,
            &self.contact_id,
            &self.conversation_id,
            &self.message_id,
            &self.user_id,
            &self.team_id,
            &self.api_key_id,
            &self.tenant.owner_user_id,
        ]
    }
}

/// A bot on the OpenAI-compatible stand-in at `base_url`.
pub fn openai_bot(base_url: &str) -> ig::BotDefinition {
    ig::BotDefinition {
        name: "Assistant".into(),
        backend: Some(ig::bot_definition::Backend::Openai(ig::OpenAiCompatible {
            base_url: base_url.into(),
            api_key: crate::bots::FakeOpenAi::API_KEY.into(),
            model: "gpt-fake".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A workflow started by hand that adds one internal comment, `body`.
pub fn commenting_workflow(body: &str) -> wf::WorkflowDefinition {
    wf::WorkflowDefinition {
        name: "Note".into(),
        trigger: Some(wf::Trigger {
            kind: Some(wf::trigger::Kind::Manual(wf::Manual {})),
            conditions: Vec::new(),
        }),
        steps: vec![wf::Step {
            id: "note".into(),
            kind: Some(wf::step::Kind::Comment(wf::CommentStep {
                body: body.into(),
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Text content.
pub fn text_content(body: &str) -> MessageContent {
    MessageContent {
        kind: Some(message_content::Kind::Text(Text { body: body.into() })),
        ..Default::default()
    }
}

/// An ImportContacts upload of one row with `email`.
pub fn import_stream(
    email: &str,
) -> impl futures::Stream<Item = contacts::ImportContactsRequest> + Send + 'static {
    use contacts::import_contacts_request::Part;
    let settings = contacts::ImportSettings {
        columns: vec![contacts::ColumnMapping {
            column: "email".into(),
            field: "email".into(),
        }],
        r#match: contacts::ImportMatch::Email as i32,
        channel_id: String::new(),
    };
    futures::stream::iter([
        contacts::ImportContactsRequest {
            part: Some(Part::Settings(settings)),
        },
        contacts::ImportContactsRequest {
            part: Some(Part::Data(format!("email\n{email}\n").into_bytes())),
        },
    ])
}

/// A GetReport of the last day, grouped by day.
pub fn report_of_today() -> conversations::GetReportRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    conversations::GetReportRequest {
        from: Some(prost_types::Timestamp {
            seconds: now - 86_400,
            nanos: 0,
        }),
        to: Some(prost_types::Timestamp {
            seconds: now + 60,
            nanos: 0,
        }),
        group_by: conversations::ReportGrouping::Day as i32,
    }
}

/// Fills `tenant`'s Workspace with one of everything; `sender` is the Contact who writes.
pub async fn populate(platform: &Platform, tenant: Tenant, sender: &str) -> Side {
    let body = serde_json::to_vec(
        &json!({"message_id": format!("{sender}-1"), "from": {"id": sender}, "text": "hello"}),
    )
    .expect("JSON");
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!(code, 200);
    let api = platform.api(&tenant).await;
    let conversation = api
        .wait_for_conversation(Duration::from_secs(30), |_| true)
        .await;
    let message = eventually(Duration::from_secs(30), "the message", || async {
        let request = conversations::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            ..Default::default()
        };
        let mut client = api.conversations.clone();
        let list = client.list_messages(api.authed(request)).await.ok()?;
        list.into_inner().messages.pop()
    })
    .await;
    let user = api
        .create_user(
            &format!("agent-{sender}@example.com"),
            "Agent",
            ws::Role::Agent,
        )
        .await;
    let team = api.create_team("Support").await;
    api.add_team_member(&team.id, &user.id).await;
    let key = api
        .create_api_key("integration", ws::Role::Agent)
        .await
        .api_key
        .expect("CreateApiKey answers with the key");
    let snippet = api
        .create_snippet(conversations::CreateSnippetRequest {
            shortcut: "thanks".into(),
            title: "Thanks".into(),
            body: "Thank you, {{ contact.first_name }}!".into(),
            personal: false,
        })
        .await;
    let inbox = api
        .create_inbox(
            "Waiting",
            conversations::InboxConditions {
                unread: true,
                ..Default::default()
            },
        )
        .await;
    let (endpoint, _) = api
        .create_webhook_endpoint(ig::WebhookEndpointDefinition {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: vec!["contacts.tag.added".into()],
            ..Default::default()
        })
        .await;
    // Disabled, so that its delivery stays as it is (skipped) while the matrices run.
    api.set_webhook_endpoint_enabled(&endpoint.id, false).await;
    api.add_tags(
        vec![conversation.contact_id.clone()],
        &[&format!("tag-{sender}")],
    )
    .await;
    let delivery = eventually(Duration::from_secs(30), "the webhook delivery", || async {
        api.list_webhook_deliveries(&endpoint.id).await.pop()
    })
    .await;
    api.create_contact_field(contacts::ContactField {
        key: "tier".into(),
        label: "Tier".into(),
        r#type: contacts::FieldType::Text as i32,
        ..Default::default()
    })
    .await;
    let segment = api
        .create_segment(&format!("segment-{sender}"), contacts::Filter::default())
        .await;
    let import = api
        .import_contacts(import_stream(&format!("{sender}@example.com")))
        .await;
    let broadcast = api
        .create_broadcast(broadcasts::BroadcastDefinition {
            name: format!("broadcast-{sender}"),
            channel_id: tenant.channel_id.clone(),
            audience: Some(broadcasts::Audience {
                source: Some(broadcasts::audience::Source::Filter(
                    contacts::Filter::default(),
                )),
                exclude: None,
            }),
            content: Some(text_content("Hello {{ contact.first_name }}")),
            labels: vec!["fixture".into()],
        })
        .await;
    let openai = crate::bots::FakeOpenAi::start().await;
    let bot = api.create_bot(openai_bot(&openai.url)).await;
    // Disabled, so that it answers none of the messages the matrices send.
    api.set_bot_enabled(&bot.id, false).await;
    let workflow = api.create_workflow(commenting_workflow("Note")).await;
    api.publish_workflow(&workflow.id).await;
    let run = api
        .start_run(&workflow.id, &conversation.id)
        .await
        .expect("a first run starts");
    api.wait_for_run(&run.id, Duration::from_secs(30), "the fixture run", |r| {
        r.state() == wf::RunState::Completed
    })
    .await;
    api.set_workflow_enabled(&workflow.id, false).await;
    Side {
        workflow_id: workflow.id,
        run_id: run.id,
        bot_id: bot.id,
        openai_url: openai.url.clone(),
        broadcast_id: broadcast.id,
        webhook_endpoint_id: endpoint.id,
        webhook_delivery_id: delivery.id,
        snippet_id: snippet.id,
        inbox_id: inbox.id,
        segment_id: segment.id,
        import_id: import.id,
        workspace_id: tenant.workspace_id.clone(),
        channel_id: tenant.channel_id.clone(),
        tenant,
        token: api.token.clone(),
        contact_id: conversation.contact_id.clone(),
        conversation_id: conversation.id,
        message_id: message.id,
        user_id: user.id,
        team_id: team.id,
        api_key_id: key.id,
    }
}

/// A Contact `from` writes `text` (provider message id `id`) to `tenant`'s custom channel,
/// through its signed webhook.
pub async fn contact_writes(
    platform: &Platform,
    tenant: &Tenant,
    from: &str,
    id: &str,
    text: &str,
) {
    let inbound = json!({"message_id": id, "from": {"id": from, "name": "Ada"}, "text": text});
    let body = serde_json::to_vec(&inbound).expect("JSON");
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!(code, 200);
}

/// The fields a refusal's `BadRequest` names, in its order.
pub fn field_violations(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}
