//! Inbound media as links a User's client can fetch. Providers that keep media behind
//! their API send a reference (see [`Kind::media_reference`]); at acceptance it becomes
//! a gateway URL signed for the channel, `{public_url}/media/{channel id}/{id}?expires=
//! ..&sig=..`, and only when the link is fetched does the gateway resolve it at the
//! provider and stream the bytes back (docs/adr/0012-inbound-media-links.md).
use crate::config::GatewaySettings;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use ism_proto::types::v1::message_content::Kind as Content;
use sha2::Sha256;
use url::Url;
use uuid::Uuid;

use crate::credentials;
use crate::http::{AppState, refuse, unavailable};
use crate::providers::{self, Item, Kind};

/// How long a link works: about as long as the providers keep inbound media.
pub const LINK_LIFETIME: TimeDelta = TimeDelta::days(30);
/// What the signing keys are derived for, from the credentials keys.
const PURPOSE: &str = "ism-gateway media links v1";

/// Makes and checks the signed links.
pub struct MediaLinks {
    /// The gateway's public URL.
    base: Url,
    /// The current signing key first, then earlier ones still accepted.
    keys: Vec<[u8; 32]>,
}

/// Why a link is refused with 403.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Forged,
    Expired,
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::Forged => "missing or invalid media link signature",
            Refusal::Expired => "this media link has expired",
        }
    }
}

impl MediaLinks {
    pub fn new(public_url: &str, keys: Vec<[u8; 32]>) -> anyhow::Result<Self> {
        let base = Url::parse(public_url)
            .map_err(|e| anyhow::anyhow!("gateway.public_url is not a URL: {e}"))?;
        if base.cannot_be_a_base() || keys.is_empty() {
            anyhow::bail!("gateway.public_url must be an http(s) URL and a key must be set");
        }
        Ok(Self { base, keys })
    }

    /// Links under `public_url`, signed with keys derived from the credentials keys.
    pub fn from_settings(settings: &GatewaySettings, public_url: &str) -> anyhow::Result<Self> {
        Self::new(public_url, credentials::derived_keys(settings, PURPOSE)?)
    }

    fn mac(key: &[u8; 32], channel_id: Uuid, id: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(format!("{channel_id}\n{expires}\n{id}").as_bytes());
        mac
    }

    /// The link to the media `id` of `channel_id`, working until `expires`.
    pub fn link(&self, channel_id: Uuid, id: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let sig = Self::mac(&self.keys[0], channel_id, id, expires)
            .finalize()
            .into_bytes();
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked at construction")
            .pop_if_empty()
            .extend(["media", &channel_id.to_string(), id]);
        url.query_pairs_mut()
            .append_pair("expires", &expires.to_string())
            .append_pair("sig", &URL_SAFE_NO_PAD.encode(sig));
        url.into()
    }

    /// Whether `sig` signs this channel, id and expiry with any of our keys, and the
    /// link has not expired at `now`. Compared in constant time.
    pub fn verify(
        &self,
        channel_id: Uuid,
        id: &str,
        expires: i64,
        sig: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Refusal::Forged)?;
        let signed = self.keys.iter().any(|key| {
            Self::mac(key, channel_id, id, expires)
                .verify_slice(&sig)
                .is_ok()
        });
        if !signed {
            return Err(Refusal::Forged);
        }
        if expires <= now.timestamp() {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// `items` with each media reference of a `kind` channel replaced by its link.
    pub fn linked(&self, kind: Kind, channel_id: Uuid, mut items: Vec<Item>) -> Vec<Item> {
        let Some(prefix) = kind.media_reference() else {
            return items;
        };
        let expires = Utc::now() + LINK_LIFETIME;
        for item in &mut items {
            if let Item::Message(message) | Item::Echo(message) = item
                && let Some(Content::Media(media)) = &mut message.content.kind
                && let Some(id) = media.url.strip_prefix(prefix)
            {
                media.url = self.link(channel_id, id, expires);
            }
        }
        items
    }
}

/// `GET /media/{channel id}/{id}?expires=..&sig=..`: the media's bytes from the
/// provider. 403 for a forged or expired link, 404 for a channel that is gone, 502 with
/// the reason when the provider does not give the media.
pub async fn serve(
    State(state): State<AppState>,
    Path((channel_id, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let unknown = || refuse(StatusCode::NOT_FOUND, "unknown channel");
    let Ok(channel_id) = channel_id.parse::<Uuid>() else {
        return unknown();
    };
    let (mut expires, mut sig) = (None, String::new());
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "expires" => expires = value.parse::<i64>().ok(),
            "sig" => sig = value.into_owned(),
            _ => {}
        }
    }
    let verified = expires.ok_or(Refusal::Forged).and_then(|expires| {
        state
            .media
            .verify(channel_id, &id, expires, &sig, Utc::now())
    });
    if let Err(refusal) = verified {
        return refuse(StatusCode::FORBIDDEN, refusal.reason());
    }
    let found = match state
        .channels
        .get(&state.pool, &state.cipher, channel_id)
        .await
    {
        Ok(Some(found)) => found,
        Ok(None) => return unknown(),
        Err(e) => {
            tracing::error!(error = %e, "loading the channel failed");
            return unavailable();
        }
    };
    let Some(kind) = Kind::parse(&found.channel.kind) else {
        return unknown();
    };
    let (channel, credentials) = (&found.channel, &found.credentials);
    let base = providers::media::base_url(kind, &channel.api_base_url);
    let fetched = providers::media::fetch(&state.media_http, kind, base, credentials, &id).await;
    let label = kind.as_str();
    match fetched {
        Ok(response) => {
            metrics::counter!("ism_media_fetches_total", "provider" => label, "outcome" => "ok")
                .increment(1);
            stream(response)
        }
        Err(reason) => {
            metrics::counter!("ism_media_fetches_total", "provider" => label, "outcome" => "provider_error")
                .increment(1);
            tracing::warn!(%reason, provider = label, "inbound media could not be fetched");
            refuse(StatusCode::BAD_GATEWAY, reason)
        }
    }
}

/// The provider's answer passed on as it arrives, with its type and length.
fn stream(response: reqwest::Response) -> Response {
    let mut headers = HeaderMap::new();
    for name in [CONTENT_TYPE, CONTENT_LENGTH, CONTENT_DISPOSITION] {
        if let Some(value) = response.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    // The bytes behind a link never change; only the link's holder may keep them.
    headers.insert(
        CACHE_CONTROL,
        "private, max-age=86400".parse().expect("valid"),
    );
    let chunks = futures::stream::unfold(Some(response), |response| async move {
        let mut response = response?;
        match response.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    (StatusCode::OK, headers, Body::from_stream(chunks)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> MediaLinks {
        MediaLinks::new("https://chat.example.com/gw/", vec![[7; 32], [9; 32]]).unwrap()
    }

    fn parts(link: &str) -> (Uuid, String, i64, String) {
        let url = Url::parse(link).unwrap();
        let segments: Vec<String> = url.path_segments().unwrap().map(str::to_owned).collect();
        let query: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        let [.., channel, id] = segments.as_slice() else {
            panic!("{link}")
        };
        (
            channel.parse().unwrap(),
            percent_decoded(id),
            query["expires"].parse().unwrap(),
            query["sig"].clone(),
        )
    }

    fn percent_decoded(segment: &str) -> String {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    #[test]
    fn a_link_verifies_for_its_channel_id_and_expiry_only() {
        let links = links();
        let channel = Uuid::now_v7();
        let now = Utc::now();
        let link = links.link(channel, "AgAD/ab+c", now + TimeDelta::hours(1));
        assert!(link.starts_with(&format!("https://chat.example.com/gw/media/{channel}/")));
        let (c, id, expires, sig) = parts(&link);
        assert_eq!((c, id.as_str()), (channel, "AgAD/ab+c"));
        assert_eq!(links.verify(c, &id, expires, &sig, now), Ok(()));
        assert_eq!(
            links.verify(Uuid::now_v7(), &id, expires, &sig, now),
            Err(Refusal::Forged)
        );
        assert_eq!(
            links.verify(c, "other", expires, &sig, now),
            Err(Refusal::Forged)
        );
        assert_eq!(
            links.verify(c, &id, expires + 86_400, &sig, now),
            Err(Refusal::Forged),
            "the expiry cannot be extended"
        );
        assert_eq!(
            links.verify(c, &id, expires, &sig, now + TimeDelta::hours(2)),
            Err(Refusal::Expired)
        );
        assert_eq!(
            links.verify(c, &id, expires, "!!", now),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn links_signed_with_an_earlier_key_still_verify_while_it_is_kept() {
        let old = MediaLinks::new("https://chat.example.com", vec![[9; 32]]).unwrap();
        let channel = Uuid::now_v7();
        let now = Utc::now();
        let (c, id, expires, sig) = parts(&old.link(channel, "5", now + TimeDelta::days(1)));
        assert_eq!(links().verify(c, &id, expires, &sig, now), Ok(()));
        let rotated = MediaLinks::new("https://chat.example.com", vec![[7; 32]]).unwrap();
        assert_eq!(
            rotated.verify(c, &id, expires, &sig, now),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn only_the_channel_providers_references_become_links() {
        use crate::providers::InboundMessage;
        use ism_proto::types::v1::{Media, MessageContent};
        let message = |url: &str| {
            Item::Message(InboundMessage {
                external_message_id: "m".into(),
                sender_id: "s".into(),
                sender_name: String::new(),
                content: MessageContent {
                    kind: Some(Content::Media(Media {
                        r#type: 1,
                        url: url.into(),
                        caption: String::new(),
                    })),
                    ..Default::default()
                },
                sent_at: None,
            })
        };
        let url = |item: &Item| match item {
            Item::Message(m) => match &m.content.kind {
                Some(Content::Media(media)) => media.url.clone(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        let channel = Uuid::now_v7();
        let items = links().linked(
            Kind::WhatsApp,
            channel,
            vec![
                message("whatsapp:media/1013859600285441"),
                message("https://cdn.example.com/a.jpg"),
                message("telegram:file/AgAD"),
            ],
        );
        assert!(url(&items[0]).starts_with(&format!(
            "https://chat.example.com/gw/media/{channel}/1013859600285441?expires="
        )));
        assert_eq!(url(&items[1]), "https://cdn.example.com/a.jpg");
        assert_eq!(url(&items[2]), "telegram:file/AgAD");
        let untouched = links().linked(Kind::Viber, channel, vec![message("whatsapp:media/1")]);
        assert_eq!(url(&untouched[0]), "whatsapp:media/1");
    }
}
