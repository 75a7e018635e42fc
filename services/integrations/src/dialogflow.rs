//! Dialogflow ES (v2) and CX (v3) `detectIntent`, one session per conversation, mapped to
//! an [`Answer`]: text, quick replies, images, a handover (an ES `handover` action,
//! parameter or custom payload; a CX `liveAgentHandoff`), an end (an ES `end` action,
//! parameter or payload; a CX `endInteraction`), Tags (a `tags` parameter or payload) and
//! Contact Field values (a `contact_fields` object of them).
use std::time::Duration;

use ism_proto::types::v1::{Button, Media, MediaType, MessageContent, Text, message_content};
use serde_json::{Value, json};

use crate::backend::{Answer, Backend, Backends, BotError, Query};

/// Google's endpoint for a region or location (`global` or e.g. `europe-west1`).
fn google_base(region: &str) -> String {
    if region.is_empty() || region == "global" {
        "https://dialogflow.googleapis.com".to_owned()
    } else {
        format!("https://{region}-dialogflow.googleapis.com")
    }
}

fn base(api_base_url: &str, region: &str) -> String {
    if api_base_url.is_empty() {
        google_base(region)
    } else {
        api_base_url.trim_end_matches('/').to_owned()
    }
}

pub async fn detect_intent(
    backends: &Backends,
    backend: &Backend,
    query: &Query,
    timeout: Duration,
) -> Result<Answer, BotError> {
    let language = |default: &str| query.language.clone().unwrap_or_else(|| default.to_owned());
    let (account, url, body) = match backend {
        Backend::DialogflowEs {
            account,
            region,
            language: default,
            api_base_url,
        } => {
            let agent = if region.is_empty() || region == "global" {
                format!("projects/{}/agent", account.project_id)
            } else {
                format!("projects/{}/locations/{region}/agent", account.project_id)
            };
            let url = format!(
                "{}/v2/{agent}/sessions/{}:detectIntent",
                base(api_base_url, region),
                query.session
            );
            let body = json!({"queryInput": {"text": {"text": query.text, "languageCode": language(default)}}});
            (account, url, body)
        }
        Backend::DialogflowCx {
            account,
            location,
            agent_id,
            environment,
            language: default,
            api_base_url,
        } => {
            let mut agent = format!(
                "projects/{}/locations/{location}/agents/{agent_id}",
                account.project_id
            );
            if !environment.is_empty() {
                agent = format!("{agent}/environments/{environment}");
            }
            let url = format!(
                "{}/v3/{agent}/sessions/{}:detectIntent",
                base(api_base_url, location),
                query.session
            );
            let body = json!({"queryInput": {"text": {"text": query.text}, "languageCode": language(default)}});
            (account, url, body)
        }
        Backend::OpenAi { .. } => unreachable!("dialogflow is asked for Dialogflow backends only"),
    };
    let cached = backends.tokens.cached(account);
    let token = match &cached {
        Some(token) => token.clone(),
        None => backends.tokens.fetch(backends, account, timeout).await?,
    };
    let answer = match backends.post_json(&url, &token, &body, timeout).await {
        // Google stops accepting a token before its expiry when the key is rotated; a
        // refused call did nothing, so it is asked once more with a new token.
        Err(BotError::Credentials(_)) if cached.is_some() => {
            let token = backends.tokens.fetch(backends, account, timeout).await?;
            backends.post_json(&url, &token, &body, timeout).await?
        }
        answered => answered?,
    };
    let result = answer
        .get("queryResult")
        .ok_or_else(|| BotError::Refused("the answer has no queryResult".into()))?;
    Ok(match backend {
        Backend::DialogflowCx { .. } => map_cx(result),
        _ => map_es(result),
    })
}

fn text(body: &str) -> MessageContent {
    MessageContent {
        kind: Some(message_content::Kind::Text(Text {
            body: body.to_owned(),
        })),
        ..Default::default()
    }
}

/// Tags named by a `tags` value: one string or a list of them.
fn tags_of(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(tag)) if !tag.is_empty() => vec![tag.clone()],
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
        || matches!(value, Some(Value::String(s)) if s == "true")
}

/// What a custom payload, or the parameters, ask of the platform.
fn directives(object: &Value, answer: &mut Answer, reason: &str) {
    if is_true(object.get("handover")) || object.get("handover").is_some_and(Value::is_object) {
        let said = object.pointer("/handover/reason").and_then(Value::as_str);
        answer.handover = Some(said.unwrap_or(reason).to_owned());
    }
    if is_true(object.get("end")) {
        answer.end = true;
    }
    answer.tags.extend(tags_of(object.get("tags")));
    if let Some(fields) = object.get("contact_fields").and_then(Value::as_object) {
        answer.fields.extend(
            fields
                .iter()
                .filter(|(_, v)| v.is_string() || v.is_number() || v.is_boolean())
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
}

fn map_es(result: &Value) -> Answer {
    let mut answer = Answer::default();
    let messages = result["fulfillmentMessages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for message in &messages {
        // Messages for one platform (Facebook, Slack...) repeat the default ones.
        if message
            .get("platform")
            .and_then(Value::as_str)
            .is_some_and(|p| p != "PLATFORM_UNSPECIFIED")
        {
            continue;
        }
        if let Some(lines) = message.pointer("/text/text").and_then(Value::as_array) {
            answer.replies.extend(text_lines(lines));
        } else if let Some(quick) = message.get("quickReplies") {
            let mut reply = text(quick["title"].as_str().unwrap_or_default());
            reply.buttons = quick["quickReplies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|option| Button {
                    title: option.to_owned(),
                    payload: option.to_owned(),
                    url: String::new(),
                })
                .collect();
            answer.replies.push(reply);
        } else if let Some(image) = message.get("image") {
            answer.replies.push(MessageContent {
                kind: Some(message_content::Kind::Media(Media {
                    r#type: MediaType::Image.into(),
                    url: image["imageUri"].as_str().unwrap_or_default().to_owned(),
                    caption: image["accessibilityText"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                })),
                ..Default::default()
            });
        } else if let Some(payload) = message.get("payload") {
            directives(payload, &mut answer, "the agent asked for a human");
        }
    }
    if messages.is_empty()
        && let Some(fulfillment) = result["fulfillmentText"].as_str().filter(|t| !t.is_empty())
    {
        answer.replies.push(text(fulfillment));
    }
    match result["action"].as_str() {
        Some("handover") => {
            answer.handover = answer
                .handover
                .take()
                .or(Some("the agent asked for a human".into()))
        }
        Some("end") => answer.end = true,
        _ => {}
    }
    if let Some(parameters) = result.get("parameters") {
        directives(parameters, &mut answer, "the agent asked for a human");
    }
    answer.tags.sort();
    answer.tags.dedup();
    answer
}

/// The non-empty lines of a text response message, one reply each.
fn text_lines(lines: &[Value]) -> impl Iterator<Item = MessageContent> + '_ {
    lines
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| !l.is_empty())
        .map(text)
}

fn map_cx(result: &Value) -> Answer {
    let mut answer = Answer::default();
    for message in result["responseMessages"].as_array().into_iter().flatten() {
        if let Some(lines) = message.pointer("/text/text").and_then(Value::as_array) {
            answer.replies.extend(text_lines(lines));
        } else if let Some(handoff) = message.get("liveAgentHandoff") {
            let said = handoff.pointer("/metadata/reason").and_then(Value::as_str);
            answer.handover = Some(
                said.unwrap_or("the agent asked for a live agent")
                    .to_owned(),
            );
        } else if message.get("endInteraction").is_some() {
            answer.end = true;
        } else if let Some(payload) = message.get("payload") {
            directives(payload, &mut answer, "the agent asked for a live agent");
        }
    }
    if let Some(parameters) = result.get("parameters") {
        directives(parameters, &mut answer, "the agent asked for a live agent");
    }
    answer.tags.sort();
    answer.tags.dedup();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: &MessageContent) -> &str {
        match &reply.kind {
            Some(message_content::Kind::Text(t)) => &t.body,
            _ => "",
        }
    }

    #[test]
    fn es_answers_map_texts_quick_replies_handover_and_tags() {
        let answer = map_es(&json!({
            "fulfillmentText": "ignored when there are messages",
            "fulfillmentMessages": [
                {"text": {"text": ["Hello!", "How can I help?"]}},
                {"platform": "FACEBOOK", "text": {"text": ["Hello!"]}},
                {"quickReplies": {"title": "Pick one", "quickReplies": ["Sales", "Support"]}},
                {"payload": {"tags": ["lead"]}}
            ],
            "action": "handover",
            "parameters": {"tags": "vip", "contact_fields": {"plan": "pro", "seats": 5, "nested": {}}}
        }));
        let bodies: Vec<&str> = answer.replies.iter().map(body).collect();
        assert_eq!(bodies, ["Hello!", "How can I help?", "Pick one"]);
        assert_eq!(answer.replies[2].buttons.len(), 2);
        assert_eq!(
            answer.handover.as_deref(),
            Some("the agent asked for a human")
        );
        assert_eq!(answer.tags, ["lead", "vip"]);
        assert_eq!(
            answer.fields,
            [
                ("plan".to_owned(), json!("pro")),
                ("seats".to_owned(), json!(5))
            ]
        );
        assert!(!answer.end);
        let plain = map_es(&json!({"fulfillmentText": "Only this", "parameters": {"end": true}}));
        assert_eq!(
            plain.replies.iter().map(body).collect::<Vec<_>>(),
            ["Only this"]
        );
        assert!(plain.end);
    }

    #[test]
    fn cx_answers_map_live_agent_handoff_and_end_interaction() {
        let answer = map_cx(&json!({
            "responseMessages": [
                {"text": {"text": ["One moment"]}},
                {"liveAgentHandoff": {"metadata": {"reason": "billing question"}}},
                {"endInteraction": {}}
            ]
        }));
        assert_eq!(
            answer.replies.iter().map(body).collect::<Vec<_>>(),
            ["One moment"]
        );
        assert_eq!(answer.handover.as_deref(), Some("billing question"));
        assert!(answer.end);
    }

    #[test]
    fn regional_endpoints_follow_the_region() {
        assert_eq!(base("", "global"), "https://dialogflow.googleapis.com");
        assert_eq!(
            base("", "europe-west1"),
            "https://europe-west1-dialogflow.googleapis.com"
        );
        assert_eq!(
            base("http://127.0.0.1:9/", "europe-west1"),
            "http://127.0.0.1:9"
        );
    }
}
