//! What makes a workflow definition valid: every field of every step, and the graph as a
//! whole (every step reachable from the first, every `next` naming a step, every loop
//! passing through a capped jump), each fault named by its path
//! (`definition.steps[3].branch.cases[0].next`).
use std::collections::{BTreeSet, HashMap, HashSet};

use ism_platform::convert;
use ism_platform::egress::Egress;
use ism_platform::error::{FieldError, Violations};
use ism_platform::personalize;
use ism_proto::conversations::v1::AssignmentStrategy;
use ism_proto::types::v1::ChannelType;
use ism_proto::workflows::v1 as pb;
use ism_proto::workflows::v1::step::Kind;
use uuid::Uuid;

use crate::{calendar, calls};

const MAX_NAME: usize = 100;
const MAX_KEYWORDS: usize = 20;
/// Channels a trigger may be limited to.
const MAX_CHANNELS: usize = 100;
const MAX_PATTERN: usize = 200;
const MAX_CASES: usize = 10;
const MAX_CONDITIONS: usize = 10;
const MAX_TAGS: usize = 10;
const MAX_TAG: usize = 64;
const MAX_WAIT_SECONDS: u32 = 30 * 24 * 3600;
const MAX_SUMMARY: usize = 2000;
const MAX_COMMENT: usize = 4096;
const MAX_JUMPS: u32 = 10;
const MAX_OPTIONS: usize = 10;
const MAX_OPTION: usize = 100;
const MAX_RETRIES: u32 = 5;
/// Longest value compared in a condition, and longest retry text.
const MAX_VALUE: usize = 1000;
const MAX_URL: usize = 2000;
const MAX_ASSIGN_WAIT_SECONDS: u32 = 7 * 24 * 3600;
const MAX_HEADERS: usize = 10;
const MAX_BODY: usize = 64 * 1024;
const MAX_SAVED: usize = 10;

/// The kind of a step, as recorded in a run's history.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::SendMessage(_) => "send_message",
        Kind::Branch(_) => "branch",
        Kind::AddTags(_) => "add_tags",
        Kind::Wait(_) => "wait",
        Kind::Assign(_) => "assign",
        Kind::Close(_) => "close",
        Kind::Comment(_) => "comment",
        Kind::Jump(_) => "jump",
        Kind::Ask(_) => "ask",
        Kind::HttpRequest(_) => "http_request",
        Kind::Unassign(_) => "unassign",
        Kind::RemoveTags(_) => "remove_tags",
        Kind::UpdateField(_) => "update_field",
        Kind::StartWorkflow(_) => "start_workflow",
        Kind::UpdateLifecycle(_) => "update_lifecycle",
        Kind::Open(_) => "open",
    }
}

/// Whether the definition has an ask step (its runs wait for Contacts' messages).
pub fn asks(definition: &pb::WorkflowDefinition) -> bool {
    definition
        .steps
        .iter()
        .any(|s| matches!(s.kind, Some(Kind::Ask(_))))
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn step_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn trigger(trigger: Option<&pb::Trigger>, v: &mut Violations) {
    use pb::trigger::Kind as T;
    let conditions = trigger.map_or(&[][..], |t| t.conditions.as_slice());
    if conditions.len() > MAX_CONDITIONS {
        v.push(FieldError::new(
            "trigger.conditions",
            format!("must hold at most {MAX_CONDITIONS} conditions"),
        ));
    }
    for (i, c) in conditions.iter().enumerate() {
        condition(&format!("trigger.conditions[{i}]"), c, v);
    }
    match trigger.and_then(|t| t.kind.as_ref()) {
        None => v.push(FieldError::new(
            "trigger",
            "is required: message_received, conversation_opened, conversation_closed, contact_tag_updated, contact_field_updated, lifecycle_updated, incoming_webhook, schedule or manual",
        )),
        Some(T::MessageReceived(m)) => {
            convert::uuids(
                "trigger.message_received.channel_ids",
                &m.channel_ids,
                MAX_CHANNELS,
                v,
            );
            if m.keywords.len() > MAX_KEYWORDS {
                v.push(FieldError::new(
                    "trigger.message_received.keywords",
                    format!("at most {MAX_KEYWORDS}"),
                ));
            }
            for (i, k) in m.keywords.iter().enumerate() {
                if k.trim().is_empty() || k.len() > 100 {
                    v.push(FieldError::new(
                        format!("trigger.message_received.keywords[{i}]"),
                        "must be 1 to 100 characters",
                    ));
                }
            }
            if m.pattern.len() > MAX_PATTERN {
                v.push(FieldError::new(
                    "trigger.message_received.pattern",
                    format!("must be at most {MAX_PATTERN} characters"),
                ));
            } else if !m.pattern.is_empty()
                && let Err(e) = regex::Regex::new(&m.pattern)
            {
                v.push(FieldError::new(
                    "trigger.message_received.pattern",
                    format!("is not a regular expression: {e}"),
                ));
            }
        }
        Some(T::ConversationOpened(o)) => {
            convert::uuids(
                "trigger.conversation_opened.channel_ids",
                &o.channel_ids,
                MAX_CHANNELS,
                v,
            );
        }
        Some(T::ContactTagUpdated(t)) => {
            if t.tags.len() > MAX_KEYWORDS
                || t.tags.iter().any(|tag| tag.trim().is_empty() || tag.chars().count() > MAX_TAG)
            {
                v.push(FieldError::new(
                    "trigger.contact_tag_updated.tags",
                    format!("at most {MAX_KEYWORDS} Tags of 1 to {MAX_TAG} characters"),
                ));
            }
            if pb::TagChange::try_from(t.change).is_err() {
                v.push(FieldError::new(
                    "trigger.contact_tag_updated.change",
                    "unknown value",
                ));
            }
        }
        Some(T::ContactFieldUpdated(f)) => {
            if f.keys.len() > MAX_KEYWORDS || f.keys.iter().any(|k| !name_ok(k)) {
                v.push(FieldError::new(
                    "trigger.contact_field_updated.keys",
                    format!("at most {MAX_KEYWORDS} custom Contact Field keys"),
                ));
            }
        }
        Some(T::IncomingWebhook(w)) => {
            if w.contact_pointer.is_empty() || !pointer_ok(&w.contact_pointer) {
                v.push(FieldError::new(
                    "trigger.incoming_webhook.contact_pointer",
                    "must be a JSON Pointer to the Contact in the body, such as /customer/email",
                ));
            }
            if !matches!(
                w.contact_key(),
                pb::ContactKey::Id | pb::ContactKey::Email | pb::ContactKey::Phone
            ) {
                v.push(FieldError::new(
                    "trigger.incoming_webhook.contact_key",
                    "must say whether the body names the Contact by id, email or phone",
                ));
            }
            saved("trigger.incoming_webhook.save", &w.save, v);
        }
        // Its cron is checked by the caller, which knows the least time between firings.
        Some(T::Schedule(_)) => {}
        Some(T::LifecycleUpdated(l)) => {
            if l.stages.len() > MAX_KEYWORDS || l.stages.iter().any(|k| !name_ok(k)) {
                v.push(FieldError::new(
                    "trigger.lifecycle_updated.stages",
                    format!("at most {MAX_KEYWORDS} lifecycle stage keys"),
                ));
            }
        }
        Some(T::ConversationClosed(c)) => {
            convert::uuids(
                "trigger.conversation_closed.channel_ids",
                &c.channel_ids,
                MAX_CHANNELS,
                v,
            );
        }
        Some(T::Manual(_)) => {}
    }
}

/// The steps a step may go to, with the field naming each.
fn exits(step: &pb::Step) -> Vec<(String, &str)> {
    match &step.kind {
        Some(Kind::Branch(b)) => {
            let mut all: Vec<(String, &str)> = b
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("branch.cases[{i}].next"), c.next.as_str()))
                .collect();
            all.push(("branch.otherwise".into(), b.otherwise.as_str()));
            all
        }
        Some(Kind::Jump(j)) => vec![("jump.to".into(), j.to.as_str())],
        Some(Kind::Assign(a)) if a.rules.is_some() => vec![
            ("next".into(), step.next.as_str()),
            ("assign.timeout_next".into(), a.timeout_next.as_str()),
        ],
        Some(Kind::HttpRequest(h)) => vec![
            ("next".into(), step.next.as_str()),
            ("http_request.failure_next".into(), h.failure_next.as_str()),
        ],
        Some(Kind::Ask(a)) => vec![
            ("next".into(), step.next.as_str()),
            ("ask.timeout_next".into(), a.timeout_next.as_str()),
            ("ask.invalid_next".into(), a.invalid_next.as_str()),
        ],
        _ => vec![("next".into(), step.next.as_str())],
    }
    .into_iter()
    .filter(|(_, to)| !to.is_empty())
    .collect()
}

fn step(step: &pb::Step, egress: &Egress, v: &mut Violations) {
    if !step_id_ok(&step.id) {
        v.push(FieldError::new(
            "id",
            "must be 1 to 64 letters, digits, - or _",
        ));
    }
    match &step.kind {
        None => v.push(FieldError::new("kind", "is required")),
        Some(Kind::SendMessage(s)) => {
            if let Err(e) =
                ism_platform::content::outbound(s.content.as_ref(), ChannelType::Unspecified as i32)
            {
                v.push(e.within("send_message"));
            }
        }
        Some(Kind::Branch(b)) => {
            if b.cases.is_empty() || b.cases.len() > MAX_CASES {
                v.push(FieldError::new(
                    "branch.cases",
                    format!("must hold 1 to {MAX_CASES} cases"),
                ));
            }
            for (i, case) in b.cases.iter().enumerate() {
                if case.all.is_empty() || case.all.len() > MAX_CONDITIONS {
                    v.push(FieldError::new(
                        format!("branch.cases[{i}].all"),
                        format!("must hold 1 to {MAX_CONDITIONS} conditions"),
                    ));
                }
                for (j, condition) in case.all.iter().enumerate() {
                    self::condition(&format!("branch.cases[{i}].all[{j}]"), condition, v);
                }
            }
        }
        Some(Kind::AddTags(t)) => tags("add_tags.tags", &t.tags, v),
        Some(Kind::RemoveTags(t)) => tags("remove_tags.tags", &t.tags, v),
        Some(Kind::Unassign(_) | Kind::Open(_)) => {}
        Some(Kind::UpdateLifecycle(u)) => {
            if !u.stage.is_empty() && !name_ok(&u.stage) {
                v.push(FieldError::new(
                    "update_lifecycle.stage",
                    "must be a lifecycle stage's key, or empty for none",
                ));
            }
        }
        Some(Kind::UpdateField(u)) => {
            if !name_ok(&u.key) {
                v.push(FieldError::new(
                    "update_field.key",
                    "must be a custom Contact Field's key",
                ));
            }
            if u.value.chars().count() > MAX_VALUE {
                v.push(FieldError::new(
                    "update_field.value",
                    format!("must be at most {MAX_VALUE} characters"),
                ));
            }
        }
        Some(Kind::StartWorkflow(w)) => {
            if Uuid::parse_str(&w.workflow_id).is_err() {
                v.push(FieldError::new(
                    "start_workflow.workflow_id",
                    "must be a workflow's id",
                ));
            }
        }
        Some(Kind::Wait(w)) => {
            let given = [w.seconds > 0, !w.until_time.is_empty(), w.until_open];
            match given.iter().filter(|g| **g).count() {
                0 => v.push(FieldError::new(
                    "wait.seconds",
                    format!(
                        "must be 1 to {MAX_WAIT_SECONDS} (30 days), unless until_time or until_open is given"
                    ),
                )),
                1 => {}
                _ => v.push(FieldError::new(
                    "wait",
                    "give one of seconds, until_time and until_open",
                )),
            }
            if w.seconds > MAX_WAIT_SECONDS {
                v.push(FieldError::new(
                    "wait.seconds",
                    format!("must be 1 to {MAX_WAIT_SECONDS} (30 days)"),
                ));
            }
            if !w.until_time.is_empty() && calendar::time(&w.until_time).is_none() {
                v.push(FieldError::new("wait.until_time", "must be HH:MM"));
            }
        }
        Some(Kind::Assign(a)) => assign(a, v),
        Some(Kind::Close(c)) => {
            if c.summary.chars().count() > MAX_SUMMARY {
                v.push(FieldError::new(
                    "close.summary",
                    format!("must be at most {MAX_SUMMARY} characters"),
                ));
            }
        }
        Some(Kind::Comment(c)) => {
            if c.body.trim().is_empty() || c.body.len() > MAX_COMMENT {
                v.push(FieldError::new(
                    "comment.body",
                    format!("must be 1 to {MAX_COMMENT} characters"),
                ));
            }
        }
        Some(Kind::Ask(a)) => ask(a, v),
        Some(Kind::HttpRequest(h)) => http_request(h, egress, v),
        Some(Kind::Jump(j)) => {
            if j.to.is_empty() {
                v.push(FieldError::new("jump.to", "is required"));
            }
            if !(1..=MAX_JUMPS).contains(&j.max_times) {
                v.push(FieldError::new(
                    "jump.max_times",
                    format!("must be 1 to {MAX_JUMPS}"),
                ));
            }
        }
    }
}

fn time_window(field: &str, w: &pb::TimeWindow, v: &mut Violations) {
    for (part, text) in [("from_date", &w.from_date), ("until_date", &w.until_date)] {
        if !text.is_empty() && calendar::date(text).is_none() {
            v.push(FieldError::new(
                format!("{field}.{part}"),
                "must be a date, YYYY-MM-DD",
            ));
        }
    }
    if let (Some(from), Some(until)) = (calendar::date(&w.from_date), calendar::date(&w.until_date))
        && from > until
    {
        v.push(FieldError::new(
            format!("{field}.until_date"),
            "must not be before from_date",
        ));
    }
    if w.weekdays.len() > 7 || w.weekdays.iter().any(|d| !(1..=7).contains(d)) {
        v.push(FieldError::new(
            format!("{field}.weekdays"),
            "must be ISO weekdays, 1 (Monday) to 7 (Sunday)",
        ));
    }
    for (part, text) in [("from_time", &w.from_time), ("until_time", &w.until_time)] {
        if !text.is_empty() && calendar::time(text).is_none() {
            v.push(FieldError::new(
                format!("{field}.{part}"),
                "must be a time, HH:MM",
            ));
        }
    }
}

fn tags(field: &str, tags: &[String], v: &mut Violations) {
    if tags.is_empty() || tags.len() > MAX_TAGS {
        v.push(FieldError::new(
            field.to_owned(),
            format!("must name 1 to {MAX_TAGS} Tags"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.chars().count() > MAX_TAG {
            v.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("must be 1 to {MAX_TAG} characters"),
            ));
        }
    }
}

/// Checks one condition of a branch case or a trigger, at `field`.
fn condition(field: &str, condition: &pb::Condition, v: &mut Violations) {
    use pb::condition::Kind as C;
    let field = field.to_owned();
    match &condition.kind {
        None => v.push(FieldError::new(field, "is required")),
        Some(C::TextContains(t) | C::HasTag(t)) if t.trim().is_empty() => {
            v.push(FieldError::new(field, "must not be empty"))
        }
        Some(C::ChannelId(id)) if Uuid::parse_str(id).is_err() => v.push(FieldError::new(
            format!("{field}.channel_id"),
            "must be a UUID",
        )),
        Some(C::BusinessHours(_)) => {}
        Some(C::LifecycleStage(key)) if !key.is_empty() && !name_ok(key) => {
            v.push(FieldError::new(
                format!("{field}.lifecycle_stage"),
                "must be a lifecycle stage's key, or empty for none",
            ))
        }
        Some(C::TimeWindow(w)) => time_window(&format!("{field}.time_window"), w, v),
        Some(C::VariableEquals(e) | C::FieldEquals(e)) => {
            let which = if matches!(condition.kind, Some(C::VariableEquals(_))) {
                "variable_equals"
            } else {
                "field_equals"
            };
            if !name_ok(&e.name) {
                v.push(FieldError::new(
                    format!("{field}.{which}.name"),
                    "must be 1 to 64 letters, digits or _",
                ));
            }
            if e.value.chars().count() > MAX_VALUE {
                v.push(FieldError::new(
                    format!("{field}.{which}.value"),
                    format!("must be at most {MAX_VALUE} characters"),
                ));
            }
        }
        Some(_) => {}
    }
}

fn pointer_ok(pointer: &str) -> bool {
    (pointer.is_empty() || pointer.starts_with('/')) && pointer.len() <= MAX_VALUE
}

/// Variables saved from a JSON document: names to JSON Pointers.
fn saved(field: &str, save: &HashMap<String, String>, v: &mut Violations) {
    if save.len() > MAX_SAVED {
        v.push(FieldError::new(
            field.to_owned(),
            format!("at most {MAX_SAVED} variables"),
        ));
    }
    for (name, pointer) in save {
        if !name_ok(name) {
            v.push(FieldError::new(
                format!("{field}[{name:?}]"),
                "a variable's name is 1 to 64 letters, digits or _",
            ));
        } else if !pointer_ok(pointer) {
            v.push(FieldError::new(
                format!("{field}[{name:?}]"),
                "must be a JSON Pointer such as /order/status",
            ));
        }
    }
}

fn assign(a: &pb::AssignStep, v: &mut Violations) {
    for (field, id) in [
        ("assign.user_id", &a.user_id),
        ("assign.team_id", &a.team_id),
    ] {
        if !id.is_empty() && Uuid::parse_str(id).is_err() {
            v.push(FieldError::new(field, "must be a UUID"));
        }
    }
    let Some(rules) = &a.rules else {
        if a.user_id.is_empty() && a.team_id.is_empty() {
            v.push(FieldError::new(
                "assign",
                "names a user_id, a team_id or rules",
            ));
        }
        if a.timeout_seconds > 0 || !a.timeout_next.is_empty() {
            v.push(FieldError::new(
                "assign.timeout_seconds",
                "is only for rules",
            ));
        }
        return;
    };
    if !a.user_id.is_empty() {
        v.push(FieldError::new(
            "assign.user_id",
            "rules choose the User: leave it empty",
        ));
    }
    if !matches!(
        rules.strategy(),
        AssignmentStrategy::RoundRobin | AssignmentStrategy::LeastOpen
    ) || AssignmentStrategy::try_from(rules.strategy).is_err()
    {
        v.push(FieldError::new(
            "assign.rules.strategy",
            "must be ASSIGNMENT_STRATEGY_ROUND_ROBIN or ASSIGNMENT_STRATEGY_LEAST_OPEN",
        ));
    }
    if !rules.team_id.is_empty() {
        v.push(FieldError::new(
            "assign.rules.team_id",
            "is the step's team_id: leave it empty",
        ));
    }
    if rules.cap < 0 {
        v.push(FieldError::new("assign.rules.cap", "must not be negative"));
    }
    if a.timeout_seconds > MAX_ASSIGN_WAIT_SECONDS {
        v.push(FieldError::new(
            "assign.timeout_seconds",
            format!("must be at most {MAX_ASSIGN_WAIT_SECONDS} (7 days)"),
        ));
    }
}

fn http_request(h: &pb::HttpRequestStep, egress: &Egress, v: &mut Violations) {
    if !calls::METHODS.contains(&h.method.as_str()) {
        v.push(FieldError::new(
            "http_request.method",
            format!("must be one of {}", calls::METHODS.join(", ")),
        ));
    }
    if h.url.is_empty() || h.url.chars().count() > MAX_URL {
        v.push(FieldError::new(
            "http_request.url",
            format!("must be 1 to {MAX_URL} characters"),
        ));
    } else if personalize::has_variables(&h.url) {
        // Checked whole once rendered, when the step runs.
        if !(h.url.starts_with("https://") || h.url.starts_with("http://")) {
            v.push(FieldError::new(
                "http_request.url",
                "must start with https:// or http://",
            ));
        }
    } else if let Err(refusal) = egress.check_url(&h.url) {
        v.push(FieldError::new("http_request.url", refusal.to_string()));
    }
    if h.headers.len() > MAX_HEADERS {
        v.push(FieldError::new(
            "http_request.headers",
            format!("at most {MAX_HEADERS}"),
        ));
    }
    for (name, value) in &h.headers {
        let field = format!("http_request.headers[{name:?}]");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || ["host", "content-length", "idempotency-key"]
                .contains(&name.to_ascii_lowercase().as_str())
        {
            v.push(FieldError::new(
                field,
                "is not a header name a step may set",
            ));
        } else if value.chars().count() > MAX_VALUE
            || (!personalize::has_variables(value)
                && reqwest::header::HeaderValue::from_str(value).is_err())
        {
            v.push(FieldError::new(
                field,
                format!("must be at most {MAX_VALUE} characters of visible ASCII"),
            ));
        }
    }
    if h.body.len() > MAX_BODY {
        v.push(FieldError::new(
            "http_request.body",
            format!("must be at most {} KiB", MAX_BODY / 1024),
        ));
    }
    saved("http_request.save", &h.save, v);
    if h.timeout_seconds > calls::MAX_TIMEOUT_SECONDS {
        v.push(FieldError::new(
            "http_request.timeout_seconds",
            format!("must be at most {}", calls::MAX_TIMEOUT_SECONDS),
        ));
    }
}

fn ask(a: &pb::AskStep, v: &mut Violations) {
    if let Err(e) =
        ism_platform::content::outbound(a.question.as_ref(), ChannelType::Unspecified as i32)
    {
        v.push(e.within("ask.question"));
    }
    let answer_type = pb::AnswerType::try_from(a.answer_type);
    if answer_type.is_err() {
        v.push(FieldError::new("ask.answer_type", "unknown value"));
    }
    let choice = answer_type == Ok(pb::AnswerType::Choice);
    if choice && !(2..=MAX_OPTIONS).contains(&a.options.len()) {
        v.push(FieldError::new(
            "ask.options",
            format!("must hold 2 to {MAX_OPTIONS} options for a choice"),
        ));
    }
    if !choice && !a.options.is_empty() {
        v.push(FieldError::new(
            "ask.options",
            "are only for ANSWER_TYPE_CHOICE",
        ));
    }
    for (i, option) in a.options.iter().enumerate() {
        if option.trim().is_empty() || option.chars().count() > MAX_OPTION {
            v.push(FieldError::new(
                format!("ask.options[{i}]"),
                format!("must be 1 to {MAX_OPTION} characters"),
            ));
        }
    }
    let number = answer_type == Ok(pb::AnswerType::Number);
    for (field, bound) in [("ask.min", a.min), ("ask.max", a.max)] {
        match bound {
            Some(_) if !number => v.push(FieldError::new(field, "is only for ANSWER_TYPE_NUMBER")),
            Some(b) if !b.is_finite() => v.push(FieldError::new(field, "must be a finite number")),
            _ => {}
        }
    }
    if let (Some(lo), Some(hi)) = (a.min, a.max)
        && lo > hi
    {
        v.push(FieldError::new("ask.max", "must not be less than ask.min"));
    }
    if a.retries > MAX_RETRIES {
        v.push(FieldError::new(
            "ask.retries",
            format!("must be 0 to {MAX_RETRIES}"),
        ));
    }
    if a.retry_text.chars().count() > MAX_VALUE {
        v.push(FieldError::new(
            "ask.retry_text",
            format!("must be at most {MAX_VALUE} characters"),
        ));
    }
    if !a.save_to_variable.is_empty() && !name_ok(&a.save_to_variable) {
        v.push(FieldError::new(
            "ask.save_to_variable",
            "must be 1 to 64 letters, digits or _",
        ));
    }
    if !a.save_to_field.is_empty() && !name_ok(&a.save_to_field) {
        v.push(FieldError::new(
            "ask.save_to_field",
            "must be a custom Contact Field's key",
        ));
    }
    if a.save_as_tag && a.answer_type() != pb::AnswerType::Choice {
        v.push(FieldError::new(
            "ask.save_as_tag",
            "only a choice's option is saved as a Tag",
        ));
    }
    if !(1..=MAX_WAIT_SECONDS).contains(&a.timeout_seconds) {
        v.push(FieldError::new(
            "ask.timeout_seconds",
            format!("must be 1 to {MAX_WAIT_SECONDS} (30 days)"),
        ));
    }
}

/// Every fault of the graph: unknown targets, unreachable steps, loops without a jump.
fn graph(steps: &[pb::Step], v: &mut Violations) {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for (i, s) in steps.iter().enumerate() {
        for (field, to) in exits(s) {
            if !index.contains_key(to) {
                v.push(FieldError::new(
                    format!("steps[{i}].{field}"),
                    format!("no step {to:?}"),
                ));
            }
        }
    }
    let mut reached = HashSet::from([0usize]);
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        for (_, to) in exits(&steps[i]) {
            if let Some(&j) = index.get(to)
                && reached.insert(j)
            {
                todo.push(j);
            }
        }
    }
    for i in (0..steps.len()).filter(|i| !reached.contains(i)) {
        v.push(FieldError::new(
            format!("steps[{i}]"),
            "cannot be reached from the first step",
        ));
    }
    // Without the jumps' edges the graph must be acyclic: a loop always passes a capped jump.
    let mut state = vec![0u8; steps.len()];
    fn visit(
        i: usize,
        steps: &[pb::Step],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
    ) -> Option<usize> {
        state[i] = 1;
        if !matches!(steps[i].kind, Some(Kind::Jump(_))) {
            for (_, to) in exits(&steps[i]) {
                let Some(&j) = index.get(to) else { continue };
                if state[j] == 1 {
                    return Some(i);
                }
                if state[j] == 0
                    && let Some(looped) = visit(j, steps, index, state)
                {
                    return Some(looped);
                }
            }
        }
        state[i] = 2;
        None
    }
    for i in 0..steps.len() {
        if state[i] == 0
            && let Some(looped) = visit(i, steps, &index, &mut state)
        {
            v.push(FieldError::new(
                format!("steps[{looped}]"),
                "closes a loop without a jump step (loops go through a jump, which caps them)",
            ));
            break;
        }
    }
}

/// The variables set on every path into each step (by index): an ask step sets its
/// variable on its `next` edge only (a timeout or invalid answers set nothing), an HTTP
/// request step its saved variables on its `next` (success) edge only.
fn variables_set(definition: &pb::WorkflowDefinition) -> Vec<Option<BTreeSet<String>>> {
    let steps = &definition.steps;
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    // None: no path reaches the step yet (the top of the lattice).
    let mut into: Vec<Option<BTreeSet<String>>> = vec![None; steps.len()];
    // An incoming webhook's variables are set before the first step.
    into[0] = Some(
        match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
            Some(pb::trigger::Kind::IncomingWebhook(w)) => w.save.keys().cloned().collect(),
            _ => BTreeSet::new(),
        },
    );
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        let Some(here) = into[i].clone() else {
            continue;
        };
        for (field, to) in exits(&steps[i]) {
            let Some(&j) = index.get(to) else { continue };
            let mut out = here.clone();
            match &steps[i].kind {
                Some(Kind::Ask(a)) if field == "next" && !a.save_to_variable.is_empty() => {
                    out.insert(a.save_to_variable.clone());
                }
                Some(Kind::HttpRequest(h)) if field == "next" => {
                    out.extend(h.save.keys().cloned());
                }
                _ => {}
            }
            let met = match &into[j] {
                None => out,
                Some(before) => before.intersection(&out).cloned().collect(),
            };
            if into[j].as_ref() != Some(&met) {
                into[j] = Some(met);
                todo.push(j);
            }
        }
    }
    into
}

/// What a Workspace defines that a workflow may name.
#[derive(Debug, Default)]
pub struct Known {
    /// Custom Contact Fields' keys.
    pub field_keys: Vec<String>,
    /// Lifecycle stages' keys.
    pub stages: Vec<String>,
}

impl Known {
    /// Checks what `condition` (at `field`) names: variables among `variables`, custom
    /// Fields and lifecycle stages the Workspace has.
    fn condition(
        &self,
        field: &str,
        condition: &pb::Condition,
        variables: &BTreeSet<String>,
        v: &mut Violations,
    ) {
        use pb::condition::Kind as C;
        match &condition.kind {
            Some(C::VariableEquals(e)) if !variables.contains(&e.name) => v.push(FieldError::new(
                format!("{field}.variable_equals.name"),
                format!("variable {:?} is not set on every path to here", e.name),
            )),
            Some(C::FieldEquals(e)) if !self.field_keys.contains(&e.name) => {
                v.push(FieldError::new(
                    format!("{field}.field_equals.name"),
                    format!("no custom Contact Field {:?}", e.name),
                ))
            }
            Some(C::LifecycleStage(stage)) => {
                self.stage(format!("{field}.lifecycle_stage"), stage, v)
            }
            _ => {}
        }
    }

    /// INVALID_ARGUMENT on `field` unless `stage` is empty (none) or one of the stages.
    fn stage(&self, field: String, stage: &str, v: &mut Violations) {
        if !stage.is_empty() && !self.stages.iter().any(|s| s == stage) {
            v.push(FieldError::new(
                field,
                format!("no lifecycle stage {stage:?}"),
            ));
        }
    }
}

/// Checks what a definition names against the Workspace before it is published: custom
/// Contact Fields and lifecycle stages that exist, and variables set on every path before
/// a step names them (in a text or a condition); every fault under `definition.`.
pub fn check_references(
    definition: &pb::WorkflowDefinition,
    defined: &Known,
) -> Result<(), Violations> {
    let field_keys = &defined.field_keys;
    let set = variables_set(definition);
    let mut v = Violations::new();
    match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(pb::trigger::Kind::ContactFieldUpdated(f)) => {
            for key in f.keys.iter().filter(|k| !field_keys.contains(k)) {
                v.push(FieldError::new(
                    "trigger.contact_field_updated.keys",
                    format!("no custom Contact Field {key:?}"),
                ));
            }
        }
        Some(pb::trigger::Kind::LifecycleUpdated(l)) => {
            for stage in &l.stages {
                defined.stage("trigger.lifecycle_updated.stages".into(), stage, &mut v);
            }
        }
        _ => {}
    }
    for (i, s) in definition.steps.iter().enumerate() {
        let known = set[i].clone().unwrap_or_default();
        let at = |field: &str| format!("steps[{i}].{field}");
        let (content, under) = match &s.kind {
            Some(Kind::SendMessage(m)) => (m.content.as_ref(), "send_message"),
            Some(Kind::Ask(a)) => (a.question.as_ref(), "ask.question"),
            _ => (None, ""),
        };
        let hint = format!(
            "use contact.<profile field>, contact.fields.<custom field key> or vars.<a variable set before this step{}>",
            if known.is_empty() {
                String::new()
            } else {
                format!(": {}", known.iter().cloned().collect::<Vec<_>>().join(", "))
            }
        );
        let names = |name: &str| {
            personalize::names_contact(name, field_keys)
                || name
                    .strip_prefix("vars.")
                    .is_some_and(|var| known.contains(var))
        };
        for (field, text) in content.map(personalize::texts).unwrap_or_default() {
            let field = match under {
                "send_message" => at(&format!("send_message.{field}")),
                _ => at(&format!("{under}.{}", field.trim_start_matches("content."))),
            };
            if let Err(e) = personalize::check_names(&field, text, &hint, names) {
                v.push(e);
            }
        }
        if let Some(Kind::HttpRequest(h)) = &s.kind {
            let texts = std::iter::once(("http_request.url".to_owned(), &h.url))
                .chain(std::iter::once(("http_request.body".to_owned(), &h.body)))
                .chain(
                    h.headers
                        .iter()
                        .map(|(name, value)| (format!("http_request.headers[{name:?}]"), value)),
                );
            for (field, text) in texts {
                if let Err(e) = personalize::check_names(&at(&field), text, &hint, names) {
                    v.push(e);
                }
            }
        }
        if let Some(Kind::UpdateField(u)) = &s.kind {
            if !field_keys.contains(&u.key) {
                v.push(FieldError::new(
                    at("update_field.key"),
                    format!("no custom Contact Field {:?}", u.key),
                ));
            }
            if let Err(e) =
                personalize::check_names(&at("update_field.value"), &u.value, &hint, names)
            {
                v.push(e);
            }
        }
        if let Some(Kind::UpdateLifecycle(u)) = &s.kind {
            defined.stage(at("update_lifecycle.stage"), &u.stage, &mut v);
        }
        if let Some(Kind::Ask(a)) = &s.kind
            && !a.save_to_field.is_empty()
            && !field_keys.contains(&a.save_to_field)
        {
            v.push(FieldError::new(
                at("ask.save_to_field"),
                format!("no custom Contact Field {:?}", a.save_to_field),
            ));
        }
        if let Some(Kind::Branch(b)) = &s.kind {
            for (c, case) in b.cases.iter().enumerate() {
                for (j, condition) in case.all.iter().enumerate() {
                    let field = at(&format!("branch.cases[{c}].all[{j}]"));
                    defined.condition(&field, condition, &known, &mut v);
                }
            }
        }
    }
    // A trigger's conditions know only the variables an incoming webhook sets.
    let before_first = set.first().cloned().flatten().unwrap_or_default();
    let conditions = definition.trigger.iter().flat_map(|t| &t.conditions);
    for (i, condition) in conditions.enumerate() {
        let field = format!("trigger.conditions[{i}]");
        defined.condition(&field, condition, &before_first, &mut v);
    }
    if v.is_empty() {
        return Ok(());
    }
    let mut within = Violations::new();
    within.extend_within("definition", v);
    Err(within)
}

/// The workflows a definition's steps start, with each step's index.
fn started(definition: &pb::WorkflowDefinition) -> impl Iterator<Item = (usize, &str)> {
    definition
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.kind {
            Some(Kind::StartWorkflow(w)) => Some((i, w.workflow_id.as_str())),
            _ => None,
        })
}

/// Checks the workflows `definition` (of workflow `id`) starts against the Workspace's
/// published ones (`others`, by id): each exists with a manual trigger, and none starts,
/// through others, workflow `id` again (a cycle); every fault under `definition.`.
pub fn check_started(
    id: &str,
    definition: &pb::WorkflowDefinition,
    others: &HashMap<String, pb::WorkflowDefinition>,
) -> Result<(), Violations> {
    use pb::trigger::Kind as T;
    let mut v = Violations::new();
    for (i, target) in started(definition) {
        let field = format!("steps[{i}].start_workflow.workflow_id");
        let Some(other) = others.get(target).filter(|_| target != id) else {
            let why = if target == id {
                "a workflow may not start itself".to_owned()
            } else {
                format!("no published workflow {target:?}")
            };
            v.push(FieldError::new(field, why));
            continue;
        };
        if !matches!(
            other.trigger.as_ref().and_then(|t| t.kind.as_ref()),
            Some(T::Manual(_))
        ) {
            v.push(FieldError::new(
                field,
                "starts only workflows with a manual trigger",
            ));
            continue;
        }
        let mut seen = HashSet::from([target]);
        let mut todo = vec![target];
        while let Some(at) = todo.pop() {
            for (_, next) in others.get(at).into_iter().flat_map(started) {
                if next == id {
                    v.push(FieldError::new(
                        field.clone(),
                        format!("{target:?} starts this workflow again, through {at:?}: a cycle"),
                    ));
                    todo.clear();
                    break;
                }
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
    }
    if v.is_empty() {
        return Ok(());
    }
    let mut within = Violations::new();
    within.extend_within("definition", v);
    Err(within)
}

/// Checks `definition` whole, within `max_steps`; every fault under `definition.`.
pub fn check(
    definition: Option<&pb::WorkflowDefinition>,
    max_steps: usize,
    egress: &Egress,
) -> Result<pb::WorkflowDefinition, Violations> {
    let Some(d) = definition else {
        return Err(FieldError::new("definition", "is required").into());
    };
    let mut v = Violations::new();
    if d.name.trim().is_empty() || d.name.chars().count() > MAX_NAME || d.name.contains('\0') {
        v.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    trigger(d.trigger.as_ref(), &mut v);
    if pb::Reentry::try_from(d.reentry).is_err() {
        v.push(FieldError::new("reentry", "unknown value"));
    }
    if d.steps.is_empty() || d.steps.len() > max_steps {
        v.push(FieldError::new(
            "steps",
            format!("must hold 1 to {max_steps} steps"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, s) in d.steps.iter().enumerate() {
        let mut own = Violations::new();
        step(s, egress, &mut own);
        if !seen.insert(s.id.as_str()) {
            own.push(FieldError::new(
                "id",
                format!("{:?} is used by an earlier step", s.id),
            ));
        }
        v.extend_within(&format!("steps[{i}]"), own);
    }
    if v.is_empty() && !d.steps.is_empty() {
        graph(&d.steps, &mut v);
    }
    if v.is_empty() {
        return Ok(d.clone());
    }
    let mut within = Violations::new();
    within.extend_within("definition", v);
    Err(within)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, next: &str, kind: Kind) -> pb::Step {
        pb::Step {
            id: id.into(),
            next: next.into(),
            kind: Some(kind),
            position: None,
        }
    }

    fn definition(steps: Vec<pb::Step>) -> pb::WorkflowDefinition {
        pb::WorkflowDefinition {
            name: "Greet".into(),
            trigger: Some(pb::Trigger {
                kind: Some(pb::trigger::Kind::Manual(pb::Manual {})),
                conditions: Vec::new(),
            }),
            steps,
            ..Default::default()
        }
    }

    fn faults(d: &pb::WorkflowDefinition) -> Vec<String> {
        let egress = Egress::new(&ism_platform::egress::EgressSettings {
            allow: vec![],
            https_only: false,
        });
        check(Some(d), 100, &egress)
            .err()
            .map(|v| v.iter().map(|f| f.to_string()).collect())
            .unwrap_or_default()
    }

    fn comment() -> Kind {
        Kind::Comment(pb::CommentStep {
            body: "note".into(),
        })
    }

    #[test]
    fn a_graph_with_a_capped_loop_is_valid() {
        let d = definition(vec![
            step("a", "b", comment()),
            step(
                "b",
                "",
                Kind::Jump(pb::JumpStep {
                    to: "a".into(),
                    max_times: 3,
                }),
            ),
        ]);
        assert!(faults(&d).is_empty(), "{:?}", faults(&d));
    }

    #[test]
    fn dangling_unreachable_and_uncapped_loops_are_named() {
        let dangling = definition(vec![step("a", "nowhere", comment())]);
        assert_eq!(
            faults(&dangling),
            ["definition.steps[0].next: no step \"nowhere\""]
        );
        let unreachable = definition(vec![step("a", "", comment()), step("b", "", comment())]);
        assert_eq!(
            faults(&unreachable),
            ["definition.steps[1]: cannot be reached from the first step"]
        );
        let looped = definition(vec![step("a", "b", comment()), step("b", "a", comment())]);
        assert!(
            faults(&looped)[0].contains("closes a loop without a jump step"),
            "{:?}",
            faults(&looped)
        );
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let mut d = definition(vec![
            step(
                "a",
                "b",
                Kind::Branch(pb::BranchStep {
                    cases: (0..11).map(|_| pb::BranchCase::default()).collect(),
                    otherwise: String::new(),
                }),
            ),
            step("a", "", Kind::Wait(pb::WaitStep::default())),
        ]);
        d.name = String::new();
        let all = faults(&d);
        assert!(
            all.contains(&"definition.name: must be 1 to 100 characters".to_owned()),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|f| f.starts_with("definition.steps[0].branch.cases:")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|f| f.starts_with("definition.steps[1].wait.seconds:")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|f| f.starts_with("definition.steps[1].id:")),
            "{all:?}"
        );
    }

    #[test]
    fn waits_take_one_end_and_only_choices_become_tags() {
        let both = pb::WaitStep {
            seconds: 5,
            until_open: true,
            ..Default::default()
        };
        let bad_time = pb::WaitStep {
            until_time: "9am".into(),
            ..Default::default()
        };
        let text = pb::AskStep {
            save_as_tag: true,
            timeout_seconds: 60,
            ..Default::default()
        };
        let d = definition(vec![
            step("a", "b", Kind::Wait(both)),
            step("b", "c", Kind::Wait(bad_time)),
            step("c", "", Kind::Ask(text)),
        ]);
        let all = faults(&d);
        for field in [
            "definition.steps[0].wait:",
            "definition.steps[1].wait.until_time:",
            "definition.steps[2].ask.save_as_tag:",
        ] {
            assert!(
                all.iter().any(|f| f.starts_with(field)),
                "{field} in {all:?}"
            );
        }
    }
}
