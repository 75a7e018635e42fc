//! The filter model shared by search, Segments, streaming and export: a request's
//! `Filter` checked against the Workspace's fields, then compiled into one SQL condition
//! over `contacts c` with every operand bound.
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, SecondsFormat, Utc};
use ism_platform::convert::{from_timestamp, storable};
use ism_platform::error::FieldError;
use ism_proto::contacts::v1::{self as pb, field_value::Kind};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::fields::{FieldKind, Schema};

/// Most groups in a filter, conditions in a group, and operands in a condition.
const MAX_GROUPS: usize = 20;
const MAX_CONDITIONS: usize = 20;
const MAX_VALUES: usize = 100;
/// Longest free-text or text operand.
const MAX_TEXT: usize = 200;
/// Largest WITHIN_LAST_DAYS.
const MAX_DAYS: f64 = 36_500.0;
/// Longest name prefix in `contacts.name_prefixes`; a longer one is matched by its first
/// characters there and checked whole by LIKE.
const NAME_PREFIX: usize = 3;

/// A filter that passed [`check`]: every field known, every operator fitting its type.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    any: bool,
    groups: Vec<Group>,
    /// Lower-cased free text.
    text: Option<String>,
}

#[derive(Debug, Clone)]
struct Group {
    any: bool,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
enum Condition {
    Field(Target, Test),
    /// Tag names, lower-cased.
    Tags(pb::TagOperator, Vec<String>),
    Channels {
        on: bool,
        ids: Vec<Uuid>,
    },
}

/// What a field condition reads.
#[derive(Debug, Clone)]
enum Target {
    /// A default text column; its SQL expression is already lower-case or wrapped in
    /// `lower()`.
    TextColumn(&'static str),
    /// A default timestamptz column (nullable or not).
    TimeColumn(&'static str),
    /// A yes-or-no column of the Contact (blocked, broadcast_opt_out).
    Flag(&'static str),
    Custom(String, FieldKind),
}

/// A field test with its operands parsed for the target's type.
#[derive(Debug, Clone)]
enum Test {
    Empty(bool),
    /// Lower-cased (text) or exact (select) values; `negate` for IS_NOT.
    TextIs {
        values: Vec<String>,
        negate: bool,
    },
    /// A LIKE pattern (escaped, lower-cased); `prefix` holds the raw prefix of STARTS_WITH.
    Like {
        pattern: String,
        prefix: Option<String>,
    },
    NumberIs {
        values: Vec<f64>,
        negate: bool,
    },
    NumberRange(Vec<(Cmp, f64)>),
    /// Date fields compare calendar days.
    DateRange(Vec<(Cmp, NaiveDate)>),
    /// Datetime fields compare instants.
    TimeRange(Vec<(Cmp, DateTime<Utc>)>),
    Checkbox(bool),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Cmp {
    fn sql(self) -> &'static str {
        match self {
            Cmp::Lt => " < ",
            Cmp::Le => " <= ",
            Cmp::Eq => " = ",
            Cmp::Ge => " >= ",
            Cmp::Gt => " > ",
        }
    }
}

/// What a failed check says; the caller wraps it in a `filter` field error.
type Reason = String;

fn invalid(reason: Reason) -> FieldError {
    FieldError::new("filter", reason)
}

/// Checks `filter` against `schema`; an error names the path of the bad part.
pub fn check(filter: &pb::Filter, schema: &Schema) -> Result<Filter, FieldError> {
    if filter.groups.len() > MAX_GROUPS {
        return Err(invalid(format!("groups: at most {MAX_GROUPS}")));
    }
    let text = filter.text.trim();
    if text.len() > MAX_TEXT {
        return Err(invalid(format!("text: at most {MAX_TEXT} bytes")));
    }
    storable("filter", text).map_err(|e| invalid(format!("text: {}", e.reason)))?;
    let mut groups = Vec::with_capacity(filter.groups.len());
    for (g, group) in filter.groups.iter().enumerate() {
        if group.conditions.len() > MAX_CONDITIONS {
            return Err(invalid(format!(
                "groups[{g}].conditions: at most {MAX_CONDITIONS}"
            )));
        }
        let mut conditions = Vec::with_capacity(group.conditions.len());
        for (c, condition) in group.conditions.iter().enumerate() {
            let checked = check_condition(condition, schema)
                .map_err(|reason| invalid(format!("groups[{g}].conditions[{c}].{reason}")))?;
            conditions.push(checked);
        }
        groups.push(Group {
            any: is_any(group.r#match),
            conditions,
        });
    }
    Ok(Filter {
        any: is_any(filter.r#match),
        groups,
        text: (!text.is_empty()).then(|| text.to_lowercase()),
    })
}

fn is_any(m: i32) -> bool {
    pb::Match::try_from(m) == Ok(pb::Match::Any)
}

fn check_condition(condition: &pb::Condition, schema: &Schema) -> Result<Condition, Reason> {
    use pb::condition::Kind as C;
    match &condition.kind {
        None => Err("kind: a field, tags or channels condition is required".into()),
        Some(C::Field(f)) => {
            let target = target(&f.field, schema).map_err(|r| format!("field.field: {r}"))?;
            let test = test(&target, f).map_err(|r| format!("field.{r}"))?;
            Ok(Condition::Field(target, test))
        }
        Some(C::Tags(t)) => {
            let op = match pb::TagOperator::try_from(t.operator) {
                Ok(op) if op != pb::TagOperator::Unspecified => op,
                _ => return Err("tags.operator: unknown tag operator".into()),
            };
            if t.tags.is_empty() || t.tags.len() > 50 {
                return Err("tags.tags: 1 to 50 tag names".into());
            }
            let names = t
                .tags
                .iter()
                .map(|n| crate::tags::name("tags", n).map(|n| n.to_lowercase()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("tags.tags: {}", e.reason))?;
            Ok(Condition::Tags(op, names))
        }
        Some(C::Channels(ch)) => {
            let on = match pb::ChannelOperator::try_from(ch.operator) {
                Ok(pb::ChannelOperator::HasIdentityOn) => true,
                Ok(pb::ChannelOperator::HasNoIdentityOn) => false,
                _ => return Err("channels.operator: unknown channel operator".into()),
            };
            if ch.channel_ids.is_empty() || ch.channel_ids.len() > 50 {
                return Err("channels.channel_ids: 1 to 50 channel ids".into());
            }
            let ids = ch
                .channel_ids
                .iter()
                .map(|id| id.parse::<Uuid>())
                .collect::<Result<_, _>>()
                .map_err(|_| "channel_ids: not a channel id".to_owned())?;
            Ok(Condition::Channels { on, ids })
        }
    }
}

fn target(field: &str, schema: &Schema) -> Result<Target, Reason> {
    Ok(match field {
        "first_name" => Target::TextColumn("lower(c.first_name)"),
        "last_name" => Target::TextColumn("lower(c.last_name)"),
        "name" => Target::TextColumn("c.name_key"),
        "email" => Target::TextColumn("c.email"),
        "phone" => Target::TextColumn("c.phone"),
        "language" => Target::TextColumn("lower(c.language)"),
        "country" => Target::TextColumn("lower(c.country)"),
        "timezone" => Target::TextColumn("lower(c.timezone)"),
        "picture_url" => Target::TextColumn("lower(c.picture_url)"),
        "lifecycle_stage" => Target::TextColumn("c.lifecycle_stage"),
        "created_at" => Target::TimeColumn("c.created_at"),
        "updated_at" => Target::TimeColumn("c.updated_at"),
        "last_interaction_at" => Target::TimeColumn("c.last_interaction_at"),
        "blocked" => Target::Flag("c.blocked"),
        "broadcast_opt_out" => Target::Flag("c.broadcast_opt_out"),
        key => match schema.fields.get(key) {
            Some(def) => Target::Custom(key.to_owned(), def.kind),
            None => return Err(format!("no such contact field {key:?}")),
        },
    })
}

/// The broad type a target compares as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Text,
    Select,
    Number,
    Date,
    DateTime,
    Checkbox,
}

fn shape(target: &Target) -> Shape {
    match target {
        Target::TextColumn(_) => Shape::Text,
        Target::TimeColumn(_) => Shape::DateTime,
        Target::Flag(_) => Shape::Checkbox,
        Target::Custom(_, kind) => match kind {
            FieldKind::Text | FieldKind::Email | FieldKind::Phone | FieldKind::Url => Shape::Text,
            FieldKind::Select => Shape::Select,
            FieldKind::Number => Shape::Number,
            FieldKind::Date => Shape::Date,
            FieldKind::DateTime => Shape::DateTime,
            FieldKind::Checkbox => Shape::Checkbox,
        },
    }
}

fn test(target: &Target, f: &pb::FieldCondition) -> Result<Test, Reason> {
    use pb::FieldOperator as Op;
    let op = Op::try_from(f.operator).unwrap_or(Op::Unspecified);
    let shape = shape(target);
    let values: Vec<&Kind> = f.values.iter().filter_map(|v| v.kind.as_ref()).collect();
    if values.len() != f.values.len() || values.len() > MAX_VALUES {
        return Err(format!(
            "values: 0 to {MAX_VALUES} values, each with a kind"
        ));
    }
    let count = |n: usize| -> Result<(), Reason> {
        if values.len() == n {
            Ok(())
        } else {
            Err(format!("values: {op:?} takes {n} value(s)"))
        }
    };
    let some = || -> Result<(), Reason> {
        if values.is_empty() {
            Err(format!("values: {op:?} takes at least one value"))
        } else {
            Ok(())
        }
    };
    let mismatch = || format!("operator: {op:?} does not apply to a {shape:?} field");
    let test = match (op, shape) {
        (Op::Unspecified, _) => return Err("operator: unknown operator".into()),
        (Op::IsEmpty | Op::IsNotEmpty, Shape::Checkbox) => return Err(mismatch()),
        (Op::IsEmpty, _) => {
            count(0)?;
            Test::Empty(true)
        }
        (Op::IsNotEmpty, _) => {
            count(0)?;
            Test::Empty(false)
        }
        (Op::Is | Op::IsNot, Shape::Text | Shape::Select) => {
            some()?;
            let lower = shape == Shape::Text;
            let values = values
                .iter()
                .map(|v| text(v).map(|t| if lower { t.to_lowercase() } else { t }))
                .collect::<Result<_, _>>()?;
            Test::TextIs {
                values,
                negate: op == Op::IsNot,
            }
        }
        (Op::Contains | Op::StartsWith, Shape::Text) => {
            count(1)?;
            let value = text(values[0])?.to_lowercase();
            if value.is_empty() {
                return Err("values: the text must not be empty".into());
            }
            let escaped = escape_like(&value);
            if op == Op::Contains {
                Test::Like {
                    pattern: format!("%{escaped}%"),
                    prefix: None,
                }
            } else {
                Test::Like {
                    pattern: format!("{escaped}%"),
                    prefix: Some(value),
                }
            }
        }
        (Op::Is | Op::IsNot, Shape::Number) => {
            some()?;
            let values = values.iter().map(|v| number(v)).collect::<Result<_, _>>()?;
            Test::NumberIs {
                values,
                negate: op == Op::IsNot,
            }
        }
        (Op::GreaterThan | Op::LessThan, Shape::Number) => {
            count(1)?;
            let cmp = if op == Op::GreaterThan {
                Cmp::Gt
            } else {
                Cmp::Lt
            };
            Test::NumberRange(vec![(cmp, number(values[0])?)])
        }
        (Op::Between, Shape::Number) => {
            count(2)?;
            Test::NumberRange(vec![
                (Cmp::Ge, number(values[0])?),
                (Cmp::Le, number(values[1])?),
            ])
        }
        (Op::Is | Op::IsNot, Shape::Checkbox) => {
            count(1)?;
            match values[0] {
                Kind::Checkbox(b) => Test::Checkbox(*b != (op == Op::IsNot)),
                _ => return Err("values: a checkbox value is required".into()),
            }
        }
        (Op::Is | Op::Before | Op::After | Op::Between | Op::WithinLastDays, Shape::Date) => {
            Test::DateRange(date_bounds(op, &values)?)
        }
        (Op::Is | Op::Before | Op::After | Op::Between | Op::WithinLastDays, Shape::DateTime) => {
            Test::TimeRange(time_bounds(op, &values)?)
        }
        _ => return Err(mismatch()),
    };
    Ok(test)
}

fn text(v: &Kind) -> Result<String, Reason> {
    match v {
        Kind::Text(t) if t.len() > MAX_TEXT => Err(format!("values: at most {MAX_TEXT} bytes")),
        Kind::Text(t) => match storable("values", t.trim()) {
            Ok(t) => Ok(t.to_owned()),
            Err(e) => Err(format!("values: {}", e.reason)),
        },
        _ => Err("values: a text value is required".into()),
    }
}

fn number(v: &Kind) -> Result<f64, Reason> {
    match v {
        Kind::Number(n) if n.is_finite() => Ok(*n),
        _ => Err("values: a finite number is required".into()),
    }
}

/// A date operand: a date, or the UTC day of a datetime.
fn day(v: &Kind) -> Result<NaiveDate, Reason> {
    match v {
        Kind::Date(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| "values: a date as YYYY-MM-DD is required".to_owned()),
        Kind::Datetime(ts) => from_timestamp(ts)
            .map(|t| t.date_naive())
            .ok_or_else(|| "values: not a valid timestamp".to_owned()),
        _ => Err("values: a date or datetime value is required".into()),
    }
}

fn days(values: &[&Kind]) -> Result<i64, Reason> {
    match values {
        [Kind::Number(n)] if (1.0..=MAX_DAYS).contains(n) && n.fract() == 0.0 => Ok(*n as i64),
        _ => Err(format!(
            "values: WITHIN_LAST_DAYS takes one whole number of days, 1 to {MAX_DAYS}"
        )),
    }
}

fn date_bounds(op: pb::FieldOperator, values: &[&Kind]) -> Result<Vec<(Cmp, NaiveDate)>, Reason> {
    use pb::FieldOperator as Op;
    let one = || match values {
        [v] => day(v),
        _ => Err(format!("values: {op:?} takes 1 value")),
    };
    Ok(match op {
        Op::Is => vec![(Cmp::Eq, one()?)],
        Op::Before => vec![(Cmp::Lt, one()?)],
        Op::After => vec![(Cmp::Gt, one()?)],
        Op::Between => match values {
            [a, b] => vec![(Cmp::Ge, day(a)?), (Cmp::Le, day(b)?)],
            _ => return Err("values: BETWEEN takes 2 values".into()),
        },
        _ => {
            let today = Utc::now().date_naive();
            vec![
                (Cmp::Ge, today - Duration::days(days(values)?)),
                (Cmp::Le, today),
            ]
        }
    })
}

/// Datetime bounds: a date operand stands for its whole UTC day.
fn time_bounds(
    op: pb::FieldOperator,
    values: &[&Kind],
) -> Result<Vec<(Cmp, DateTime<Utc>)>, Reason> {
    use pb::FieldOperator as Op;
    /// The first instant of an operand and, for a date, the first instant after it.
    fn span(v: &Kind) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), Reason> {
        match v {
            Kind::Datetime(ts) => from_timestamp(ts)
                .map(|t| (t, None))
                .ok_or_else(|| "values: not a valid timestamp".to_owned()),
            other => {
                let start = day(other)?.and_time(NaiveTime::MIN).and_utc();
                Ok((start, Some(start + Duration::days(1))))
            }
        }
    }
    let one = || match values {
        [v] => span(v),
        _ => Err(format!("values: {op:?} takes 1 value")),
    };
    Ok(match op {
        Op::Is => match one()? {
            (start, Some(end)) => vec![(Cmp::Ge, start), (Cmp::Lt, end)],
            (at, None) => vec![(Cmp::Eq, at)],
        },
        Op::Before => vec![(Cmp::Lt, one()?.0)],
        Op::After => match one()? {
            (_, Some(end)) => vec![(Cmp::Ge, end)],
            (at, None) => vec![(Cmp::Gt, at)],
        },
        Op::Between => match values {
            [a, b] => {
                let (from, _) = span(a)?;
                match span(b)? {
                    (_, Some(end)) => vec![(Cmp::Ge, from), (Cmp::Lt, end)],
                    (to, None) => vec![(Cmp::Ge, from), (Cmp::Le, to)],
                }
            }
            _ => return Err("values: BETWEEN takes 2 values".into()),
        },
        _ => {
            let now = Utc::now();
            vec![
                (Cmp::Ge, now - Duration::days(days(values)?)),
                (Cmp::Le, now),
            ]
        }
    })
}

fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The smallest string greater than every string starting with `prefix` in byte order,
/// if there is one.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Custom datetimes are stored as RFC 3339 UTC with microseconds, so text order is
/// time order (ADR 7).
fn stored_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Tag ids by lower-cased name, resolved before a query so tag conditions are array
/// tests on `contacts.tag_ids` (served by its GIN index).
pub type TagIds = std::collections::HashMap<String, Uuid>;

impl Filter {
    /// Every Tag name the filter mentions (lower-cased).
    pub fn tag_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| &g.conditions)
            .filter_map(|c| match c {
                Condition::Tags(_, names) => Some(names.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Appends `c.workspace_id = … AND c.deleted_at IS NULL AND <filter>` to `q`.
    pub fn push_where(&self, q: &mut QueryBuilder<Postgres>, workspace_id: Uuid, tags: &TagIds) {
        q.push("c.workspace_id = ")
            .push_bind(workspace_id)
            .push(" AND c.deleted_at IS NULL");
        if let Some(text) = &self.text {
            q.push(" AND c.search_text LIKE ")
                .push_bind(format!("%{}%", escape_like(text)));
        }
        if self.groups.is_empty() {
            return;
        }
        q.push(" AND (");
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                q.push(if self.any { " OR " } else { " AND " });
            }
            q.push("(");
            if group.conditions.is_empty() {
                q.push("TRUE");
            }
            for (j, condition) in group.conditions.iter().enumerate() {
                if j > 0 {
                    q.push(if group.any { " OR " } else { " AND " });
                }
                q.push("(");
                push_condition(q, condition, workspace_id, tags);
                q.push(")");
            }
            q.push(")");
        }
        q.push(")");
    }
}

fn push_condition(
    q: &mut QueryBuilder<Postgres>,
    condition: &Condition,
    workspace_id: Uuid,
    tags: &TagIds,
) {
    match condition {
        Condition::Field(target, test) => push_field(q, target, test),
        Condition::Tags(op, names) => {
            let ids: Vec<Uuid> = names.iter().filter_map(|n| tags.get(n)).copied().collect();
            match op {
                pb::TagOperator::HasAll if ids.len() < names.len() => {
                    q.push("FALSE");
                }
                pb::TagOperator::HasAll => {
                    q.push("c.tag_ids @> ").push_bind(ids).push("::uuid[]");
                }
                pb::TagOperator::HasNone => {
                    q.push("NOT c.tag_ids && ").push_bind(ids).push("::uuid[]");
                }
                _ => {
                    q.push("c.tag_ids && ").push_bind(ids).push("::uuid[]");
                }
            }
        }
        Condition::Channels { on, ids } => {
            if !on {
                q.push("NOT ");
            }
            q.push("EXISTS (SELECT 1 FROM channel_identities i WHERE i.contact_id = c.id AND i.workspace_id = ")
                .push_bind(workspace_id)
                .push(" AND i.channel_id = ANY(")
                .push_bind(ids.clone())
                .push("))");
        }
    }
}

fn push_field(q: &mut QueryBuilder<Postgres>, target: &Target, test: &Test) {
    match (target, test) {
        (Target::Custom(key, _), Test::Empty(empty)) => {
            q.push(if *empty { "NOT " } else { "" })
                .push("c.custom ? ")
                .push_bind(key.clone());
        }
        (Target::TextColumn(expr), Test::Empty(empty)) => {
            q.push(*expr).push(if *empty { " = ''" } else { " <> ''" });
        }
        (Target::TimeColumn(expr), Test::Empty(empty)) => {
            q.push(*expr)
                .push(if *empty { " IS NULL" } else { " IS NOT NULL" });
        }
        (Target::Custom(key, FieldKind::Select), Test::TextIs { values, negate }) => {
            // Containment lets the GIN index answer equality on a select field.
            q.push(if *negate { "NOT (" } else { "(" });
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("c.custom @> ")
                    .push_bind(serde_json::json!({ key.as_str(): v }));
            }
            q.push(")");
        }
        (_, Test::TextIs { values, negate }) => {
            q.push(if *negate {
                "NOT coalesce("
            } else {
                "coalesce("
            });
            push_text(q, target);
            q.push(" = ANY(")
                .push_bind(values.clone())
                .push("), false)");
        }
        (_, Test::Like { pattern, prefix }) => {
            push_text(q, target);
            q.push(" LIKE ").push_bind(pattern.clone());
            if let (Target::TextColumn("c.name_key"), Some(prefix)) = (target, prefix) {
                // The filter index holds each name's first characters, so it intersects
                // a name prefix with the Tags and custom values inside one index scan.
                q.push(" AND c.name_prefixes @> ARRAY[")
                    .push_bind(prefix.chars().take(NAME_PREFIX).collect::<String>())
                    .push("]::text[]");
                // A byte-order range lets the name index serve a prefix even in a generic
                // plan, where LIKE with a parameter cannot: the way to a page by name.
                q.push(" AND c.name_key >= ").push_bind(prefix.clone());
                if let Some(end) = prefix_end(prefix) {
                    q.push(" AND c.name_key < ").push_bind(end);
                }
            }
        }
        (Target::Custom(key, _), Test::NumberIs { values, negate }) => {
            q.push(if *negate {
                "NOT coalesce("
            } else {
                "coalesce("
            });
            push_number(q, key);
            q.push(" = ANY(")
                .push_bind(values.clone())
                .push("), false)");
        }
        (Target::Custom(key, _), Test::NumberRange(bounds)) => {
            for (i, (cmp, n)) in bounds.iter().enumerate() {
                if i > 0 {
                    q.push(" AND ");
                }
                push_number(q, key);
                q.push(cmp.sql()).push_bind(*n);
            }
        }
        (Target::Custom(key, _), Test::DateRange(bounds)) => {
            for (i, (cmp, d)) in bounds.iter().enumerate() {
                if i > 0 {
                    q.push(" AND ");
                }
                q.push("c.custom ->> ")
                    .push_bind(key.clone())
                    .push(cmp.sql())
                    .push_bind(d.format("%Y-%m-%d").to_string());
            }
        }
        (_, Test::TimeRange(bounds)) => {
            for (i, (cmp, t)) in bounds.iter().enumerate() {
                if i > 0 {
                    q.push(" AND ");
                }
                match target {
                    Target::TimeColumn(expr) => {
                        q.push(*expr).push(cmp.sql()).push_bind(*t);
                    }
                    Target::Custom(key, _) => {
                        q.push("c.custom ->> ")
                            .push_bind(key.clone())
                            .push(cmp.sql())
                            .push_bind(stored_time(*t));
                    }
                    _ => {
                        q.push("FALSE");
                    }
                }
            }
        }
        (Target::Flag(column), Test::Checkbox(b)) => {
            q.push(*column).push(" = ").push_bind(*b);
        }
        (Target::Custom(key, _), Test::Checkbox(b)) => {
            q.push("coalesce(c.custom -> ")
                .push_bind(key.clone())
                .push(", 'false'::jsonb) = to_jsonb(")
                .push_bind(*b)
                .push(")");
        }
        // `test` only builds pairs that fit the target's shape.
        _ => {
            q.push("FALSE");
        }
    }
}

fn push_text(q: &mut QueryBuilder<Postgres>, target: &Target) {
    match target {
        Target::TextColumn(expr) => {
            q.push(*expr);
        }
        Target::Custom(key, _) => {
            q.push("lower(c.custom ->> ")
                .push_bind(key.clone())
                .push(")");
        }
        _ => {
            q.push("NULL");
        }
    }
}

fn push_number(q: &mut QueryBuilder<Postgres>, key: &str) {
    q.push("(CASE WHEN jsonb_typeof(c.custom -> ")
        .push_bind(key.to_owned())
        .push(") = 'number' THEN (c.custom ->> ")
        .push_bind(key.to_owned())
        .push(")::float8 END)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_string_in_byte_order() {
        assert_eq!(prefix_end("ann").as_deref(), Some("ano"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
