//! A Contact's stored custom values as read from Postgres: the JSON text of its
//! `custom` object, kept as text until something needs it. Rendering a Contact turns the
//! text straight into API values, without building a JSON tree first: a streamed
//! segment renders 20 or so values for each of 100,000 Contacts.
use std::collections::BTreeMap;
use std::fmt;

use ism_proto::contacts::v1 as pb;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::types::Json;

use crate::fields::FieldKind;

/// The stored `custom` object of a Contact.
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(transparent)]
pub struct Custom(Json<Box<RawValue>>);

impl Custom {
    /// The values as a JSON object (empty when the stored value is not one).
    pub fn object(&self) -> serde_json::Map<String, Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// The API values, each by the kind `kind_of` gives its key; keys without one (no
    /// longer defined) and values that no longer fit their kind are left out.
    pub fn to_proto(
        &self,
        kind_of: impl Fn(&str) -> Option<FieldKind>,
    ) -> BTreeMap<String, pb::FieldValue> {
        let mut json = serde_json::Deserializer::from_str(self.0.get());
        ApiValues(kind_of)
            .deserialize(&mut json)
            .unwrap_or_default()
    }
}

/// A stored value, as far as any field kind reads one.
pub enum Stored {
    Bool(bool),
    Number(f64),
    Text(String),
    /// Null, an array or an object: no kind reads these.
    Other,
}

impl Stored {
    /// The stored value of a JSON value already parsed.
    pub fn of(value: &Value) -> Self {
        Stored::deserialize(value).unwrap_or(Stored::Other)
    }
}

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StoredVisitor)
    }
}

struct StoredVisitor;

impl<'de> Visitor<'de> for StoredVisitor {
    type Value = Stored;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Stored, E> {
        Ok(Stored::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Stored, E> {
        Ok(Stored::Number(n as f64))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Stored, E> {
        Ok(Stored::Number(n as f64))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Stored, E> {
        Ok(Stored::Number(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Stored, E> {
        Ok(Stored::Text(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Stored, E> {
        Ok(Stored::Text(s))
    }

    fn visit_unit<E>(self) -> Result<Stored, E> {
        Ok(Stored::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stored, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Stored::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stored, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Stored::Other)
    }
}

/// Reads a stored object into API values by the kinds its function gives.
struct ApiValues<F>(F);

impl<'de, F: Fn(&str) -> Option<FieldKind>> DeserializeSeed<'de> for ApiValues<F> {
    type Value = BTreeMap<String, pb::FieldValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: Fn(&str) -> Option<FieldKind>> Visitor<'de> for ApiValues<F> {
    type Value = BTreeMap<String, pb::FieldValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<String>()? {
            let stored: Stored = map.next_value()?;
            if let Some(value) = (self.0)(&key).and_then(|kind| kind.to_proto_value(stored)) {
                values.push((key, value));
            }
        }
        // Built in bulk once sorted; Postgres keeps an object's keys shortest first.
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::field_value::Kind;

    fn custom(json: &str) -> Custom {
        Custom(Json(RawValue::from_string(json.to_owned()).unwrap()))
    }

    #[test]
    fn values_render_by_their_fields_kind_and_the_rest_is_left_out() {
        let stored = custom(
            r#"{"vip": true, "plan": "pro", "score": 12.5, "gone": "x", "note": 3,
                "seen": "2026-11-30T10:00:00Z", "tags": ["a"], "day": "2026-11-30"}"#,
        );
        let kinds = |key: &str| match key {
            "vip" => Some(FieldKind::Checkbox),
            "plan" => Some(FieldKind::Select),
            "score" => Some(FieldKind::Number),
            "note" | "tags" => Some(FieldKind::Text),
            "seen" => Some(FieldKind::DateTime),
            "day" => Some(FieldKind::Date),
            _ => None,
        };
        let values = stored.to_proto(kinds);
        let kind = |key: &str| values[key].kind.clone().unwrap();
        assert_eq!(
            values.keys().collect::<Vec<_>>(),
            ["day", "plan", "score", "seen", "vip"]
        );
        assert_eq!(kind("vip"), Kind::Checkbox(true));
        assert_eq!(kind("plan"), Kind::Text("pro".into()));
        assert_eq!(kind("score"), Kind::Number(12.5));
        assert_eq!(kind("day"), Kind::Date("2026-11-30".into()));
        assert!(matches!(kind("seen"), Kind::Datetime(t) if t.seconds == 1_796_032_800));
        assert_eq!(stored.object()["note"], 3);
    }

    #[test]
    fn anything_but_an_object_has_no_values() {
        for json in ["null", "[1]", "\"x\""] {
            assert!(custom(json).to_proto(|_| Some(FieldKind::Text)).is_empty());
            assert!(custom(json).object().is_empty());
        }
    }
}
