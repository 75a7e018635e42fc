//! A broadcast's definition: checked whole against its Channel and the Workspace's
//! Contact Fields when saved, and personalised per recipient when its audience freezes.
use ism_platform::content;
use ism_platform::convert::uuid;
use ism_platform::error::{FieldError, Violations};
use ism_platform::personalize::{self, Sender};
use ism_proto::broadcasts::v1 as pb;
use ism_proto::types::v1::message_content::Kind;
use ism_proto::types::v1::{ChannelType, MessageContent};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

use crate::directory::Directory;
use crate::error::Error;
use crate::store;

/// Most labels on one broadcast.
const MAX_LABELS: usize = 20;

fn check_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(FieldError::new(
            "definition.name",
            "must have 1 to 200 characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_labels(labels: &[String]) -> Result<Vec<String>, FieldError> {
    if labels.len() > MAX_LABELS {
        return Err(FieldError::new(
            "definition.labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    let mut checked = Vec::with_capacity(labels.len());
    for (i, label) in labels.iter().enumerate() {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 50 {
            return Err(FieldError::new(
                format!("definition.labels[{i}]"),
                "must have 1 to 50 characters",
            ));
        }
        if !checked.iter().any(|l: &String| l == label) {
            checked.push(label.to_owned());
        }
    }
    Ok(checked)
}

/// Channel types whose providers only take an approved template outside the 24-hour
/// window a Contact's message opens: a broadcast reaches people who did not just write.
fn needs_template(channel_type: i32) -> bool {
    matches!(
        ChannelType::try_from(channel_type),
        Ok(ChannelType::Whatsapp | ChannelType::TwilioWhatsapp)
    )
}

/// The content for `channel_type`, or every reason it cannot be broadcast there.
fn check_content(
    content: Option<&MessageContent>,
    channel_type: i32,
    field_keys: &[String],
) -> Result<MessageContent, Violations> {
    let content = content::outbound(content, channel_type).map_err(|e| e.within("definition"))?;
    let mut violations = Violations::new();
    match &content.kind {
        Some(Kind::Template(_)) if !needs_template(channel_type) => {
            violations.push(FieldError::new(
                "definition.content.template",
                "templates are sent on WhatsApp channels only; send text or media",
            ))
        }
        Some(Kind::Template(_)) => {}
        _ if needs_template(channel_type) => violations.push(FieldError::new(
            "definition.content",
            "a broadcast on a WhatsApp channel must send an approved template",
        )),
        Some(Kind::Text(_) | Kind::Media(_)) => {}
        _ => violations.push(FieldError::new(
            "definition.content",
            "a broadcast sends text, media or a template",
        )),
    }
    if !content.reply_to_external_id.is_empty() {
        violations.push(FieldError::new(
            "definition.content.reply_to_external_id",
            "a broadcast answers no message",
        ));
    }
    for (field, text) in personalize::texts(&content) {
        let field = format!("definition.{field}");
        violations.check(personalize::check(
            &field,
            text,
            field_keys,
            Sender::Platform,
        ));
    }
    violations.into_result().map(|()| content)
}

/// How many Contacts `audience`'s source holds (exclusions not subtracted), or what is
/// wrong with it under `field`.
pub async fn audience_size(
    directory: &Directory,
    pool: &PgPool,
    workspace_id: Uuid,
    audience: &pb::Audience,
    field: &str,
) -> Result<Result<i64, Violations>, Error> {
    let Some(pb::audience::Source::FailedRecipientsOf(id)) = &audience.source else {
        return directory.count(workspace_id, audience, field).await;
    };
    let at = format!("{field}.failed_recipients_of");
    let Ok(id) = id.parse::<Uuid>() else {
        return Ok(Err(FieldError::new(at, "not a UUID").into()));
    };
    Ok(match store::failed_count(pool, workspace_id, id).await? {
        Some(n) => Ok(n),
        None => Err(FieldError::new(at, "no such broadcast in this workspace").into()),
    })
}

/// `definition` checked whole: every bad field at once, each named by its path.
pub async fn check(
    directory: &Directory,
    pool: &PgPool,
    workspace_id: Uuid,
    definition: Option<pb::BroadcastDefinition>,
) -> Result<store::Definition, Error> {
    let definition = definition.unwrap_or_default();
    let mut violations = Violations::new();
    let name = violations.check(check_name(&definition.name));
    let labels = violations.check(check_labels(&definition.labels));
    // Another Workspace's Channel is answered as one that does not exist.
    let channel = match violations.check(uuid("definition.channel_id", &definition.channel_id)) {
        Some(id) => match directory.channel(workspace_id, id).await? {
            Some(channel) => Some((id, channel)),
            None => return Err(Error::NotFound("channel")),
        },
        None => None,
    };
    let field_keys = directory.field_keys(workspace_id).await?;
    let content = channel.as_ref().and_then(|(_, channel)| {
        violations.check(check_content(
            definition.content.as_ref(),
            channel.r#type,
            &field_keys,
        ))
    });
    let audience = definition.audience.unwrap_or_default();
    violations.check(
        audience_size(
            directory,
            pool,
            workspace_id,
            &audience,
            "definition.audience",
        )
        .await?,
    );
    violations.finish()?;
    let (Some(name), Some(labels), Some((channel_id, _)), Some(content)) =
        (name, labels, channel, content)
    else {
        return Err(Error::Unexpected(anyhow::anyhow!(
            "a definition without violations lacks a checked part"
        )));
    };
    Ok(store::Definition {
        name,
        channel_id,
        audience: audience.encode_to_vec(),
        content: content.encode_to_vec(),
        labels,
    })
}
