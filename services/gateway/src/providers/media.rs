//! Inbound media the providers keep behind their APIs, fetched with the channel's
//! credentials: WhatsApp Cloud API media ids (`GET /{media id}` gives a short-lived URL,
//! downloaded with the same token), Telegram file ids (`getFile` gives a path under
//! `/file/bot{token}/`), LINE message contents (`GET /v2/bot/message/{id}/content`).
use serde_json::{Value, json};
use url::Url;

use super::client::{answer, text};
use super::{Kind, whatsapp};
use crate::credentials::Credentials;

/// Where LINE serves message contents: a host of its own, not the Messaging API's.
const LINE_CONTENT_BASE_URL: &str = "https://api-data.line.me";

/// The base URL a channel's media are fetched from: its `api_base_url` when set (a
/// regional endpoint or a local stand-in), else the provider's.
pub fn base_url(kind: Kind, configured: &str) -> &str {
    match kind {
        Kind::Line if configured.is_empty() => LINE_CONTENT_BASE_URL,
        _ => crate::channels::api_base_url(Some(kind), configured),
    }
}

/// The provider's answer carrying the bytes of the media `id`, its body not yet read;
/// or, in words, why the provider would not give it.
pub async fn fetch(
    http: &reqwest::Client,
    kind: Kind,
    base: &str,
    credentials: &Credentials,
    id: &str,
) -> Result<reqwest::Response, String> {
    let (provider, request) = match (kind, credentials) {
        (Kind::WhatsApp, Credentials::WhatsApp { access_token, .. }) => {
            let (code, body) = answer(http.get(at(base, &[id])?).bearer_auth(access_token)).await?;
            let url = text(&body, "/url");
            if code != 200 || url.is_empty() {
                let reason = match body.pointer("/error/code").and_then(Value::as_i64) {
                    Some(code) => whatsapp::error_reason(code, &text(&body, "/error/message")),
                    None => format!("WhatsApp answered HTTP {code}"),
                };
                return Err(format!("WhatsApp cannot give this media: {reason}"));
            }
            ("WhatsApp", http.get(url).bearer_auth(access_token))
        }
        (Kind::Telegram, Credentials::Telegram { bot_token, .. }) => {
            let mut lookup = at(base, &[&format!("bot{bot_token}"), "getFile"])?;
            lookup.query_pairs_mut().append_pair("file_id", id);
            let (_, body) = answer(http.get(lookup)).await?;
            let path = text(&body, "/result/file_path");
            if body["ok"] != json!(true) || path.is_empty() {
                return Err(format!(
                    "Telegram cannot give this file: {}",
                    text(&body, "/description")
                ));
            }
            let mut segments = vec!["file".to_owned(), format!("bot{bot_token}")];
            segments.extend(path.split('/').map(str::to_owned));
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            ("Telegram", http.get(at(base, &segments)?))
        }
        (
            Kind::Line,
            Credentials::Line {
                channel_access_token,
                ..
            },
        ) => (
            "LINE",
            http.get(at(base, &["v2", "bot", "message", id, "content"])?)
                .bearer_auth(channel_access_token),
        ),
        _ => return Err("this channel's provider keeps no media for us".into()),
    };
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {provider}: {e}"))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let code = response.status().as_u16();
    let body: Value =
        serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    let detail = ["/message", "/error/message", "/description"]
        .iter()
        .map(|p| text(&body, p))
        .find(|d| !d.is_empty())
        .unwrap_or_default();
    Err(format!(
        "{provider} answered HTTP {code} for the media: {detail}"
    ))
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
fn at(base: &str, segments: &[&str]) -> Result<Url, String> {
    let mut url =
        Url::parse(base).map_err(|e| format!("the channel's API URL {base:?} is invalid: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("the channel's API URL {base:?} cannot have a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_contents_come_from_its_data_host_unless_the_channel_names_one() {
        assert_eq!(base_url(Kind::Line, ""), "https://api-data.line.me");
        assert_eq!(
            base_url(Kind::Line, "http://127.0.0.1:9/"),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            base_url(Kind::WhatsApp, ""),
            Kind::WhatsApp.default_api_base_url()
        );
    }

    #[test]
    fn ids_stay_one_path_segment_under_the_base() {
        let url = at("https://graph.facebook.com/v21.0", &["../me?x", "a b"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.facebook.com/v21.0/..%2Fme%3Fx/a%20b"
        );
    }
}
