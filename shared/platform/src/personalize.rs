//! Personalised text: snippets, broadcast messages and workflow replies name a Contact's
//! fields as `{{contact.first_name}}` or `{{contact.fields.<key>}}` (and the sending User as
//! `{{user.name}}` where there is one). Variables are checked when the text is saved and
//! rendered with strict undefined when it is sent.
use std::collections::BTreeMap;
use std::sync::LazyLock;

use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::field_value::Kind as FieldKind;
use ism_proto::contacts::v1::{Contact, FieldValue, ListContactFieldsRequest};
use ism_proto::types::v1::MessageContent;
use ism_proto::types::v1::message_content::Kind;
use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;

use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::{Error, FieldError};
use crate::peer::Peer;

/// Profile fields of a Contact a text may name as `contact.<name>`.
pub const CONTACT_FIELDS: [&str; 8] = Contact::PROFILE_FIELDS;

/// Who a text may name besides the Contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A User sends it: `{{user.name}}` is known.
    User,
    /// The platform sends it (a broadcast, an automation): only the Contact is known.
    Platform,
}

/// What a `{{ }}` may hold: a variable, then text filters (`| default("there")`,
/// `| upper`). Statements, arithmetic and calls are refused, so rendering costs what the
/// text and its values cost: `{{ 'x' * 50000000 }}` would build 50 MB before any size
/// check could refuse the message.
static SUBSTITUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^-?\s*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\s*(\|\s*(default|upper|lower|title|capitalize|trim)\s*(\(\s*"[^"{}]*"\s*\))?\s*)*-?$"#,
    )
    .expect("a valid pattern")
});

/// Whether `text` only substitutes variables (see [`SUBSTITUTION`]); the reason if not.
fn substitution_only(text: &str) -> Result<(), String> {
    if text.contains("{%") || text.contains("{#") {
        return Err(
            "only {{ variables }} are allowed, not {% statements %} or {# comments #}".into(),
        );
    }
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let inner = &rest[start + 2..];
        let Some(end) = inner.find("}}") else {
            return Err("a {{ is not closed".into());
        };
        if !SUBSTITUTION.is_match(&inner[..end]) {
            return Err(format!(
                "{} is not a variable: use {{{{ contact.<field> }}}}, optionally with the filters default(\"...\"), upper, lower, title, capitalize or trim",
                crate::convert::quoted(inner[..end].trim())
            ));
        }
        rest = &inner[end + 2..];
    }
    Ok(())
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Whether `name` (`contact.<field>`, `contact.fields.<key>`) names a Contact variable,
/// given the Workspace's custom Contact Field keys.
pub fn names_contact(name: &str, field_keys: &[String]) -> bool {
    match name.split_once('.') {
        Some(("contact", rest)) => match rest.split_once('.') {
            Some(("fields", key)) => field_keys.iter().any(|k| k == key),
            None => CONTACT_FIELDS.contains(&rest),
            _ => false,
        },
        _ => false,
    }
}

/// Whether `text` (the request's `field`) is a valid template naming only variables
/// `sender` provides; `field_keys` are the Workspace's custom Contact Field keys.
pub fn check(
    field: &str,
    text: &str,
    field_keys: &[String],
    sender: Sender,
) -> Result<(), FieldError> {
    let user = if sender == Sender::User {
        " or user.name"
    } else {
        ""
    };
    let hint = format!(
        "use contact.<{}>, contact.fields.<custom field key>{user}",
        CONTACT_FIELDS.join("|")
    );
    check_names(field, text, &hint, |variable| {
        names_contact(variable, field_keys) || (variable == "user.name" && sender == Sender::User)
    })
}

/// Whether `text` (the request's `field`) is a valid template naming only variables
/// `known` takes; `hint` says which those are.
pub fn check_names(
    field: &str,
    text: &str,
    hint: &str,
    known: impl Fn(&str) -> bool,
) -> Result<(), FieldError> {
    substitution_only(text).map_err(|reason| FieldError::new(field.to_owned(), reason))?;
    let env = environment();
    let template = env
        .template_from_str(text)
        .map_err(|e| FieldError::new(field.to_owned(), format!("not a valid template: {e}")))?;
    for variable in template.undeclared_variables(true) {
        if !known(&variable) {
            return Err(FieldError::new(
                field.to_owned(),
                format!("unknown variable {{{{{variable}}}}}: {hint}"),
            ));
        }
    }
    Ok(())
}

/// The keys of the Workspace's custom Contact Fields, which a text may name.
pub async fn field_keys(
    contacts: &Peer<ContactServiceClient<Channel>>,
    workspace_id: Uuid,
) -> Result<Vec<String>, Error> {
    let fields = contacts
        .call(
            workspace_id,
            "contact fields",
            ListContactFieldsRequest {},
            |mut c, r| async move { c.list_contact_fields(r).await },
        )
        .await?
        .fields;
    Ok(fields.into_iter().map(|f| f.key).collect())
}

/// What the variables stand for when a text is sent.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Variables {
    /// Profile fields and `fields` (every custom field of the Workspace, "" when unset).
    pub contact: BTreeMap<String, serde_json::Value>,
    pub user: BTreeMap<String, String>,
    /// A workflow run's variables.
    pub vars: BTreeMap<String, String>,
}

impl Variables {
    /// The variables of `contact`, whose Workspace's custom fields are `field_keys`.
    pub fn of_contact(contact: &Contact, field_keys: &[String]) -> Self {
        let mut variables = Variables::default();
        for (name, value) in CONTACT_FIELDS.iter().zip(contact.profile()) {
            variables
                .contact
                .insert((*name).to_owned(), value.clone().into());
        }
        let fields: serde_json::Map<String, serde_json::Value> = field_keys
            .iter()
            .map(|key| {
                let value = contact
                    .custom_fields
                    .get(key)
                    .map_or_else(String::new, field_text);
                (key.clone(), value.into())
            })
            .collect();
        variables
            .contact
            .insert("fields".into(), serde_json::Value::Object(fields));
        variables
    }
}

/// A custom field's value as text ("" when unset): a date as YYYY-MM-DD, a datetime in
/// RFC 3339.
pub fn field_text(value: &FieldValue) -> String {
    value
        .kind
        .as_ref()
        .map_or_else(String::new, |kind| match kind {
            FieldKind::Text(t) | FieldKind::Date(t) => t.clone(),
            FieldKind::Number(n) => n.to_string(),
            FieldKind::Checkbox(b) => b.to_string(),
            FieldKind::Datetime(ts) => crate::convert::from_timestamp(ts)
                .map(|at| at.to_rfc3339())
                .unwrap_or_default(),
        })
}

/// `text` with its variables replaced; the error says which variable had no value.
pub fn render(text: &str, variables: &Variables) -> Result<String, String> {
    substitution_only(text)?;
    environment()
        .render_str(text, variables)
        .map_err(|e| e.to_string())
}

/// Whether `text` names any variable (and needs rendering per recipient).
pub fn has_variables(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// The personalisable texts of `content`, by field path under `content`.
pub fn texts(content: &MessageContent) -> Vec<(String, &str)> {
    match &content.kind {
        Some(Kind::Text(text)) => vec![("content.text.body".to_owned(), text.body.as_str())],
        Some(Kind::Media(media)) => {
            vec![("content.media.caption".to_owned(), media.caption.as_str())]
        }
        Some(Kind::Template(template)) => template
            .variables
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("content.template.variables[{i}]"), v.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `content` names variables, so each Contact gets a rendering of their own.
pub fn personalised(content: &MessageContent) -> bool {
    texts(content).iter().any(|(_, text)| has_variables(text))
}

/// `content` rendered for one Contact.
pub fn render_content(
    content: &MessageContent,
    variables: &Variables,
) -> Result<MessageContent, String> {
    let mut rendered = content.clone();
    match &mut rendered.kind {
        Some(Kind::Text(text)) => text.body = render(&text.body, variables)?,
        Some(Kind::Media(media)) => media.caption = render(&media.caption, variables)?,
        Some(Kind::Template(template)) => {
            for variable in &mut template.variables {
                *variable = render(variable, variables)?;
            }
        }
        _ => {}
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_variables_and_text_filters_are_rendered() {
        let variables = Variables {
            contact: BTreeMap::from([("first_name".into(), "Ada".into())]),
            ..Variables::default()
        };
        let text =
            r#"Hi {{ contact.first_name | upper }}, {{- contact.first_name|default("there") }}!"#;
        assert_eq!(render(text, &variables).unwrap(), "Hi ADA,Ada!");
        for refused in [
            "{{ 'x' * 50000000 }}",
            "{{ range(100000000) | length }}",
            "{% for i in range(1000000) %}x{% endfor %}",
            "{{ contact.first_name ~ contact.first_name }}",
            "{# note #}",
            "{{ contact.first_name",
        ] {
            assert!(render(refused, &variables).is_err(), "{refused}");
            assert!(
                check("body", refused, &[], Sender::Platform).is_err(),
                "{refused}"
            );
        }
    }
}
