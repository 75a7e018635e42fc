//! Workflows' incoming webhooks: a signed post to `/hooks/workflows/<workspace>/<workflow>`
//! is handed to the workflows service, which checks the signature and starts the run; the
//! gateway only carries it, so outside systems reach one public port.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ism_proto::workflows::v1::ReceiveWebhookRequest;
use serde_json::json;
use tonic::Code;
use uuid::Uuid;

use crate::http::{AppState, refuse, unavailable};

pub async fn workflow(
    State(state): State<AppState>,
    Path((workspace_id, workflow_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(workspace_id) = workspace_id.parse::<Uuid>() else {
        return refuse(StatusCode::NOT_FOUND, "unknown workflow");
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let request = ReceiveWebhookRequest {
        workflow_id,
        webhook_id: header("webhook-id"),
        webhook_timestamp: header("webhook-timestamp"),
        webhook_signature: header("webhook-signature"),
        body: body.to_vec(),
    };
    let answer = state
        .workflows
        .answer(workspace_id, request, |mut c, r| async move {
            c.receive_webhook(r).await
        })
        .await;
    match answer {
        Ok(Ok(taken)) if taken.run_id.is_empty() => (
            StatusCode::OK,
            axum::Json(json!({ "run_id": null, "skipped": taken.skipped })),
        )
            .into_response(),
        Ok(Ok(taken)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "run_id": taken.run_id })),
        )
            .into_response(),
        Ok(Err(status)) => {
            let code = match status.code() {
                Code::NotFound => StatusCode::NOT_FOUND,
                Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                Code::InvalidArgument => StatusCode::BAD_REQUEST,
                Code::FailedPrecondition => StatusCode::CONFLICT,
                Code::Unavailable | Code::DeadlineExceeded | Code::Aborted => {
                    return unavailable();
                }
                _ => {
                    tracing::error!(?status, "workflows refused a webhook");
                    return unavailable();
                }
            };
            refuse(code, status.message())
        }
        Err(e) => {
            tracing::warn!(error = %e, "a workflow webhook could not be handed on");
            unavailable()
        }
    }
}
