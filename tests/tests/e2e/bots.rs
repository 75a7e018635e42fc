//! Bots, as a Contact and the business's Users see them: the bot answers through the
//! Channel, marked as a bot's, until it hands over (asked to, or failing), a human takes
//! the conversation, or it ends; against local stand-ins speaking Dialogflow's (ES and CX,
//! with Google's OAuth token endpoint) and an OpenAI-compatible API.
use std::time::Duration;

use ism_e2e::bots::{FakeGoogle, FakeOpenAi};
use ism_e2e::fixtures::{contact_writes, field_violations};
use ism_e2e::{Api, Platform, Receiver, eventually};
use ism_proto::conversations::v1 as cv;
use ism_proto::integrations::v1 as ig;
use ism_proto::types::v1::message_content;
use serde_json::json;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

fn es_bot(google: &FakeGoogle) -> ig::BotDefinition {
    ig::BotDefinition {
        name: "Front desk".into(),
        backend: Some(ig::bot_definition::Backend::DialogflowEs(
            ig::DialogflowEs {
                service_account_json: google.service_account_json(),
                region: "europe-west1".into(),
                language: "en".into(),
                api_base_url: google.url.clone(),
            },
        )),
        ..Default::default()
    }
}

fn openai_bot(ai: &FakeOpenAi) -> ig::BotDefinition {
    ig::BotDefinition {
        name: "Assistant".into(),
        backend: Some(ig::bot_definition::Backend::Openai(ig::OpenAiCompatible {
            base_url: ai.url.clone(),
            api_key: FakeOpenAi::API_KEY.into(),
            model: "gpt-fake".into(),
            system_prompt: "You answer questions about opening hours.".into(),
            history_messages: 10,
        })),
        ..Default::default()
    }
}

/// The conversation's internal comments.
async fn comments(api: &Api, conversation_id: &str) -> Vec<String> {
    api.list_messages(conversation_id)
        .await
        .into_iter()
        .filter(|m| m.internal)
        .filter_map(|m| match m.content?.kind? {
            message_content::Kind::Text(t) => Some(t.body),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_dialogflow_es_bot_answers_tags_and_hands_over_when_asked() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let google = FakeGoogle::start().await;
    google.reply(
        "hi",
        json!({
            "fulfillmentMessages": [
                {"text": {"text": ["Hello! How can I help?"]}},
                {"quickReplies": {"title": "Pick one", "quickReplies": ["Sales", "Support"]}}
            ],
            "parameters": {"tags": ["greeted"], "contact_fields": {"plan": "pro"}}
        }),
    );
    api.create_contact_field(ism_proto::contacts::v1::ContactField {
        key: "plan".into(),
        label: "Plan".into(),
        r#type: ism_proto::contacts::v1::FieldType::Text as i32,
        ..Default::default()
    })
    .await;
    google.reply(
        "a human please",
        json!({"fulfillmentText": "Connecting you.", "action": "handover"}),
    );
    let bot = api.create_bot(es_bot(&google)).await;
    assert!(
        matches!(
            bot.definition.as_ref().and_then(|d| d.backend.as_ref()),
            Some(ig::bot_definition::Backend::DialogflowEs(es)) if es.service_account_json.is_empty()
        ),
        "the key is never returned"
    );

    contact_writes(&platform, &tenant, "ada", "in-1", "hi").await;
    let sent = outbound.wait_texts_to("ada", 2).await;
    assert_eq!(sent, ["Hello! How can I help?", "Pick one"]);
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    let messages = api.list_messages(&conversation.id).await;
    let bot_messages = messages
        .iter()
        .filter(|m| m.sender() == cv::Party::Bot)
        .count();
    assert_eq!(bot_messages, 2, "marked as the bot's");
    let contact = eventually(WAIT, "the Tag", || async {
        let contact = api.get_contact(&conversation.contact_id).await;
        contact
            .tags
            .contains(&"greeted".to_owned())
            .then_some(contact)
    })
    .await;
    assert_eq!(contact.tags, ["greeted"]);

    // One session per conversation, in the agent's region, with one cached token.
    let asked = google.requests();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].path.contains(&format!(
            "/locations/europe-west1/agent/sessions/{}:detectIntent",
            conversation.id
        )),
        "{}",
        asked[0].path
    );
    assert_eq!(asked[0].body["queryInput"]["text"]["text"], "hi");

    // A cached token Google stopped accepting before its expiry: replaced, the question
    // asked once more, and the Contact never notices.
    google.retire_tokens();
    contact_writes(&platform, &tenant, "ada", "in-2", "a human please").await;
    outbound.wait_texts_to("ada", 3).await;
    let notes = eventually(WAIT, "the handover note", || async {
        let notes = comments(&api, &conversation.id).await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(
        notes[0].contains("handed this conversation over: the agent asked for a human"),
        "{notes:?}"
    );
    assert_eq!(google.tokens_issued(), 2, "one new token after the refusal");
    let tokens: Vec<String> = google
        .requests()
        .into_iter()
        .map(|r| r.authorization.unwrap_or_default())
        .collect();
    assert_eq!(tokens.len(), 3, "the refused question asked again once");
    assert_eq!(tokens[0], tokens[1], "the cached token, refused");
    assert_ne!(tokens[1], tokens[2], "then a new one");

    // Handed over: the bot stays silent.
    contact_writes(&platform, &tenant, "ada", "in-3", "hi").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(google.requests().len(), 3);
    assert_eq!(outbound.texts_to("ada").len(), 3);
}

#[tokio::test]
async fn a_dialogflow_cx_bot_hands_off_live_and_a_human_assignment_ends_its_part() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let google = FakeGoogle::start().await;
    google.reply(
        "hello",
        json!({"responseMessages": [{"text": {"text": ["Hi from CX"]}}]}),
    );
    google.reply(
        "agent",
        json!({"responseMessages": [
            {"text": {"text": ["Transferring"]}},
            {"liveAgentHandoff": {"metadata": {"reason": "asked for an agent"}}}
        ]}),
    );
    api.create_bot(ig::BotDefinition {
        name: "CX".into(),
        channel_ids: vec![tenant.channel_id.clone()],
        backend: Some(ig::bot_definition::Backend::DialogflowCx(
            ig::DialogflowCx {
                service_account_json: google.service_account_json(),
                location: "global".into(),
                agent_id: "agent-1".into(),
                environment: "prod".into(),
                language: "en".into(),
                api_base_url: google.url.clone(),
            },
        )),
        ..Default::default()
    })
    .await;

    contact_writes(&platform, &tenant, "bob", "b-1", "hello").await;
    assert_eq!(outbound.wait_texts_to("bob", 1).await, ["Hi from CX"]);
    assert!(
        google.requests()[0]
            .path
            .contains("/agents/agent-1/environments/prod/sessions/")
    );
    contact_writes(&platform, &tenant, "bob", "b-2", "agent").await;
    assert_eq!(outbound.wait_texts_to("bob", 2).await[1], "Transferring");
    let bob = api.wait_for_conversation(WAIT, |_| true).await;
    eventually(WAIT, "the handover note", || async {
        let notes = comments(&api, &bob.id).await;
        notes
            .iter()
            .any(|n| n.contains("asked for an agent"))
            .then_some(())
    })
    .await;

    // Another Contact: a User takes the conversation, and the bot answers no more.
    contact_writes(&platform, &tenant, "cy", "c-1", "hello").await;
    outbound.wait_texts_to("cy", 1).await;
    let cy = api.wait_for_conversation(WAIT, |c| c.id != bob.id).await;
    api.assign_conversation(&cy.id, &tenant.owner_user_id, "")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = google.requests().len();
    contact_writes(&platform, &tenant, "cy", "c-2", "hello").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        google.requests().len(),
        asked,
        "no query after the assignment"
    );
    assert_eq!(outbound.texts_to("cy").len(), 1);
}

#[tokio::test]
async fn an_openai_compatible_bot_answers_with_the_history_and_hands_off_by_tool_call() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let ai = FakeOpenAi::start().await;
    ai.reply("when are you open?", "9 to 5, Monday to Friday.");
    ai.handoff_on("let me talk to a person", "the customer asked for a person");
    let bot = api.create_bot(openai_bot(&ai)).await;
    let tested = api.test_bot(&bot.id, "when are you open?").await;
    assert!(!tested.handover);
    assert_eq!(tested.replies.len(), 1);

    contact_writes(&platform, &tenant, "dee", "d-1", "when are you open?").await;
    assert_eq!(
        outbound.wait_texts_to("dee", 1).await,
        ["9 to 5, Monday to Friday."]
    );
    contact_writes(&platform, &tenant, "dee", "d-2", "let me talk to a person").await;
    let dee = api.wait_for_conversation(WAIT, |_| true).await;
    eventually(WAIT, "the handover note", || async {
        let notes = comments(&api, &dee.id).await;
        notes
            .iter()
            .any(|n| n.contains("asked for a person"))
            .then_some(())
    })
    .await;
    // The model saw the system prompt and the conversation so far, its own answer included.
    let last = ai.requests().pop().expect("requests");
    let roles: Vec<&str> = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(last["tools"][0]["function"]["name"], "handoff");
}

#[tokio::test]
async fn a_failing_bot_hands_the_conversation_to_a_human_with_the_reason() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let google = FakeGoogle::start().await;
    let mut definition = es_bot(&google);
    definition.timeout_ms = 1000;
    let bot = api.create_bot(definition).await;

    // Unavailable three times: retried, then handed over.
    google.fail_next(503, 3);
    contact_writes(&platform, &tenant, "eve", "e-1", "hi").await;
    let eve = api.wait_for_conversation(WAIT, |_| true).await;
    let note = eventually(WAIT, "the handover after retries", || async {
        comments(&api, &eve.id).await.pop()
    })
    .await;
    assert!(note.contains("503"), "{note}");
    assert_eq!(google.requests().len(), 3);

    // No answer in time: handed over at once, never asked twice.
    google.delay_next(Duration::from_secs(3), 1);
    contact_writes(&platform, &tenant, "fay", "f-1", "hi").await;
    let fay = api.wait_for_conversation(WAIT, |c| c.id != eve.id).await;
    let note = eventually(WAIT, "the handover after a timeout", || async {
        comments(&api, &fay.id).await.pop()
    })
    .await;
    assert!(note.contains("no answer within 1000 ms"), "{note}");
    assert_eq!(google.requests().len(), 4);

    // Credentials revoked: handed over, and the bot shows the error in words.
    google.revoke();
    contact_writes(&platform, &tenant, "gus", "g-1", "hi").await;
    let gus = api
        .wait_for_conversation(WAIT, |c| c.id != eve.id && c.id != fay.id)
        .await;
    let note = eventually(WAIT, "the handover after refused credentials", || async {
        comments(&api, &gus.id).await.pop()
    })
    .await;
    assert!(note.contains("credentials refused"), "{note}");
    let health = api.get_bot(&bot.id).await.health.unwrap_or_default();
    assert!(
        health.last_error.contains("credentials refused"),
        "{health:?}"
    );
    assert!(
        outbound.texts_to("gus").is_empty(),
        "nothing sent for the bot"
    );
}

#[tokio::test]
async fn bad_bots_are_refused_naming_the_field_and_nothing_is_saved() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let mut client = api.integrations.clone();
    let google = FakeGoogle::start().await;
    let ai = FakeOpenAi::start().await;
    let mut refuse = async |definition: ig::BotDefinition| {
        client
            .create_bot(api.authed(ig::CreateBotRequest {
                definition: Some(definition),
            }))
            .await
            .expect_err("refused")
    };

    let mut malformed = es_bot(&google);
    if let Some(ig::bot_definition::Backend::DialogflowEs(es)) = &mut malformed.backend {
        es.service_account_json = "{\"type\": \"user\"}".into();
        es.api_base_url = "http://10.1.2.3/".into();
    }
    malformed.name = String::new();
    let status = refuse(malformed).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = field_violations(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "definition.dialogflow_es.api_base_url",
            "definition.dialogflow_es.service_account_json",
            "definition.name",
        ]
    );
    let status = refuse(ig::BotDefinition {
        name: "none".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(field_violations(&status), ["definition.backend"]);

    let mut wrong_key = openai_bot(&ai);
    if let Some(ig::bot_definition::Backend::Openai(o)) = &mut wrong_key.backend {
        o.api_key = "sk-wrong".into();
    }
    let status = refuse(wrong_key).await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("definition.openai.api_key"),
        "{status:?}"
    );
    let mut unreachable = openai_bot(&ai);
    if let Some(ig::bot_definition::Backend::Openai(o)) = &mut unreachable.backend {
        o.base_url = "http://127.0.0.1:9/v1".into();
    }
    let status = refuse(unreachable).await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("definition.openai.base_url"),
        "{status:?}"
    );
    google.revoke();
    let status = refuse(es_bot(&google)).await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("definition.dialogflow_es.service_account_json"),
        "{status:?}"
    );

    let listed = client
        .list_bots(api.authed(ig::ListBotsRequest {}))
        .await
        .expect("listed")
        .into_inner()
        .bots;
    assert!(listed.is_empty(), "nothing saved: {listed:?}");
}
