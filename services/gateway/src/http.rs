//! The gateway's HTTP side: provider webhooks, workflows' incoming webhooks and the
//! health endpoints.
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ism_platform::convert::timestamp;
use ism_platform::events::{Topic, TracedEvent, topics};
use ism_platform::health::Readiness;
use ism_platform::peer::Peer;
use ism_platform::telemetry;
use ism_proto::events::v1::{MessageReceived, Sender};
use ism_proto::types::v1::DeliveryStatus;
use ism_proto::workflows::v1::workflow_service_client::WorkflowServiceClient;
use serde_json::json;
use sqlx::PgPool;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;
use uuid::Uuid;

use crate::channel_cache::{ChannelCache, Connected};
use crate::credentials::Cipher;
use crate::delivery;
use crate::hooks;
use crate::intake::Intake;
use crate::media::{self, MediaLinks};
use crate::providers::{
    self, Handshake, InboundMessage, Item, Kind, Receipt, ReceiptTarget, Webhook,
};
use crate::store::{self, Arrival, Channel};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// What `/readyz` answers by.
    pub readiness: Readiness,
    pub cipher: Arc<Cipher>,
    pub channels: ChannelCache,
    pub intake: Intake,
    /// The gateway's public URL, without a trailing slash: Twilio signs the URL it called.
    pub public_url: String,
    /// Signed links to inbound media the providers keep.
    pub media: Arc<MediaLinks>,
    /// Fetches those media from the providers.
    pub media_http: reqwest::Client,
    /// Takes workflows' incoming webhooks.
    pub workflows: Peer<WorkflowServiceClient<tonic::transport::Channel>>,
}

/// Routes for webhooks (bodies over `body_limit` bytes are refused with 413) and health.
pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route(
            "/webhooks/{provider}/{channel_id}",
            post(webhook).get(verification),
        )
        .route("/media/{channel_id}/{id}", get(media::serve))
        .route(
            "/hooks/workflows/{workspace_id}/{workflow_id}",
            post(hooks::workflow),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        // Refused from the declared Content-Length before reading a byte (a chunked body
        // is cut off at the limit), rather than after buffering up to the limit.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(body_limit))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.readiness.is_ready() {
        "ready".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: stopping, or the database or the broker does not answer",
        )
            .into_response()
    }
}

/// A JSON error answer with a reason.
pub(crate) fn refuse(code: StatusCode, reason: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": reason.into() }))).into_response()
}

pub(crate) fn unavailable() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily unavailable; retry",
    )
}

/// The channel a webhook URL names, with its credentials, or the answer to give.
async fn connected(
    state: &AppState,
    provider: &str,
    channel_id: &str,
) -> Result<(Kind, Arc<Connected>), Response> {
    let not_found = || refuse(StatusCode::NOT_FOUND, "unknown channel");
    let kind = Kind::parse(provider).ok_or_else(not_found)?;
    let id = channel_id.parse::<Uuid>().map_err(|_| not_found())?;
    match state.channels.get(&state.pool, &state.cipher, id).await {
        Ok(Some(found)) if found.channel.kind == kind.as_str() => Ok((kind, found)),
        Ok(_) => Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, "loading the channel failed");
            Err(unavailable())
        }
    }
}

async fn verification(
    State(state): State<AppState>,
    Path((provider, channel_id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let (kind, found) = match connected(&state, &provider, &channel_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match providers::handshake(kind, &found.credentials, uri.query().unwrap_or_default()) {
        Handshake::Accept(challenge) => (StatusCode::OK, challenge).into_response(),
        Handshake::Forbidden => {
            tracing::warn!(provider, "verification handshake with a wrong verify token");
            refuse(StatusCode::FORBIDDEN, "wrong hub.verify_token")
        }
        Handshake::BadRequest(reason) => refuse(StatusCode::BAD_REQUEST, reason),
        Handshake::NotSupported => refuse(StatusCode::METHOD_NOT_ALLOWED, "POST webhooks here"),
    }
}

async fn webhook(
    State(state): State<AppState>,
    Path((provider, channel_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let label = Kind::parse(&provider).map_or("unknown", Kind::as_str);
    let span = tracing::info_span!(
        "webhook.receive",
        otel.name = "POST /webhooks/{provider}/{channel_id}",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = "POST",
        http.route = "/webhooks/{provider}/{channel_id}",
        http.response.status_code = tracing::field::Empty,
        provider = label,
        channel_id = %channel_id,
        trace_id = tracing::field::Empty,
    );
    telemetry::adopt_parent(&span, telemetry::context_from_http(&headers));
    let started = Instant::now();
    let response = receive(&state, &provider, &channel_id, &uri, &headers, &body)
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let code = response.status().as_u16().to_string();
    metrics::counter!("ism_webhooks_total", "provider" => label, "code" => code).increment(1);
    metrics::histogram!("ism_webhook_seconds", "provider" => label)
        .record(started.elapsed().as_secs_f64());
    response
}

/// What storing a webhook's items came to.
#[derive(Default)]
struct Stored {
    accepted: Vec<Uuid>,
    duplicates: usize,
    receipts: usize,
    ignored: usize,
}

async fn receive(
    state: &AppState,
    provider: &str,
    channel_id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (kind, found) = match connected(state, provider, channel_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(reason) = providers::check_content_type(kind, headers) {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason);
    }
    let url = format!(
        "{}{}",
        state.public_url,
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    let webhook = Webhook {
        headers,
        body,
        url: &url,
    };
    if let Err(reason) = providers::verify(kind, &found.credentials, &webhook) {
        tracing::warn!(%reason, "webhook signature refused");
        return refuse(StatusCode::UNAUTHORIZED, reason);
    }
    let items = match providers::parse(kind, body) {
        Ok(items) => items,
        Err(reason) => {
            tracing::warn!(%reason, "webhook body refused");
            return refuse(StatusCode::BAD_REQUEST, reason);
        }
    };
    let items = state.media.linked(kind, found.channel.id, items);
    let stored = match store_items(state, kind, &found.channel, items).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(error = %e, "storing the webhook failed");
            return unavailable();
        }
    };
    match kind {
        Kind::Custom => match stored.accepted.first() {
            Some(id) => (
                StatusCode::OK,
                axum::Json(json!({ "status": "accepted", "id": id })),
            )
                .into_response(),
            None => (StatusCode::OK, axum::Json(json!({ "status": "duplicate" }))).into_response(),
        },
        // An empty TwiML answer: acknowledged, no automatic reply.
        Kind::TwilioSms | Kind::TwilioWhatsApp => (
            StatusCode::OK,
            [(CONTENT_TYPE, "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
            .into_response(),
        _ => (
            StatusCode::OK,
            axum::Json(json!({
                "status": "ok",
                "accepted": stored.accepted.len(),
                "duplicates": stored.duplicates,
                "receipts": stored.receipts,
                "ignored": stored.ignored,
            })),
        )
            .into_response(),
    }
}

/// Stores each item durably: a provider retry after a partial failure finds the stored
/// ones as duplicates.
async fn store_items(
    state: &AppState,
    kind: Kind,
    channel: &Channel,
    items: Vec<Item>,
) -> Result<Stored, crate::Error> {
    let mut stored = Stored::default();
    for item in items {
        match item {
            Item::Message(message) => {
                match accept(
                    state,
                    kind,
                    channel,
                    message,
                    &topics::MESSAGE_RECEIVED,
                    false,
                )
                .await?
                {
                    Some(id) => stored.accepted.push(id),
                    None => stored.duplicates += 1,
                }
            }
            Item::Echo(message) => {
                if store::is_our_message(&state.pool, channel.id, &message.external_message_id)
                    .await?
                {
                    stored.duplicates += 1;
                    continue;
                }
                match accept(state, kind, channel, message, &topics::MESSAGE_ECHOED, true).await? {
                    Some(id) => stored.accepted.push(id),
                    None => stored.duplicates += 1,
                }
            }
            Item::Receipt(receipt) => {
                stored.receipts += apply_receipt(state, channel, receipt).await?;
            }
            Item::Ignored(what) => {
                tracing::info!(what, "webhook event acknowledged and not handled");
                stored.ignored += 1;
            }
        }
    }
    Ok(stored)
}

async fn accept(
    state: &AppState,
    kind: Kind,
    channel: &Channel,
    message: InboundMessage,
    topic: &Topic<MessageReceived>,
    echo: bool,
) -> Result<Option<Uuid>, crate::Error> {
    let inbound_id = Uuid::now_v7();
    let payload = MessageReceived {
        inbound_id: inbound_id.to_string(),
        channel_id: channel.id.to_string(),
        channel_type: kind.channel_type() as i32,
        external_message_id: message.external_message_id.clone(),
        sender: Some(Sender {
            external_id: message.sender_id.clone(),
            display_name: message.sender_name,
        }),
        content: Some(message.content),
        sent_at: Some(timestamp(message.sent_at.unwrap_or_else(chrono::Utc::now))),
        echo,
    };
    // Keyed by the Contact so one person's messages are applied in order.
    let key = format!("{}:{}", channel.id, message.sender_id);
    let event = topic.event(channel.workspace_id, &key, &payload);
    let sent_at = message.sent_at.unwrap_or_else(chrono::Utc::now);
    let arrival = Arrival {
        workspace_id: channel.workspace_id,
        channel_id: channel.id,
        window: (kind.has_reply_window() && !echo).then_some((message.sender_id, sent_at)),
        external_message_id: message.external_message_id,
        event: TracedEvent::here(event),
    };
    let accepted = state.intake.accept(arrival).await?;
    Ok(accepted.then_some(inbound_id))
}

async fn apply_receipt(
    state: &AppState,
    channel: &Channel,
    receipt: Receipt,
) -> Result<usize, crate::Error> {
    let name = match receipt.status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Read => "read",
        DeliveryStatus::Failed => "failed",
        // `sent` was reported when the provider accepted the message.
        _ => return Ok(0),
    };
    let status = if receipt.status == DeliveryStatus::Failed {
        delivery::Status::Failed(&receipt.reason, receipt.failure)
    } else {
        delivery::Status::Reached(receipt.status)
    };
    let event = |row: &store::Receipted| {
        delivery::status_event(
            row.workspace_id,
            row.message_id,
            channel.id,
            &row.requested_by,
            status,
            &row.external_message_id,
        )
    };
    let (ids, watermark) = match &receipt.target {
        ReceiptTarget::Ids(ids) => (Some(ids.as_slice()), None),
        ReceiptTarget::Watermark { recipient, until } => (None, Some((recipient.as_str(), *until))),
    };
    store::apply_receipt(
        &state.pool,
        channel.id,
        name,
        &receipt.reason,
        ids,
        watermark,
        event,
    )
    .await
}
