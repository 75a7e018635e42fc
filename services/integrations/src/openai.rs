//! Any OpenAI-compatible chat-completions API: the system prompt and the conversation's
//! last messages in, the assistant's text out; a `handoff` tool the model calls to hand
//! the conversation to a human.
use std::time::Duration;

use ism_proto::types::v1::{MessageContent, Text, message_content};
use serde_json::{Value, json};

use crate::backend::{Answer, Backend, Backends, BotError, Query, Speaker, answer_json};

/// The tool a model calls to hand over.
pub const HANDOFF_TOOL: &str = "handoff";

fn handoff_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": HANDOFF_TOOL,
            "description": "Hand the conversation to a human agent, e.g. when the customer asks for one or the question is beyond you.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why, in a few words."}},
                "required": ["reason"]
            }
        }
    })
}

pub async fn complete(
    backends: &Backends,
    backend: &Backend,
    query: &Query,
    timeout: Duration,
) -> Result<Answer, BotError> {
    let Backend::OpenAi {
        base_url,
        api_key,
        model,
        system_prompt,
        ..
    } = backend
    else {
        unreachable!("openai is asked for OpenAI-compatible backends only");
    };
    let mut messages = Vec::new();
    if !system_prompt.is_empty() {
        messages.push(json!({"role": "system", "content": system_prompt}));
    }
    for (speaker, content) in &query.history {
        let role = match speaker {
            Speaker::Contact => "user",
            Speaker::Business => "assistant",
        };
        messages.push(json!({"role": role, "content": content}));
    }
    let body = json!({"model": model, "messages": messages, "tools": [handoff_tool()]});
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let answer = backends.post_json(&url, api_key, &body, timeout).await?;
    map(&answer)
}

fn map(answer: &Value) -> Result<Answer, BotError> {
    let message = answer
        .pointer("/choices/0/message")
        .ok_or_else(|| BotError::Refused("the answer has no choices[0].message".into()))?;
    let mut mapped = Answer::default();
    if let Some(content) = message["content"].as_str().filter(|c| !c.trim().is_empty()) {
        mapped.replies.push(MessageContent {
            kind: Some(message_content::Kind::Text(Text {
                body: content.to_owned(),
            })),
            ..Default::default()
        });
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        if call.pointer("/function/name").and_then(Value::as_str) == Some(HANDOFF_TOOL) {
            let arguments: Value = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or(Value::Null);
            let reason = arguments["reason"]
                .as_str()
                .unwrap_or("the model asked for a human");
            mapped.handover = Some(reason.to_owned());
        }
    }
    Ok(mapped)
}

/// Whether the API takes the key: its model list (`GET <base_url>/models`).
pub async fn check(
    backends: &Backends,
    backend: &Backend,
    timeout: Duration,
) -> Result<(), BotError> {
    let Backend::OpenAi {
        base_url, api_key, ..
    } = backend
    else {
        unreachable!("openai checks OpenAI-compatible backends only");
    };
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    backends
        .egress
        .check_url(&url)
        .map_err(|refusal| BotError::Refused(format!("{url} {refusal}")))?;
    let sent = backends
        .client
        .get(&url)
        .bearer_auth(api_key)
        .timeout(timeout)
        .send()
        .await;
    answer_json(sent, timeout).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_and_a_handoff_call_map_to_an_answer() {
        let text = map(&json!({"choices": [{"message": {"role": "assistant", "content": "Hi!"}}]}))
            .unwrap();
        assert_eq!(text.replies.len(), 1);
        assert_eq!(text.handover, None);
        let handoff = map(&json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "handoff", "arguments": "{\"reason\":\"wants a human\"}"}}
        ]}, "finish_reason": "tool_calls"}]}))
        .unwrap();
        assert!(handoff.replies.is_empty());
        assert_eq!(handoff.handover.as_deref(), Some("wants a human"));
        assert!(map(&json!({"choices": []})).is_err());
    }
}
