//! Custom Contact Fields: definitions, and values validated against them on every write.
//!
//! Values live in `contacts.custom` (JSONB) as plain JSON: strings for text, email,
//! phone, URL, select and date (`YYYY-MM-DD`) fields, RFC 3339 UTC strings for
//! datetimes, numbers and booleans for the rest.
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use ism_platform::convert::{from_timestamp, storable, timestamp};
use ism_platform::error::FieldError;
use ism_proto::contacts::v1::{self as pb, field_value::Kind};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::profile::{self, Profile};
use crate::values::{Custom, Stored};

/// Longest text value.
const MAX_TEXT: usize = 4096;
/// Most custom fields one Workspace may define.
pub const MAX_FIELDS: i64 = 200;
/// Keys of the default fields other than the profile's ([`Profile::FIELDS`]), so a custom
/// field can never shadow one.
const OTHER_DEFAULT_KEYS: &[&str] = &[
    "id",
    "name",
    "created_at",
    "updated_at",
    "last_interaction_at",
    "blocked",
    "broadcast_opt_out",
    "lifecycle_stage",
    "tags",
    "channel",
];

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
    Date,
    DateTime,
    Checkbox,
    Select,
    Email,
    Phone,
    Url,
}

impl FieldKind {
    /// The name stored in `contact_fields.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Date => "date",
            FieldKind::DateTime => "datetime",
            FieldKind::Checkbox => "checkbox",
            FieldKind::Select => "select",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Url => "url",
        }
    }

    pub(crate) fn parse(stored: &str) -> Result<Self, Error> {
        Ok(match stored {
            "text" => FieldKind::Text,
            "number" => FieldKind::Number,
            "date" => FieldKind::Date,
            "datetime" => FieldKind::DateTime,
            "checkbox" => FieldKind::Checkbox,
            "select" => FieldKind::Select,
            "email" => FieldKind::Email,
            "phone" => FieldKind::Phone,
            "url" => FieldKind::Url,
            other => {
                return Err(Error::Unexpected(anyhow::anyhow!(
                    "stored field kind {other:?}"
                )));
            }
        })
    }

    /// The API value of a stored value (skipped when it no longer fits the kind).
    pub fn to_proto_value(self, stored: Stored) -> Option<pb::FieldValue> {
        let kind = match (self, stored) {
            (FieldKind::Number, Stored::Number(n)) => Kind::Number(n),
            (FieldKind::Checkbox, Stored::Bool(b)) => Kind::Checkbox(b),
            (FieldKind::Date, Stored::Text(s)) => Kind::Date(s),
            (FieldKind::DateTime, Stored::Text(s)) => {
                Kind::Datetime(timestamp(DateTime::parse_from_rfc3339(&s).ok()?.to_utc()))
            }
            (
                FieldKind::Text
                | FieldKind::Email
                | FieldKind::Phone
                | FieldKind::Url
                | FieldKind::Select,
                Stored::Text(s),
            ) => Kind::Text(s),
            _ => return None,
        };
        Some(pb::FieldValue { kind: Some(kind) })
    }

    /// The kind of a request's type, or an error naming `field`.
    pub fn from_proto(field: &'static str, t: i32) -> Result<Self, FieldError> {
        use pb::FieldType as T;
        Ok(match T::try_from(t).unwrap_or(T::Unspecified) {
            T::Text => FieldKind::Text,
            T::Number => FieldKind::Number,
            T::Date => FieldKind::Date,
            T::Datetime => FieldKind::DateTime,
            T::Checkbox => FieldKind::Checkbox,
            T::Select => FieldKind::Select,
            T::Email => FieldKind::Email,
            T::Phone => FieldKind::Phone,
            T::Url => FieldKind::Url,
            T::Unspecified => return Err(FieldError::new(field, "a field type is required")),
        })
    }

    fn to_proto(self) -> pb::FieldType {
        use pb::FieldType as T;
        match self {
            FieldKind::Text => T::Text,
            FieldKind::Number => T::Number,
            FieldKind::Date => T::Date,
            FieldKind::DateTime => T::Datetime,
            FieldKind::Checkbox => T::Checkbox,
            FieldKind::Select => T::Select,
            FieldKind::Email => T::Email,
            FieldKind::Phone => T::Phone,
            FieldKind::Url => T::Url,
        }
    }
}

/// A custom field definition.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub key: String,
    pub label: String,
    pub description: String,
    pub kind: FieldKind,
    pub options: Vec<String>,
    pub default_value: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct FieldRow {
    key: String,
    label: String,
    description: String,
    kind: String,
    options: Vec<String>,
    default_value: Option<Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<FieldRow> for FieldDef {
    type Error = Error;

    fn try_from(r: FieldRow) -> Result<Self, Error> {
        Ok(FieldDef {
            kind: FieldKind::parse(&r.kind)?,
            key: r.key,
            label: r.label,
            description: r.description,
            options: r.options,
            default_value: r.default_value,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl FieldDef {
    /// The stored JSON of `value` for this field, or an error naming `custom_fields.<key>`.
    /// `None` in, `None` out: clearing is always allowed.
    pub fn validate(&self, value: Option<&Kind>) -> Result<Option<Value>, FieldError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let bad =
            |reason: String| FieldError::new("custom_fields", format!("{}: {reason}", self.key));
        let wrong = || {
            bad(format!(
                "a {} field does not take this kind of value",
                self.kind.as_str()
            ))
        };
        let stored = match (self.kind, value) {
            (FieldKind::Text, Kind::Text(t)) => {
                if t.len() > MAX_TEXT {
                    return Err(bad(format!("at most {MAX_TEXT} bytes")));
                }
                Value::String(
                    storable("custom_fields", t)
                        .map_err(|e| bad(e.reason))?
                        .to_owned(),
                )
            }
            (FieldKind::Email, Kind::Text(t)) => {
                Value::String(profile::email(t).map_err(|e| bad(e.reason))?)
            }
            (FieldKind::Phone, Kind::Text(t)) => {
                Value::String(profile::phone(t, "").map_err(|e| bad(e.reason))?)
            }
            (FieldKind::Url, Kind::Text(t)) => {
                Value::String(profile::url(t).map_err(|e| bad(e.reason))?)
            }
            (FieldKind::Select, Kind::Text(t)) => {
                if !self.options.iter().any(|o| o == t) {
                    return Err(bad(format!("{t:?} is not one of {:?}", self.options)));
                }
                Value::String(t.clone())
            }
            (FieldKind::Number, Kind::Number(n)) => serde_json::Number::from_f64(*n)
                .map(Value::Number)
                .ok_or_else(|| bad("must be a finite number".into()))?,
            (FieldKind::Checkbox, Kind::Checkbox(b)) => Value::Bool(*b),
            (FieldKind::Date, Kind::Date(d)) => {
                let date = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| bad("must be a date as YYYY-MM-DD".into()))?;
                Value::String(date.format("%Y-%m-%d").to_string())
            }
            (FieldKind::DateTime, Kind::Datetime(ts)) => {
                let at = from_timestamp(ts).ok_or_else(|| bad("not a valid timestamp".into()))?;
                Value::String(at.to_rfc3339_opts(SecondsFormat::Micros, true))
            }
            _ => return Err(wrong()),
        };
        Ok(Some(stored))
    }

    /// The API value of a stored JSON value (skipped when it no longer fits the type).
    pub fn to_proto_value(&self, stored: &Value) -> Option<pb::FieldValue> {
        self.kind.to_proto_value(Stored::of(stored))
    }

    pub fn to_proto(&self) -> pb::ContactField {
        pb::ContactField {
            key: self.key.clone(),
            label: self.label.clone(),
            description: self.description.clone(),
            r#type: self.kind.to_proto() as i32,
            options: self.options.clone(),
            default_value: self
                .default_value
                .as_ref()
                .and_then(|v| self.to_proto_value(v)),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        }
    }
}

/// A Workspace's field definitions by key.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub fields: HashMap<String, FieldDef>,
}

impl Schema {
    /// Validates a request's custom values into stored JSON (`None` = clear). Unknown
    /// keys and mistyped values fail naming the key.
    pub fn validate(
        &self,
        values: &HashMap<String, pb::FieldValue>,
    ) -> Result<BTreeMap<String, Option<Value>>, FieldError> {
        let mut out = BTreeMap::new();
        for (key, value) in values {
            let def = self.fields.get(key).ok_or_else(|| {
                FieldError::new("custom_fields", format!("{key}: no such contact field"))
            })?;
            out.insert(key.clone(), def.validate(value.kind.as_ref())?);
        }
        Ok(out)
    }

    /// The API values of a stored `custom` object, dropping keys no longer defined.
    pub fn to_proto(&self, custom: &Custom) -> BTreeMap<String, pb::FieldValue> {
        custom.to_proto(|key| self.fields.get(key).map(|def| def.kind))
    }

    /// Default values of every field that has one.
    pub fn defaults(&self) -> serde_json::Map<String, Value> {
        self.fields
            .values()
            .filter_map(|f| Some((f.key.clone(), f.default_value.clone()?)))
            .collect()
    }
}

/// The field definitions of a Workspace.
pub async fn schema(conn: &mut PgConnection, workspace_id: Uuid) -> Result<Schema, Error> {
    let rows: Vec<FieldRow> = sqlx::query_as(
        "SELECT key, label, description, kind, options, default_value, created_at, updated_at
         FROM contact_fields WHERE workspace_id = $1 ORDER BY key",
    )
    .bind(workspace_id)
    .fetch_all(conn)
    .await?;
    let mut fields = HashMap::with_capacity(rows.len());
    for row in rows {
        let def = FieldDef::try_from(row)?;
        fields.insert(def.key.clone(), def);
    }
    Ok(Schema { fields })
}

/// A field definition checked for shape, before it is stored.
#[derive(Debug)]
pub struct NewField {
    pub key: String,
    pub label: String,
    pub description: String,
    pub kind: FieldKind,
    pub options: Vec<String>,
    pub default_value: Option<pb::FieldValue>,
}

impl NewField {
    /// The definition as stored, with its default validated against its own type.
    fn checked(&self) -> Result<(FieldDef, Option<Value>), FieldError> {
        check_key(&self.key)?;
        let label = self.label.trim();
        if label.is_empty() || label.len() > 100 {
            return Err(FieldError::new("field.label", "must be 1 to 100 bytes"));
        }
        if self.description.len() > 1000 {
            return Err(FieldError::new("field.description", "at most 1000 bytes"));
        }
        let mut seen = std::collections::HashSet::new();
        for option in &self.options {
            if option.trim().is_empty() || option.len() > 100 {
                return Err(FieldError::new(
                    "field.options",
                    "each must be 1 to 100 bytes",
                ));
            }
            if !seen.insert(option) {
                return Err(FieldError::new(
                    "field.options",
                    format!("{option:?} is repeated"),
                ));
            }
        }
        match (self.kind, self.options.len()) {
            (FieldKind::Select, 0) => {
                return Err(FieldError::new(
                    "field.options",
                    "a select field needs options",
                ));
            }
            (FieldKind::Select, n) if n > 500 => {
                return Err(FieldError::new("field.options", "at most 500 options"));
            }
            (FieldKind::Select, _) | (_, 0) => {}
            _ => {
                return Err(FieldError::new(
                    "field.options",
                    "only select fields have options",
                ));
            }
        }
        let def = FieldDef {
            key: self.key.clone(),
            label: label.to_owned(),
            description: self.description.clone(),
            kind: self.kind,
            options: self.options.clone(),
            default_value: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let default = def
            .validate(self.default_value.as_ref().and_then(|v| v.kind.as_ref()))
            .map_err(|e| FieldError::new("field.default_value", e.reason))?;
        Ok((def, default))
    }
}

fn check_key(key: &str) -> Result<(), FieldError> {
    let shaped = key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !shaped {
        return Err(FieldError::new(
            "field.key",
            "1 to 64 lower-case letters, digits or underscores, starting with a letter",
        ));
    }
    if Profile::FIELDS.contains(&key) || OTHER_DEFAULT_KEYS.contains(&key) {
        return Err(FieldError::new(
            "field.key",
            format!("{key} is a default field"),
        ));
    }
    Ok(())
}

const FIELD_COLUMNS: &str =
    "key, label, description, kind, options, default_value, created_at, updated_at";

/// Stores a new field definition.
pub async fn create(
    pool: &PgPool,
    workspace_id: Uuid,
    field: &NewField,
) -> Result<FieldDef, Error> {
    let (def, default) = field.checked()?;
    let mut tx = pool.begin().await?;
    // One definer at a time per workspace keeps the count limit exact.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM contact_fields WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_FIELDS {
        return Err(Error::precondition(
            "workspace",
            format!("a workspace has at most {MAX_FIELDS} contact fields"),
        ));
    }
    let row: Option<FieldRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contact_fields (workspace_id, key, label, description, kind, options, default_value)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {FIELD_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(&def.key)
    .bind(&def.label)
    .bind(&def.description)
    .bind(def.kind.as_str())
    .bind(&def.options)
    .bind(default)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| {
        Error::AlreadyExists(FieldError::new(
            "field.key",
            format!("the contact field {} exists", def.key),
        ))
    })?;
    tx.commit().await?;
    row.try_into()
}

/// Replaces a field's label, description, options and default. The type never changes
/// (stored values would stop matching it); an option still held by a Contact cannot be
/// removed.
pub async fn update(
    pool: &PgPool,
    workspace_id: Uuid,
    field: &NewField,
) -> Result<FieldDef, Error> {
    let (def, default) = field.checked()?;
    let mut tx = pool.begin().await?;
    let current: Option<FieldRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {FIELD_COLUMNS} FROM contact_fields WHERE workspace_id = $1 AND key = $2 FOR UPDATE"
    )))
    .bind(workspace_id)
    .bind(&def.key)
    .fetch_optional(&mut *tx)
    .await?;
    let current = FieldDef::try_from(current.ok_or(Error::NotFound("contact field"))?)?;
    if current.kind != def.kind {
        return Err(Error::precondition(
            "field.kind",
            format!(
                "field {} is a {} field; its type cannot change (create a new field instead)",
                def.key,
                current.kind.as_str()
            ),
        ));
    }
    let removed: Vec<&String> = current
        .options
        .iter()
        .filter(|o| !def.options.contains(o))
        .collect();
    if !removed.is_empty() {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND custom ->> $2 = ANY($3)",
        )
        .bind(workspace_id)
        .bind(&def.key)
        .bind(&removed)
        .fetch_one(&mut *tx)
        .await?;
        if held > 0 {
            return Err(Error::precondition(
                "field.options",
                format!(
                    "{held} contacts hold options {removed:?} of field {}; change their values first",
                    def.key
                ),
            ));
        }
    }
    let row: FieldRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contact_fields SET label = $3, description = $4, options = $5, default_value = $6,
             updated_at = now()
         WHERE workspace_id = $1 AND key = $2 RETURNING {FIELD_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(&def.key)
    .bind(&def.label)
    .bind(&def.description)
    .bind(&def.options)
    .bind(default)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    row.try_into()
}

/// Deletes a field definition and, in the same transaction, every Contact's value of it,
/// so a later field with the same key never sees old values of another type.
pub async fn delete(pool: &PgPool, workspace_id: Uuid, key: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM contact_fields WHERE workspace_id = $1 AND key = $2")
        .bind(workspace_id)
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound("contact field"));
    }
    sqlx::query(
        "UPDATE contacts SET custom = custom - $2::text
         WHERE workspace_id = $1 AND custom ? $2::text",
    )
    .bind(workspace_id)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: FieldKind, options: &[&str]) -> FieldDef {
        FieldDef {
            key: "f".into(),
            label: "F".into(),
            description: String::new(),
            kind,
            options: options.iter().map(|s| s.to_string()).collect(),
            default_value: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn text(s: &str) -> Kind {
        Kind::Text(s.into())
    }

    #[test]
    fn every_type_accepts_its_own_kind_and_round_trips() {
        let cases = [
            (def(FieldKind::Text, &[]), text("hello")),
            (def(FieldKind::Number, &[]), Kind::Number(4.5)),
            (def(FieldKind::Checkbox, &[]), Kind::Checkbox(true)),
            (def(FieldKind::Date, &[]), Kind::Date("2024-02-29".into())),
            (
                def(FieldKind::DateTime, &[]),
                Kind::Datetime(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
            ),
            (def(FieldKind::Select, &["gold", "silver"]), text("gold")),
            (def(FieldKind::Email, &[]), text("ada@example.com")),
            (def(FieldKind::Phone, &[]), text("+4915112345678")),
            (def(FieldKind::Url, &[]), text("https://example.com/x")),
        ];
        for (def, value) in cases {
            let stored = def.validate(Some(&value)).unwrap().unwrap();
            let back = def.to_proto_value(&stored).unwrap();
            assert_eq!(back.kind, Some(value), "{:?}", def.kind);
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (def(FieldKind::Text, &[]), Kind::Number(1.0)),
            (def(FieldKind::Number, &[]), text("1")),
            (def(FieldKind::Number, &[]), Kind::Number(f64::NAN)),
            (def(FieldKind::Date, &[]), Kind::Date("2023-02-29".into())),
            (def(FieldKind::Date, &[]), text("2023-02-01")),
            (def(FieldKind::Select, &["gold"]), text("bronze")),
            (def(FieldKind::Email, &[]), text("not an email")),
            (def(FieldKind::Phone, &[]), text("12")),
            (def(FieldKind::Url, &[]), text("ftp://x")),
            (def(FieldKind::Checkbox, &[]), text("true")),
        ];
        for (def, value) in cases {
            let err = def.validate(Some(&value)).unwrap_err();
            assert_eq!(err.field, "custom_fields");
            assert!(err.reason.starts_with("f:"), "{}", err.reason);
        }
    }

    #[test]
    fn keys_are_shaped_and_never_shadow_default_fields() {
        assert!(check_key("plan_tier2").is_ok());
        for bad in ["", "Plan", "2x", "a-b", "email", &"a".repeat(65)] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
