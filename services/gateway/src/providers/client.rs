//! Calls to the providers' APIs that channel management makes: checking credentials
//! ("who am I") and Telegram's setWebhook / deleteWebhook; and the JSON answers other
//! calls read.
use std::time::Duration;

use serde_json::{Value, json};

use super::Kind;
use crate::credentials::Credentials;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A provider's answer: the HTTP status and the JSON body (Null when not JSON).
pub(super) async fn answer(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("cannot reach the provider: {e}"))?;
    let code = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    Ok((code, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

pub(super) fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Whether the provider accepts `credentials`: the account's name, or why not.
pub async fn check(
    http: &reqwest::Client,
    kind: Kind,
    base: &str,
    credentials: &Credentials,
) -> Result<String, String> {
    match credentials {
        Credentials::Custom { .. } => Ok("custom channels have no provider to check".into()),
        Credentials::Meta {
            account_id,
            access_token,
            ..
        } => {
            let (code, body) = answer(
                http.get(format!("{base}/{account_id}?fields=id,name,username"))
                    .bearer_auth(access_token),
            )
            .await?;
            if code == 200 {
                let name = text(&body, "/name");
                Ok(if name.is_empty() {
                    text(&body, "/username")
                } else {
                    name
                })
            } else {
                Err(format!(
                    "{} refused the credentials: {}",
                    provider(kind),
                    text(&body, "/error/message")
                ))
            }
        }
        Credentials::WhatsApp {
            phone_number_id,
            access_token,
            ..
        } => {
            let (code, body) = answer(
                http.get(format!(
                    "{base}/{phone_number_id}?fields=display_phone_number,verified_name"
                ))
                .bearer_auth(access_token),
            )
            .await?;
            if code == 200 {
                Ok(format!(
                    "{} ({})",
                    text(&body, "/verified_name"),
                    text(&body, "/display_phone_number")
                ))
            } else {
                Err(format!(
                    "WhatsApp refused the credentials: {}",
                    text(&body, "/error/message")
                ))
            }
        }
        Credentials::Telegram { bot_token, .. } => {
            let (_, body) = answer(http.get(format!("{base}/bot{bot_token}/getMe"))).await?;
            if body["ok"] == json!(true) {
                Ok(format!("@{}", text(&body, "/result/username")))
            } else {
                Err(format!(
                    "Telegram refused the bot token: {}",
                    text(&body, "/description")
                ))
            }
        }
        Credentials::Twilio {
            account_sid,
            auth_token,
            ..
        } => {
            let (code, body) = answer(
                http.get(format!("{base}/2010-04-01/Accounts/{account_sid}.json"))
                    .basic_auth(account_sid, Some(auth_token)),
            )
            .await?;
            if code == 200 {
                Ok(text(&body, "/friendly_name"))
            } else {
                Err(format!(
                    "Twilio refused the credentials: {}",
                    text(&body, "/message")
                ))
            }
        }
        Credentials::Line {
            channel_access_token,
            ..
        } => {
            let (code, body) = answer(
                http.get(format!("{base}/v2/bot/info"))
                    .bearer_auth(channel_access_token),
            )
            .await?;
            if code == 200 {
                Ok(text(&body, "/displayName"))
            } else {
                Err(format!(
                    "LINE refused the access token: {}",
                    text(&body, "/message")
                ))
            }
        }
        Credentials::Viber { auth_token } => {
            let (_, body) = answer(
                http.post(format!("{base}/pa/get_account_info"))
                    .header("x-viber-auth-token", auth_token)
                    .json(&json!({})),
            )
            .await?;
            if body["status"] == json!(0) {
                Ok(text(&body, "/name"))
            } else {
                Err(format!(
                    "Viber refused the auth token: {}",
                    text(&body, "/status_message")
                ))
            }
        }
    }
}

fn provider(kind: Kind) -> &'static str {
    match kind {
        Kind::Instagram => "Instagram",
        _ => "Facebook",
    }
}

/// Points the bot's webhook at `url`, with the secret Telegram will send back.
pub async fn telegram_set_webhook(
    http: &reqwest::Client,
    base: &str,
    bot_token: &str,
    url: &str,
    secret_token: &str,
) -> Result<(), String> {
    let (_, body) = answer(
        http.post(format!("{base}/bot{bot_token}/setWebhook"))
            .json(&json!({
                "url": url,
                "secret_token": secret_token,
                "allowed_updates": ["message", "edited_message", "callback_query"],
            })),
    )
    .await?;
    if body["ok"] == json!(true) {
        Ok(())
    } else {
        Err(format!(
            "Telegram refused setWebhook: {}",
            text(&body, "/description")
        ))
    }
}

/// Removes the bot's webhook; best effort when a channel is disconnected.
pub async fn telegram_delete_webhook(http: &reqwest::Client, base: &str, bot_token: &str) {
    if let Err(e) = answer(http.post(format!("{base}/bot{bot_token}/deleteWebhook"))).await {
        tracing::warn!(error = %e, "deleteWebhook failed");
    }
}
