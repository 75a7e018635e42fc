//! Channel management: connecting a channel (credentials checked, sealed, never given
//! back), changing and disconnecting it, and its API form.
use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use ism_platform::convert::{timestamp, uuid};
use ism_platform::error::{Checks, FieldError};
use ism_proto::gateway::v1 as pb;
use ism_proto::gateway::v1::channel_credentials::Kind as Given;
use sqlx::PgPool;
use uuid::Uuid;

use crate::channel_cache::ChannelCache;
use crate::credentials::{Cipher, Credentials};
use crate::error::Error;
use crate::providers::{Kind, client};
use crate::store::{self, Channel};

/// Everything channel management needs.
#[derive(Clone)]
pub struct Channels {
    pub pool: PgPool,
    pub cipher: Arc<Cipher>,
    /// What webhooks remember of channels, forgotten as they change.
    pub webhook_channels: ChannelCache,
    pub http: reqwest::Client,
    /// The gateway's public URL, without a trailing slash.
    pub public_url: String,
}

impl Channels {
    pub fn to_pb(&self, channel: Channel) -> pb::Channel {
        let kind = Kind::parse(&channel.kind);
        let webhook_path = format!("/webhooks/{}/{}", channel.kind, channel.id);
        pb::Channel {
            webhook_url: format!("{}{webhook_path}", self.public_url),
            webhook_path,
            id: channel.id.to_string(),
            workspace_id: channel.workspace_id.to_string(),
            r#type: kind.map_or(0, |k| k.channel_type() as i32),
            name: channel.name,
            outbound_url: channel.outbound_url,
            created_at: Some(timestamp(channel.created_at)),
            api_base_url: api_base_url(kind, &channel.api_base_url).to_owned(),
            account_id: channel.account_id,
            health: if channel.healthy {
                pb::ChannelHealth::Healthy
            } else {
                pb::ChannelHealth::Unhealthy
            } as i32,
            health_reason: channel.health_reason,
            rate_limit_per_second: channel.rate_limit_per_second.max(0) as u32,
            updated_at: Some(timestamp(channel.updated_at)),
        }
    }

    fn open(&self, channel: &Channel) -> Result<Credentials, Error> {
        channel
            .credentials(&self.cipher)
            .map_err(|e| Error::Unexpected(e.into()))
    }

    /// Connects a channel in `workspace_id`; returns it with, for a custom channel, its
    /// webhook secret.
    pub async fn connect(
        &self,
        workspace_id: Uuid,
        request: &pb::ConnectChannelRequest,
    ) -> Result<(pb::Channel, String), Error> {
        let kind = Kind::from_channel_type(request.r#type)
            .ok_or_else(|| FieldError::new("type", "must be a channel type"));
        let outbound_url = if matches!(kind, Ok(Kind::Custom)) {
            valid_url("outbound_url", &request.outbound_url)
        } else {
            Ok(String::new())
        };
        let base = if request.api_base_url.trim().is_empty() {
            Ok(String::new())
        } else {
            valid_url("api_base_url", &request.api_base_url)
        };
        let (kind, name, outbound_url, base) =
            (kind, valid_name(&request.name), outbound_url, base).all()?;
        let id = Uuid::now_v7();
        let mut webhook_secret = String::new();
        let credentials = if kind == Kind::Custom {
            if request.credentials.is_some() {
                return Err(FieldError::new(
                    "credentials",
                    "a custom channel takes none: its webhook secret is generated",
                )
                .into());
            }
            webhook_secret = random_hex()?;
            Credentials::Custom {
                webhook_secret: webhook_secret.clone(),
            }
        } else {
            credentials(kind, request.credentials.as_ref())?
        };
        let base_url = api_base_url(Some(kind), &base).to_owned();
        if let Credentials::Telegram {
            bot_token,
            secret_token,
        } = &credentials
        {
            let url = format!("{}/webhooks/{}/{id}", self.public_url, kind.as_str());
            client::telegram_set_webhook(&self.http, &base_url, bot_token, &url, secret_token)
                .await
                .map_err(crate::error::provider_refused)?;
        }
        let channel = Channel {
            id,
            workspace_id,
            kind: kind.as_str().to_owned(),
            name,
            outbound_url,
            webhook_secret: String::new(),
            credentials: Some(self.cipher.seal(id, &credentials)?),
            api_base_url: base,
            account_id: account_id(&credentials),
            healthy: true,
            health_reason: String::new(),
            rate_limit_per_second: rate_limit(request.rate_limit_per_second)?,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let channel = store::create_channel(&self.pool, &channel).await?;
        Ok((self.to_pb(channel), webhook_secret))
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        request: &pb::UpdateChannelRequest,
    ) -> Result<pb::Channel, Error> {
        let id = uuid("id", &request.id)?;
        let mut channel = store::channel(&self.pool, workspace_id, id).await?;
        let kind = Kind::parse(&channel.kind).ok_or(Error::NotFound("channel"))?;
        let mut credentials = self.open(&channel)?;
        if let Some(name) = &request.name {
            channel.name = valid_name(name)?;
        }
        if let Some(url) = &request.outbound_url {
            if kind != Kind::Custom {
                return Err(
                    FieldError::new("outbound_url", "only custom channels have one").into(),
                );
            }
            channel.outbound_url = valid_url("outbound_url", url)?;
        }
        if let Some(base) = &request.api_base_url {
            channel.api_base_url = if base.trim().is_empty() {
                String::new()
            } else {
                valid_url("api_base_url", base)?
            };
        }
        if let Some(limit) = request.rate_limit_per_second {
            channel.rate_limit_per_second = rate_limit(limit)?;
        }
        if let Some(given) = &request.credentials {
            if kind == Kind::Custom {
                return Err(FieldError::new(
                    "credentials",
                    "a custom channel's secret is generated",
                )
                .into());
            }
            let mut replaced = self::credentials(kind, Some(given))?;
            // Telegram keeps sending the secret it was given in setWebhook.
            if let (
                Credentials::Telegram {
                    secret_token: old, ..
                },
                Credentials::Telegram {
                    secret_token: new,
                    bot_token,
                },
            ) = (&credentials, &mut replaced)
            {
                new.clone_from(old);
                let url = format!("{}/webhooks/{}/{id}", self.public_url, kind.as_str());
                let base = api_base_url(Some(kind), &channel.api_base_url);
                client::telegram_set_webhook(
                    &self.http,
                    base,
                    bot_token.as_str(),
                    &url,
                    new.as_str(),
                )
                .await
                .map_err(crate::error::provider_refused)?;
            }
            credentials = replaced;
            channel.account_id = account_id(&credentials);
            // New credentials deserve a new chance.
            channel.healthy = true;
            channel.health_reason.clear();
        }
        channel.credentials = Some(self.cipher.seal(id, &credentials)?);
        let channel = store::update_channel(&self.pool, &channel).await?;
        self.webhook_channels.forget(id);
        Ok(self.to_pb(channel))
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
        let channel = store::channel(&self.pool, workspace_id, id).await?;
        if let Ok(Credentials::Telegram { bot_token, .. }) = self.open(&channel) {
            let base = api_base_url(Some(Kind::Telegram), &channel.api_base_url);
            client::telegram_delete_webhook(&self.http, base, &bot_token).await;
        }
        store::delete_channel(&self.pool, workspace_id, id).await?;
        self.webhook_channels.forget(id);
        Ok(())
    }

    pub async fn test(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<pb::TestChannelResponse, Error> {
        let channel = store::channel(&self.pool, workspace_id, id).await?;
        let kind = Kind::parse(&channel.kind).ok_or(Error::NotFound("channel"))?;
        let credentials = self.open(&channel)?;
        let base = api_base_url(Some(kind), &channel.api_base_url);
        let result = client::check(&self.http, kind, base, &credentials).await;
        let (ok, detail) = match result {
            Ok(name) => (true, name),
            Err(reason) => (false, reason),
        };
        store::set_health(&self.pool, id, ok, if ok { "" } else { &detail }).await?;
        let channel = store::channel(&self.pool, workspace_id, id).await?;
        Ok(pb::TestChannelResponse {
            ok,
            detail,
            channel: Some(self.to_pb(channel)),
        })
    }
}

/// The API a channel calls: its own base URL, or the provider's public one.
pub fn api_base_url(kind: Option<Kind>, configured: &str) -> &str {
    if configured.is_empty() {
        kind.map_or("", Kind::default_api_base_url)
    } else {
        configured.trim_end_matches('/')
    }
}

fn random_hex() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(hex::encode(bytes))
}

fn valid_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(FieldError::new("name", "must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

fn valid_url(field: &'static str, raw: &str) -> Result<String, FieldError> {
    reqwest::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .map(|u| u.to_string().trim_end_matches('/').to_owned())
        .ok_or_else(|| FieldError::new(field, "must be an absolute http(s) URL"))
}

fn rate_limit(limit: u32) -> Result<i32, FieldError> {
    if limit > 100_000 {
        return Err(FieldError::new(
            "rate_limit_per_second",
            "must be at most 100000",
        ));
    }
    Ok(limit as i32)
}

/// Checks that a credential is present and plausible.
fn field(name: &'static str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() || value.len() > 2048 || value.chars().any(char::is_control) {
        return Err(FieldError::new(
            name,
            "is required (at most 2048 characters, no control characters)",
        ));
    }
    Ok(value.to_owned())
}

/// The credentials `kind` needs, checked.
fn credentials(kind: Kind, given: Option<&pb::ChannelCredentials>) -> Result<Credentials, Error> {
    let mismatch = || {
        FieldError::new(
            "credentials",
            format!(
                "{} channels need their own kind of credentials",
                kind.as_str()
            ),
        )
    };
    let given = given.and_then(|c| c.kind.as_ref()).ok_or_else(mismatch)?;
    let credentials = match (kind, given) {
        (Kind::Messenger | Kind::Instagram, Given::Meta(c)) => Credentials::Meta {
            account_id: field("credentials.account_id", &c.account_id)?,
            access_token: field("credentials.access_token", &c.access_token)?,
            app_secret: field("credentials.app_secret", &c.app_secret)?,
            verify_token: field("credentials.verify_token", &c.verify_token)?,
        },
        (Kind::WhatsApp, Given::Whatsapp(c)) => Credentials::WhatsApp {
            phone_number_id: field("credentials.phone_number_id", &c.phone_number_id)?,
            access_token: field("credentials.access_token", &c.access_token)?,
            app_secret: field("credentials.app_secret", &c.app_secret)?,
            verify_token: field("credentials.verify_token", &c.verify_token)?,
        },
        (Kind::Telegram, Given::Telegram(c)) => {
            let bot_token = field("credentials.bot_token", &c.bot_token)?;
            let well_formed = bot_token.split_once(':').is_some_and(|(id, rest)| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
            });
            if !well_formed {
                return Err(FieldError::new(
                    "credentials.bot_token",
                    "must look like <bot id>:<secret>",
                )
                .into());
            }
            Credentials::Telegram {
                bot_token,
                secret_token: random_hex()?,
            }
        }
        (Kind::TwilioSms | Kind::TwilioWhatsApp, Given::Twilio(c)) => {
            let account_sid = field("credentials.account_sid", &c.account_sid)?;
            if !account_sid.starts_with("AC") {
                return Err(
                    FieldError::new("credentials.account_sid", "must start with AC").into(),
                );
            }
            Credentials::Twilio {
                account_sid,
                auth_token: field("credentials.auth_token", &c.auth_token)?,
                from: field("credentials.from", c.from.trim_start_matches("whatsapp:"))?,
            }
        }
        (Kind::Line, Given::Line(c)) => Credentials::Line {
            channel_secret: field("credentials.channel_secret", &c.channel_secret)?,
            channel_access_token: field(
                "credentials.channel_access_token",
                &c.channel_access_token,
            )?,
        },
        (Kind::Viber, Given::Viber(c)) => Credentials::Viber {
            auth_token: field("credentials.auth_token", &c.auth_token)?,
        },
        _ => return Err(mismatch().into()),
    };
    debug_assert!(kind.accepts(&credentials));
    Ok(credentials)
}

/// The public part of the credentials, shown on the channel.
fn account_id(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Custom { .. } | Credentials::Line { .. } | Credentials::Viber { .. } => {
            String::new()
        }
        Credentials::Meta { account_id, .. } => account_id.clone(),
        Credentials::WhatsApp {
            phone_number_id, ..
        } => phone_number_id.clone(),
        Credentials::Telegram { bot_token, .. } => {
            bot_token.split(':').next().unwrap_or_default().to_owned()
        }
        Credentials::Twilio { from, .. } => from.clone(),
    }
}
