//! Proto <-> domain conversion.
use ism_platform::convert::timestamp;
use ism_proto::integrations::v1 as pb;

use crate::backend::{Answer, Backend};
use crate::catalog::EventType;
use crate::states::DeliveryState;
use crate::store::{Attempt, Bot, Delivery, Endpoint};

pub fn event_type(t: &EventType) -> pb::WebhookEventType {
    pb::WebhookEventType {
        name: t.name.to_owned(),
        payload: t.payload.clone(),
    }
}

pub fn endpoint(e: Endpoint) -> pb::WebhookEndpoint {
    let state = if e.enabled {
        pb::WebhookEndpointState::Enabled
    } else {
        pb::WebhookEndpointState::Disabled
    };
    pb::WebhookEndpoint {
        id: e.id.to_string(),
        definition: Some(pb::WebhookEndpointDefinition {
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            channel_ids: e.channel_ids.iter().map(ToString::to_string).collect(),
            tags: e.tags,
            ordered: e.ordered,
            rate_limit_per_second: e.rate_limit_per_second as u32,
        }),
        state: state.into(),
        disabled_reason: e.disabled_reason,
        health: Some(pb::WebhookEndpointHealth {
            failing_since: e.failing_since.map(timestamp),
            last_error: e.last_error,
            last_success_time: e.last_success_at.map(timestamp),
            consecutive_failures: e.consecutive_failures,
        }),
        create_time: Some(timestamp(e.created_at)),
        update_time: Some(timestamp(e.updated_at)),
    }
}

pub fn delivery_state(state: DeliveryState) -> pb::WebhookDeliveryState {
    match state {
        DeliveryState::Pending => pb::WebhookDeliveryState::Pending,
        DeliveryState::Delivered => pb::WebhookDeliveryState::Delivered,
        DeliveryState::Failed => pb::WebhookDeliveryState::Failed,
        DeliveryState::Skipped => pb::WebhookDeliveryState::Skipped,
    }
}

/// The stored state of an API state; `None` for UNSPECIFIED or an unknown value.
pub fn delivery_state_of(value: i32) -> Option<DeliveryState> {
    match pb::WebhookDeliveryState::try_from(value).ok()? {
        pb::WebhookDeliveryState::Unspecified => None,
        pb::WebhookDeliveryState::Pending => Some(DeliveryState::Pending),
        pb::WebhookDeliveryState::Delivered => Some(DeliveryState::Delivered),
        pb::WebhookDeliveryState::Failed => Some(DeliveryState::Failed),
        pb::WebhookDeliveryState::Skipped => Some(DeliveryState::Skipped),
    }
}

pub fn attempt(a: Attempt) -> pb::WebhookAttempt {
    pb::WebhookAttempt {
        start_time: Some(timestamp(a.started_at)),
        duration_ms: a.duration_ms,
        status_code: a.status_code,
        error: a.error,
        response_body: a.response_body,
    }
}

pub fn delivery(d: Delivery) -> pb::WebhookDelivery {
    let last_attempt = match (d.started_at, d.duration_ms, d.status_code) {
        (Some(started_at), Some(duration_ms), Some(status_code)) => Some(attempt(Attempt {
            started_at,
            duration_ms,
            status_code,
            error: d.error.unwrap_or_default(),
            response_body: d.response_body.unwrap_or_default(),
        })),
        _ => None,
    };
    pb::WebhookDelivery {
        id: d.id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_id: d.event_id.to_string(),
        event_type: d.event_type,
        state: delivery_state(d.state).into(),
        attempts: d.attempts,
        next_attempt_time: (d.state == DeliveryState::Pending)
            .then(|| timestamp(d.next_attempt_at)),
        last_attempt,
        create_time: Some(timestamp(d.created_at)),
    }
}

/// The API's view of a backend: its settings, secrets blanked.
fn backend(backend: &Backend) -> pb::bot_definition::Backend {
    use pb::bot_definition::Backend as Pb;
    match backend.clone() {
        Backend::DialogflowEs {
            region,
            language,
            api_base_url,
            ..
        } => Pb::DialogflowEs(pb::DialogflowEs {
            service_account_json: String::new(),
            region,
            language,
            api_base_url,
        }),
        Backend::DialogflowCx {
            location,
            agent_id,
            environment,
            language,
            api_base_url,
            ..
        } => Pb::DialogflowCx(pb::DialogflowCx {
            service_account_json: String::new(),
            location,
            agent_id,
            environment,
            language,
            api_base_url,
        }),
        Backend::OpenAi {
            base_url,
            model,
            system_prompt,
            history_messages,
            ..
        } => Pb::Openai(pb::OpenAiCompatible {
            base_url,
            api_key: String::new(),
            model,
            system_prompt,
            history_messages,
        }),
    }
}

pub fn bot((bot, kept): (Bot, Backend)) -> pb::Bot {
    pb::Bot {
        id: bot.id.to_string(),
        definition: Some(pb::BotDefinition {
            name: bot.name,
            channel_ids: bot.channel_ids.iter().map(ToString::to_string).collect(),
            backend: Some(backend(&kept)),
            timeout_ms: bot.timeout_ms as u32,
        }),
        enabled: bot.enabled,
        health: Some(pb::BotHealth {
            last_error: bot.last_error,
            last_error_time: bot.last_error_at.map(timestamp),
        }),
        create_time: Some(timestamp(bot.created_at)),
        update_time: Some(timestamp(bot.updated_at)),
    }
}

pub fn answer(answer: Answer) -> pb::TestBotResponse {
    pb::TestBotResponse {
        replies: answer.replies,
        handover: answer.handover.is_some(),
        handover_reason: answer.handover.unwrap_or_default(),
        end: answer.end,
        tags: answer.tags,
    }
}
