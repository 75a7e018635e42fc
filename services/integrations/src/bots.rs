//! Bots: defining them (checked whole, credentials tried with a real call before anything
//! is saved), enabling and disabling, and a test query.
use std::sync::Arc;
use std::time::Duration;

use ism_platform::convert;
use ism_platform::egress::Egress;
use ism_platform::error::{FieldError, Violations};
use ism_platform::events::Amqp;
use ism_platform::sealing::Sealer;
use ism_proto::integrations::v1 as pb;
use ism_proto::integrations::v1::bot_definition::Backend as PbBackend;
use sqlx::PgPool;
use uuid::Uuid;

use crate::backend::{Answer, Backend, Backends, BotError, Query, Speaker};
use crate::bindings;
use crate::error::Error;
use crate::google::ServiceAccount;
use crate::store::{self, Bot, BotDefinition};

const MAX_NAME: usize = 100;
const MAX_CHANNELS: usize = 50;
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
const MAX_TIMEOUT_MS: u32 = 60_000;
const MAX_PROMPT: usize = 8_000;
const DEFAULT_HISTORY: u32 = 10;
const MAX_HISTORY: u32 = 50;
const MAX_TEXT: usize = 4_096;

#[derive(Clone)]
pub struct Bots {
    pub pool: PgPool,
    pub amqp: Amqp,
    pub egress: Egress,
    pub sealer: Arc<Sealer>,
    pub backends: Backends,
}

/// A region, location or id as Google names them.
fn google_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn language(value: &str, field: &'static str, violations: &mut Violations) -> String {
    if value.is_empty() {
        return "en".to_owned();
    }
    if value.len() > 35 || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        violations.push(FieldError::new(
            field,
            "must be a language code such as en or pt-BR",
        ));
    }
    value.to_owned()
}

impl Bots {
    async fn url(&self, value: &str, field: &'static str, violations: &mut Violations) {
        if let Err(refusal) = self.egress.check_resolved(value).await {
            violations.push(FieldError::new(field, refusal.to_string()));
        }
    }

    async fn account(
        &self,
        json: &str,
        kept: Option<&ServiceAccount>,
        field: &'static str,
        violations: &mut Violations,
    ) -> Option<ServiceAccount> {
        if json.is_empty() {
            if kept.is_none() {
                violations.push(FieldError::new(field, "is required"));
            }
            return kept.cloned();
        }
        match ServiceAccount::parse(json) {
            Ok(account) => {
                if let Err(refusal) = self.egress.check_resolved(&account.token_uri).await {
                    violations.push(FieldError::new(field, format!("token_uri {refusal}")));
                }
                Some(account)
            }
            Err(why) => {
                violations.push(FieldError::new(field, why));
                None
            }
        }
    }

    /// The stored form of `definition` (secrets left empty are taken from `kept`), or every
    /// field that is wrong with it.
    async fn check(
        &self,
        definition: Option<pb::BotDefinition>,
        kept: Option<&Backend>,
    ) -> Result<(BotDefinition, Backend, Duration), Error> {
        let Some(d) = definition else {
            return Err(Error::invalid("definition", "is required"));
        };
        let mut v = Violations::new();
        if d.name.trim().is_empty() || d.name.chars().count() > MAX_NAME || d.name.contains('\0') {
            v.push(FieldError::new(
                "name",
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
        let channel_ids = convert::uuids("channel_ids", &d.channel_ids, MAX_CHANNELS, &mut v);
        if d.timeout_ms > MAX_TIMEOUT_MS {
            v.push(FieldError::new(
                "timeout_ms",
                format!("must be at most {MAX_TIMEOUT_MS}"),
            ));
        }
        let timeout_ms = if d.timeout_ms == 0 {
            DEFAULT_TIMEOUT_MS
        } else {
            d.timeout_ms
        };
        let kept_account = match kept {
            Some(Backend::DialogflowEs { account, .. } | Backend::DialogflowCx { account, .. }) => {
                Some(account)
            }
            _ => None,
        };
        let backend = match d.backend {
            None => {
                v.push(FieldError::new(
                    "backend",
                    "is required: dialogflow_es, dialogflow_cx or openai",
                ));
                None
            }
            Some(PbBackend::DialogflowEs(es)) => {
                let account = self
                    .account(
                        &es.service_account_json,
                        kept_account.filter(|_| matches!(kept, Some(Backend::DialogflowEs { .. }))),
                        "dialogflow_es.service_account_json",
                        &mut v,
                    )
                    .await;
                let region = if es.region.is_empty() {
                    "global".to_owned()
                } else {
                    es.region
                };
                if !google_name(&region) {
                    v.push(FieldError::new(
                        "dialogflow_es.region",
                        "must be global or a region such as europe-west1",
                    ));
                }
                let language = language(&es.language, "dialogflow_es.language", &mut v);
                if !es.api_base_url.is_empty() {
                    self.url(&es.api_base_url, "dialogflow_es.api_base_url", &mut v)
                        .await;
                }
                account.map(|account| Backend::DialogflowEs {
                    account,
                    region,
                    language,
                    api_base_url: es.api_base_url,
                })
            }
            Some(PbBackend::DialogflowCx(cx)) => {
                let account = self
                    .account(
                        &cx.service_account_json,
                        kept_account.filter(|_| matches!(kept, Some(Backend::DialogflowCx { .. }))),
                        "dialogflow_cx.service_account_json",
                        &mut v,
                    )
                    .await;
                if !google_name(&cx.location) {
                    v.push(FieldError::new(
                        "dialogflow_cx.location",
                        "is required: global or a location such as europe-west1",
                    ));
                }
                if !google_name(&cx.agent_id) {
                    v.push(FieldError::new(
                        "dialogflow_cx.agent_id",
                        "is required: the agent's id",
                    ));
                }
                if !cx.environment.is_empty() && !google_name(&cx.environment) {
                    v.push(FieldError::new(
                        "dialogflow_cx.environment",
                        "must be an environment id",
                    ));
                }
                let language = language(&cx.language, "dialogflow_cx.language", &mut v);
                if !cx.api_base_url.is_empty() {
                    self.url(&cx.api_base_url, "dialogflow_cx.api_base_url", &mut v)
                        .await;
                }
                account.map(|account| Backend::DialogflowCx {
                    account,
                    location: cx.location,
                    agent_id: cx.agent_id,
                    environment: cx.environment,
                    language,
                    api_base_url: cx.api_base_url,
                })
            }
            Some(PbBackend::Openai(ai)) => {
                if ai.base_url.is_empty() {
                    v.push(FieldError::new("openai.base_url", "is required"));
                } else {
                    self.url(&ai.base_url, "openai.base_url", &mut v).await;
                }
                let api_key = match (ai.api_key.is_empty(), kept) {
                    (false, _) => Some(ai.api_key),
                    (true, Some(Backend::OpenAi { api_key, .. })) => Some(api_key.clone()),
                    (true, _) => {
                        v.push(FieldError::new("openai.api_key", "is required"));
                        None
                    }
                };
                if ai.model.is_empty() || ai.model.len() > 100 {
                    v.push(FieldError::new(
                        "openai.model",
                        "must be 1 to 100 characters",
                    ));
                }
                if ai.system_prompt.chars().count() > MAX_PROMPT || ai.system_prompt.contains('\0')
                {
                    v.push(FieldError::new(
                        "openai.system_prompt",
                        format!("must be at most {MAX_PROMPT} characters"),
                    ));
                }
                if ai.history_messages > MAX_HISTORY {
                    v.push(FieldError::new(
                        "openai.history_messages",
                        format!("must be at most {MAX_HISTORY}"),
                    ));
                }
                let history_messages = if ai.history_messages == 0 {
                    DEFAULT_HISTORY
                } else {
                    ai.history_messages
                };
                api_key.map(|api_key| Backend::OpenAi {
                    base_url: ai.base_url,
                    api_key,
                    model: ai.model,
                    system_prompt: ai.system_prompt,
                    history_messages,
                })
            }
        };
        if !v.is_empty() {
            let mut within = Violations::new();
            within.extend_within("definition", v);
            return Err(Error::Invalid(within));
        }
        let backend = backend.expect("a backend when nothing is wrong");
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        Ok((
            BotDefinition {
                name: d.name,
                channel_ids,
                kind: backend.kind(),
                backend: Vec::new(),
                timeout_ms: timeout_ms as i32,
            },
            backend,
            timeout,
        ))
    }

    /// Tries the credentials for real: FAILED_PRECONDITION naming the field they came in.
    async fn try_credentials(&self, backend: &Backend, timeout: Duration) -> Result<(), Error> {
        let field = match backend {
            Backend::DialogflowEs { .. } => "definition.dialogflow_es.service_account_json",
            Backend::DialogflowCx { .. } => "definition.dialogflow_cx.service_account_json",
            Backend::OpenAi { .. } => "definition.openai.api_key",
        };
        match self.backends.check_credentials(backend, timeout).await {
            Ok(()) => Ok(()),
            Err(BotError::Credentials(words)) => {
                Err(Error::precondition(field, format!("refused: {words}")))
            }
            Err(e) => {
                let field = match backend {
                    Backend::OpenAi { .. } => "definition.openai.base_url",
                    _ => field,
                };
                Err(Error::precondition(
                    field,
                    format!("could not be checked: {e}"),
                ))
            }
        }
    }

    fn open(&self, bot: &Bot) -> Result<Backend, Error> {
        self.sealer
            .open(bot.id, &bot.backend)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("bot {}: {e}", bot.id)))
    }

    pub async fn create(
        &self,
        workspace_id: Uuid,
        definition: Option<pb::BotDefinition>,
    ) -> Result<(Bot, Backend), Error> {
        let (mut stored, backend, timeout) = self.check(definition, None).await?;
        self.try_credentials(&backend, timeout).await?;
        let id = Uuid::now_v7();
        stored.backend = self.sealer.seal(id, &backend).map_err(Error::Unexpected)?;
        let mut tx = self.pool.begin().await?;
        let bot = store::insert_bot(&mut tx, id, workspace_id, &stored).await?;
        bindings::commit(&self.amqp, tx).await?;
        Ok((bot, backend))
    }

    pub async fn read(&self, workspace_id: Uuid, id: Uuid) -> Result<(Bot, Backend), Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let bot = store::bot(&mut conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("bot"))?;
        let backend = self.open(&bot)?;
        Ok((bot, backend))
    }

    pub async fn list(&self, workspace_id: Uuid) -> Result<Vec<(Bot, Backend)>, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        store::bots(&mut conn, workspace_id)
            .await?
            .into_iter()
            .map(|bot| self.open(&bot).map(|backend| (bot, backend)))
            .collect()
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        definition: Option<pb::BotDefinition>,
    ) -> Result<(Bot, Backend), Error> {
        let (_, kept) = self.read(workspace_id, id).await?;
        let (mut stored, backend, timeout) = self.check(definition, Some(&kept)).await?;
        self.try_credentials(&backend, timeout).await?;
        stored.backend = self.sealer.seal(id, &backend).map_err(Error::Unexpected)?;
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let bot = store::update_bot(&mut conn, workspace_id, id, &stored)
            .await?
            .ok_or(Error::NotFound("bot"))?;
        Ok((bot, backend))
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        store::delete_bot(&mut tx, workspace_id, id).await?;
        bindings::commit(&self.amqp, tx).await?;
        Ok(())
    }

    pub async fn set_enabled(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        enabled: bool,
    ) -> Result<(Bot, Backend), Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let bot = store::set_bot_enabled(&mut conn, workspace_id, id, enabled)
            .await?
            .ok_or(Error::NotFound("bot"))?;
        let backend = self.open(&bot)?;
        Ok((bot, backend))
    }

    /// What the bot answers to `text`, asked in a session of its own.
    pub async fn test(&self, workspace_id: Uuid, id: Uuid, text: String) -> Result<Answer, Error> {
        if text.trim().is_empty() || text.len() > MAX_TEXT || text.contains('\0') {
            return Err(Error::invalid(
                "text",
                format!("must be 1 to {MAX_TEXT} characters"),
            ));
        }
        let (bot, backend) = self.read(workspace_id, id).await?;
        let query = Query {
            session: Uuid::now_v7().to_string(),
            text: text.clone(),
            language: None,
            history: vec![(Speaker::Contact, text)],
        };
        let timeout = Duration::from_millis(bot.timeout_ms as u64);
        self.backends
            .ask(&backend, &query, timeout)
            .await
            .map_err(|e| Error::precondition("bot", format!("did not answer: {e}")))
    }
}
