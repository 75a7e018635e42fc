//! Conversions between stored rows and API messages, and content validation.
use ism_platform::auth::{Caller, Subject};
use ism_platform::config::ServiceName;
use ism_platform::convert::{from_timestamp, timestamp};
use ism_platform::error::FieldError;
use ism_proto::conversations::v1 as pb;
use ism_proto::types::v1::{DeliveryStatus, Direction as ApiDirection, MessageContent};
use prost::Message as _;
use uuid::Uuid;

use crate::assign::{Rules, Strategy};
use crate::inbox::{self, Assignee, Filter, Inbox};
use crate::publish::id_or_empty;
use crate::settings::WorkspaceSettings;
use crate::snippets::Snippet;
use crate::states::{Author, Delivery, Direction, Status};
use crate::store::{Conversation, Message};

/// Longest internal comment, in bytes.
pub const MAX_COMMENT: usize = 4096;

/// An author as the API's Party.
pub fn party(author: Author) -> pb::Party {
    match author {
        Author::Contact => pb::Party::Contact,
        Author::User => pb::Party::User,
        Author::Workflow => pb::Party::Workflow,
        Author::Bot => pb::Party::Bot,
        Author::Broadcast => pb::Party::Broadcast,
    }
}

/// The API's Party as an author; `None` for unspecified.
pub fn author_of(party: pb::Party) -> Option<Author> {
    match party {
        pb::Party::Contact => Some(Author::Contact),
        pb::Party::User => Some(Author::User),
        pb::Party::Workflow => Some(Author::Workflow),
        pb::Party::Bot => Some(Author::Bot),
        pb::Party::Broadcast => Some(Author::Broadcast),
        pb::Party::Unspecified => None,
    }
}

/// Who the caller writes as: a User (or an API key acting for the business), a
/// workflow, a bot integration or a broadcast; and the writer's id.
pub fn author(caller: &Caller) -> (Author, String) {
    match &caller.subject {
        Subject::User(id) => (Author::User, id.to_string()),
        Subject::Service(name) if name == ServiceName::Workflows.as_str() => {
            (Author::Workflow, name.clone())
        }
        Subject::Service(name) if name == ServiceName::Broadcasts.as_str() => {
            (Author::Broadcast, name.clone())
        }
        Subject::Service(name) => (Author::Bot, name.clone()),
        other => (Author::User, other.to_string()),
    }
}

/// A conversation status as the API's.
pub fn status(status: Status) -> pb::ConversationStatus {
    match status {
        Status::Open => pb::ConversationStatus::Open,
        Status::Snoozed => pb::ConversationStatus::Snoozed,
        Status::Closed => pb::ConversationStatus::Closed,
    }
}

/// The API's conversation status as stored; `None` for unspecified.
pub fn status_of(status: pb::ConversationStatus) -> Option<Status> {
    match status {
        pb::ConversationStatus::Open => Some(Status::Open),
        pb::ConversationStatus::Snoozed => Some(Status::Snoozed),
        pb::ConversationStatus::Closed => Some(Status::Closed),
        pb::ConversationStatus::Unspecified => None,
    }
}

/// A message's delivery as the API's status.
pub fn delivery(delivery: Delivery) -> DeliveryStatus {
    match delivery {
        Delivery::None => DeliveryStatus::Unspecified,
        Delivery::Received => DeliveryStatus::Received,
        Delivery::Pending => DeliveryStatus::Pending,
        Delivery::Sent => DeliveryStatus::Sent,
        Delivery::Delivered => DeliveryStatus::Delivered,
        Delivery::Read => DeliveryStatus::Read,
        Delivery::Failed => DeliveryStatus::Failed,
    }
}

/// A message's direction as the API's; internal comments have none.
pub fn direction(direction: Direction) -> ApiDirection {
    match direction {
        Direction::Inbound => ApiDirection::Inbound,
        Direction::Outbound => ApiDirection::Outbound,
        Direction::Internal => ApiDirection::Unspecified,
    }
}

pub fn conversation(c: Conversation) -> pb::Conversation {
    let seconds_since_open =
        |at: Option<chrono::DateTime<chrono::Utc>>| at.map(|at| (at - c.created_at).num_seconds());
    pb::Conversation {
        id: c.id.to_string(),
        workspace_id: c.workspace_id.to_string(),
        contact_id: c.contact_id.to_string(),
        channel_id: c.channel_id.to_string(),
        status: status(c.status) as i32,
        created_at: Some(timestamp(c.created_at)),
        last_message_at: Some(timestamp(c.last_message_at)),
        opened_by: party(c.opened_by) as i32,
        opened_by_id: c.opened_by_id,
        snoozed_until: c.snoozed_until.map(timestamp),
        assignee_user_id: id_or_empty(c.assignee_user_id),
        assignee_team_id: id_or_empty(c.assignee_team_id),
        closed_at: c.closed_at.map(timestamp),
        closing_category: c.closing_category,
        closing_summary: c.closing_summary,
        metrics: Some(pb::ConversationMetrics {
            first_response_seconds: seconds_since_open(c.first_response_at),
            resolution_seconds: seconds_since_open(c.closed_at),
            response_count: c.response_count,
        }),
        last_message_from: party(c.last_message_from) as i32,
        waiting_since: c.waiting_since.map(timestamp),
    }
}

pub fn message(m: Message) -> pb::Message {
    pb::Message {
        id: m.id.to_string(),
        conversation_id: m.conversation_id.to_string(),
        direction: direction(m.direction) as i32,
        content: MessageContent::decode(m.content.as_slice()).ok(),
        status: delivery(m.status) as i32,
        failure_reason: m.failure_reason,
        external_message_id: m.external_message_id,
        sent_at: Some(timestamp(m.sent_at)),
        created_at: Some(timestamp(m.created_at)),
        sender: party(m.sender) as i32,
        sender_id: m.sender_id,
        internal: m.direction == Direction::Internal,
        mentioned_user_ids: m.mentions.iter().map(Uuid::to_string).collect(),
        next_attempt_at: m.next_attempt_at.map(timestamp),
        retry_reason: m.retry_reason,
    }
}

/// Rules from the API; `field` prefixes the field names in errors.
pub fn rules(
    rules: Option<&pb::AssignmentRules>,
    field: &'static str,
) -> Result<Option<Rules>, FieldError> {
    let Some(rules) = rules else {
        return Ok(None);
    };
    let strategy = match pb::AssignmentStrategy::try_from(rules.strategy) {
        Ok(pb::AssignmentStrategy::RoundRobin) => Strategy::RoundRobin,
        Ok(pb::AssignmentStrategy::LeastOpen) => Strategy::LeastOpen,
        _ => return Ok(None),
    };
    let team_id = optional_uuid(&rules.team_id, field)?;
    if rules.cap < 0 {
        return Err(FieldError::new(field, "cap must be 0 (no cap) or more"));
    }
    Ok(Some(Rules {
        strategy,
        team_id,
        online_only: rules.online_only,
        cap: rules.cap,
    }))
}

/// `None` for an empty id; an error naming `field` for one that is not a UUID.
pub fn optional_uuid(value: &str, field: &'static str) -> Result<Option<Uuid>, FieldError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| FieldError::new(field, "must be a UUID"))
}

/// The time of a required timestamp field.
pub fn required_time(
    value: Option<&prost_types::Timestamp>,
    field: &'static str,
) -> Result<chrono::DateTime<chrono::Utc>, FieldError> {
    value
        .and_then(from_timestamp)
        .ok_or_else(|| FieldError::new(field, "is required"))
}

pub fn settings_to_pb(s: WorkspaceSettings) -> pb::ConversationSettings {
    let closing_notes = match s.closing_notes.as_str() {
        "off" => pb::ClosingNotes::Off,
        "optional" => pb::ClosingNotes::Optional,
        "category_required" => pb::ClosingNotes::CategoryRequired,
        "both_required" => pb::ClosingNotes::BothRequired,
        _ => pb::ClosingNotes::Unspecified,
    };
    let strategy = match s.auto_assign.as_str() {
        "round_robin" => pb::AssignmentStrategy::RoundRobin,
        "least_open" => pb::AssignmentStrategy::LeastOpen,
        _ => pb::AssignmentStrategy::Unspecified,
    };
    pb::ConversationSettings {
        auto_close_minutes: s.auto_close_minutes,
        closing_notes: closing_notes as i32,
        closing_categories: s.closing_categories,
        reply_to_closed: s.reply_to_closed,
        auto_assign: Some(pb::AssignmentRules {
            strategy: strategy as i32,
            team_id: id_or_empty(s.auto_assign_team_id),
            online_only: s.auto_assign_online_only,
            cap: s.auto_assign_cap,
        }),
    }
}

pub fn settings_from_pb(s: pb::ConversationSettings) -> Result<WorkspaceSettings, FieldError> {
    let closing_notes = match pb::ClosingNotes::try_from(s.closing_notes) {
        Ok(pb::ClosingNotes::Off | pb::ClosingNotes::Unspecified) => "off",
        Ok(pb::ClosingNotes::Optional) => "optional",
        Ok(pb::ClosingNotes::CategoryRequired) => "category_required",
        Ok(pb::ClosingNotes::BothRequired) => "both_required",
        Err(_) => {
            return Err(FieldError::new(
                "settings.closing_notes",
                "unknown closing-notes choice",
            ));
        }
    };
    let auto = rules(s.auto_assign.as_ref(), "settings.auto_assign")?;
    let online_only = s.auto_assign.as_ref().is_none_or(|r| r.online_only);
    let settings = WorkspaceSettings {
        auto_close_minutes: s.auto_close_minutes,
        closing_notes: closing_notes.into(),
        closing_categories: s
            .closing_categories
            .iter()
            .map(|c| c.trim().to_owned())
            .collect(),
        reply_to_closed: s.reply_to_closed,
        auto_assign: match auto.map(|r| r.strategy) {
            Some(Strategy::RoundRobin) => "round_robin",
            Some(Strategy::LeastOpen) => "least_open",
            None => "off",
        }
        .into(),
        auto_assign_team_id: auto.and_then(|r| r.team_id),
        auto_assign_online_only: online_only,
        auto_assign_cap: auto.map_or(0, |r| r.cap),
    };
    settings.validate()?;
    Ok(settings)
}

pub fn snippet(s: Snippet) -> pb::Snippet {
    pb::Snippet {
        id: s.id.to_string(),
        shortcut: s.shortcut,
        title: s.title,
        body: s.body,
        personal: s.owner.is_some(),
        created_at: Some(timestamp(s.created_at)),
        updated_at: Some(timestamp(s.updated_at)),
    }
}

pub fn inbox(i: Inbox) -> pb::Inbox {
    let conditions = i.conditions();
    pb::Inbox {
        id: i.id.to_string(),
        name: i.name,
        conditions: Some(conditions),
        created_at: Some(timestamp(i.created_at)),
    }
}

/// A custom inbox's name and conditions, checked.
pub fn inbox_input(
    name: &str,
    conditions: Option<pb::InboxConditions>,
) -> Result<(&str, pb::InboxConditions), FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(FieldError::new("name", "must have 1 to 100 characters"));
    }
    let conditions = conditions.unwrap_or_default();
    inbox::validate(&conditions)?;
    Ok((name, conditions))
}

/// The filter of a built-in view, as `me` sees it.
pub fn built_in(view: i32, team_id: &str, me: Option<Uuid>) -> Result<Filter, FieldError> {
    let mut filter = Filter::open();
    match pb::BuiltInInbox::try_from(view) {
        Ok(pb::BuiltInInbox::All) => {}
        Ok(pb::BuiltInInbox::Mine) => filter.assignee = Assignee::Users(me.into_iter().collect()),
        Ok(pb::BuiltInInbox::Unassigned) => filter.assignee = Assignee::Nobody,
        Ok(pb::BuiltInInbox::Team) => {
            let team = optional_uuid(team_id, "team_id")?
                .ok_or_else(|| FieldError::new("team_id", "is required for the team view"))?;
            filter.team_ids = vec![team];
        }
        _ => {
            return Err(FieldError::new(
                "built_in",
                "name an inbox_id or a built-in view",
            ));
        }
    }
    Ok(filter)
}
