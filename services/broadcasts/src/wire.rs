//! Proto ↔ domain conversion.
use std::collections::HashMap;

use ism_platform::convert::timestamp;
use ism_proto::broadcasts::v1 as pb;
use ism_proto::types::v1::MessageContent;
use prost::Message;
use uuid::Uuid;

use crate::states::{Missed, RecipientStatus, State};
use crate::store::{Broadcast, Recipient};

pub fn state(state: State) -> pb::BroadcastState {
    match state {
        State::Draft => pb::BroadcastState::Draft,
        State::Scheduled => pb::BroadcastState::Scheduled,
        State::Running => pb::BroadcastState::Running,
        State::Paused => pb::BroadcastState::Paused,
        State::Completed => pb::BroadcastState::Completed,
        State::Cancelled => pb::BroadcastState::Cancelled,
        State::Failed => pb::BroadcastState::Failed,
    }
}

/// The stored state of an API state; `None` for UNSPECIFIED or an unknown number.
pub fn state_of(value: i32) -> Option<State> {
    Some(match pb::BroadcastState::try_from(value).ok()? {
        pb::BroadcastState::Unspecified => return None,
        pb::BroadcastState::Draft => State::Draft,
        pb::BroadcastState::Scheduled => State::Scheduled,
        pb::BroadcastState::Running => State::Running,
        pb::BroadcastState::Paused => State::Paused,
        pb::BroadcastState::Completed => State::Completed,
        pb::BroadcastState::Cancelled => State::Cancelled,
        pb::BroadcastState::Failed => State::Failed,
    })
}

pub fn missed(missed: Missed) -> pb::MissedSchedule {
    match missed {
        Missed::SendLate => pb::MissedSchedule::SendLate,
        Missed::Skip => pb::MissedSchedule::Skip,
    }
}

/// The stored policy of an API one (UNSPECIFIED sends late); `None` for an unknown number.
pub fn missed_of(value: i32) -> Option<Missed> {
    Some(match pb::MissedSchedule::try_from(value).ok()? {
        pb::MissedSchedule::Unspecified | pb::MissedSchedule::SendLate => Missed::SendLate,
        pb::MissedSchedule::Skip => Missed::Skip,
    })
}

pub fn recipient_status(status: RecipientStatus) -> pb::RecipientStatus {
    match status {
        RecipientStatus::Pending => pb::RecipientStatus::Pending,
        RecipientStatus::Queued => pb::RecipientStatus::Queued,
        RecipientStatus::Sent => pb::RecipientStatus::Sent,
        RecipientStatus::Delivered => pb::RecipientStatus::Delivered,
        RecipientStatus::Read => pb::RecipientStatus::Read,
        RecipientStatus::Failed => pb::RecipientStatus::Failed,
        RecipientStatus::Skipped => pb::RecipientStatus::Skipped,
    }
}

/// The stored status of an API one; `None` for UNSPECIFIED or an unknown number.
pub fn recipient_status_of(value: i32) -> Option<RecipientStatus> {
    Some(match pb::RecipientStatus::try_from(value).ok()? {
        pb::RecipientStatus::Unspecified => return None,
        pb::RecipientStatus::Pending => RecipientStatus::Pending,
        pb::RecipientStatus::Queued => RecipientStatus::Queued,
        pb::RecipientStatus::Sent => RecipientStatus::Sent,
        pb::RecipientStatus::Delivered => RecipientStatus::Delivered,
        pb::RecipientStatus::Read => RecipientStatus::Read,
        pb::RecipientStatus::Failed => RecipientStatus::Failed,
        pb::RecipientStatus::Skipped => RecipientStatus::Skipped,
    })
}

/// Stats of one broadcast from its recipients' (status, reason, count) rows.
pub fn stats<'a>(
    outcomes: impl IntoIterator<Item = (RecipientStatus, &'a str, i64)>,
) -> pb::BroadcastStats {
    let mut stats = pb::BroadcastStats::default();
    for (status, reason, n) in outcomes {
        stats.recipients += n;
        match status {
            RecipientStatus::Pending => stats.pending += n,
            RecipientStatus::Queued => stats.queued += n,
            RecipientStatus::Sent => stats.sent += n,
            RecipientStatus::Delivered => {
                stats.sent += n;
                stats.delivered += n;
            }
            RecipientStatus::Read => {
                stats.sent += n;
                stats.delivered += n;
                stats.read += n;
            }
            RecipientStatus::Failed => *stats.failed.entry(reason.to_owned()).or_default() += n,
            RecipientStatus::Skipped => *stats.skipped.entry(reason.to_owned()).or_default() += n,
        }
    }
    stats
}

/// The API's broadcast, with `stats`.
pub fn broadcast(b: Broadcast, stats: pb::BroadcastStats) -> pb::Broadcast {
    pb::Broadcast {
        id: b.id.to_string(),
        definition: Some(pb::BroadcastDefinition {
            name: b.name,
            channel_id: b.channel_id.to_string(),
            audience: pb::Audience::decode(b.audience.as_slice()).ok(),
            content: MessageContent::decode(b.content.as_slice()).ok(),
            labels: b.labels,
        }),
        state: state(b.state) as i32,
        state_reason: b.state_reason,
        send_at: b.send_at.map(timestamp),
        missed_schedule: missed(b.missed_schedule) as i32,
        stats: Some(stats),
        created_at: Some(timestamp(b.created_at)),
        updated_at: Some(timestamp(b.updated_at)),
        started_at: b.started_at.map(timestamp),
        ended_at: b.ended_at.map(timestamp),
        audience_frozen: b.audience_frozen,
    }
}

/// Stats by broadcast from (broadcast, status, reason, count) rows.
pub fn stats_by_broadcast(
    rows: &[(Uuid, RecipientStatus, String, i64)],
) -> HashMap<Uuid, pb::BroadcastStats> {
    let mut grouped: HashMap<Uuid, Vec<(RecipientStatus, &str, i64)>> = HashMap::new();
    for (id, status, reason, n) in rows {
        grouped
            .entry(*id)
            .or_default()
            .push((*status, reason.as_str(), *n));
    }
    grouped
        .into_iter()
        .map(|(id, rows)| (id, stats(rows)))
        .collect()
}

pub fn recipient(r: Recipient) -> pb::Recipient {
    pb::Recipient {
        contact_id: r.contact_id.to_string(),
        status: recipient_status(r.status) as i32,
        reason: r.reason,
        external_id: r.external_id,
        external_message_id: r.external_message_id,
        updated_at: Some(timestamp(r.updated_at)),
    }
}
