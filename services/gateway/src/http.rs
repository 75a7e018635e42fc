//! The gateway's HTTP side: provider webhooks and the health endpoints.
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ism_platform::convert::timestamp;
use ism_platform::{events, telemetry};
use ism_proto::events::v1::{MessageReceived, Sender};
use ism_proto::types::v1::ChannelType;
use serde_json::json;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::{custom, signature, store};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

/// Routes for webhooks (bodies over `body_limit` bytes are refused with 413) and health.
pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/webhooks/custom/{channel_id}", post(custom_webhook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => "ready".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

/// A JSON error answer with a reason.
fn refuse(code: StatusCode, reason: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": reason.into() }))).into_response()
}

async fn custom_webhook(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = tracing::info_span!(
        "webhook.receive",
        otel.kind = "server",
        provider = "custom",
        channel_id = %channel_id,
        trace_id = tracing::field::Empty,
    );
    telemetry::adopt_parent(&span, telemetry::context_from_http(&headers));
    let started = Instant::now();
    let response = receive_custom(&state, &channel_id, &headers, &body)
        .instrument(span)
        .await;
    let code = response.status().as_u16().to_string();
    metrics::counter!("ism_webhooks_total", "provider" => "custom", "code" => code).increment(1);
    metrics::histogram!("ism_webhook_seconds", "provider" => "custom")
        .record(started.elapsed().as_secs_f64());
    response
}

async fn receive_custom(
    state: &AppState,
    channel_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let not_found = || refuse(StatusCode::NOT_FOUND, "unknown channel");
    let Ok(channel_id) = channel_id.parse::<Uuid>() else {
        return not_found();
    };
    let channel = match store::channel_by_id(&state.pool, channel_id).await {
        Ok(Some(channel)) if channel.kind == "custom" => channel,
        Ok(_) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "loading the channel failed");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable; retry",
            );
        }
    };
    let signed = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| signature::verify(channel.webhook_secret.as_bytes(), body, sig));
    if !signed {
        tracing::warn!("webhook signature missing or wrong");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or invalid X-ISM-Signature",
        );
    }
    let (webhook, content) = match custom::parse_inbound(body) {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::warn!(%reason, "webhook body refused");
            return refuse(StatusCode::BAD_REQUEST, reason);
        }
    };
    let inbound_id = Uuid::now_v7();
    let payload = MessageReceived {
        inbound_id: inbound_id.to_string(),
        channel_id: channel.id.to_string(),
        channel_type: ChannelType::Custom as i32,
        external_message_id: webhook.message_id.clone(),
        sender: Some(Sender {
            external_id: webhook.from.id.clone(),
            display_name: webhook.from.name.clone(),
        }),
        content: Some(content),
        sent_at: Some(timestamp(
            webhook.timestamp.unwrap_or_else(chrono::Utc::now),
        )),
    };
    // Keyed by sender so one person's messages are applied in order.
    let key = format!("{}:{}", channel.id, webhook.from.id);
    let event = events::new_event(
        "gateway.message.received",
        channel.workspace_id,
        &key,
        &payload,
    );
    match store::accept_inbound(&state.pool, &channel, &webhook.message_id, &event).await {
        Ok(true) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "accepted", "id": inbound_id })),
        )
            .into_response(),
        Ok(false) => (StatusCode::OK, axum::Json(json!({ "status": "duplicate" }))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "storing the webhook failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable; retry",
            )
        }
    }
}
