//! Webhook endpoints: defining them (checked whole, every bad field named), their
//! secrets, enabling and disabling, and a test call.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ism_platform::convert::{self, storable};
use ism_platform::egress::Egress;
use ism_platform::error::{FieldError, Violations};
use ism_platform::events::Amqp;
use ism_proto::events::v1::WebhookEndpointTest;
use ism_proto::integrations::v1 as pb;
use prost::Name;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::bindings;
use crate::catalog;
use crate::config::IntegrationsSettings;
use crate::error::Error;
use crate::sender::{self, Poster};
use crate::store::{self, Attempt, Definition, Endpoint};

const MAX_URL: usize = 2000;
const MAX_DESCRIPTION: usize = 200;
const MAX_EVENT_TYPES: usize = 50;
const MAX_FILTER_VALUES: usize = 50;
const MAX_TAG: usize = 100;
const MAX_RATE: u32 = 10_000;
const DEFAULT_OVERLAP_SECONDS: u32 = 86_400;
const MAX_OVERLAP_SECONDS: u32 = 604_800;

#[derive(Clone)]
pub struct Endpoints {
    pub pool: PgPool,
    pub amqp: Amqp,
    pub egress: Egress,
    pub poster: Poster,
    pub config: IntegrationsSettings,
    pub wake: Arc<Notify>,
}

impl Endpoints {
    /// The definition in `definition`, or every field that is wrong with it.
    async fn check(
        &self,
        definition: Option<pb::WebhookEndpointDefinition>,
    ) -> Result<Definition, Error> {
        let Some(d) = definition else {
            return Err(Error::invalid("definition", "is required"));
        };
        let mut violations = Violations::new();
        if d.url.is_empty() {
            violations.push(FieldError::new("url", "is required"));
        } else if d.url.len() > MAX_URL {
            violations.push(FieldError::new(
                "url",
                format!("must be at most {MAX_URL} characters"),
            ));
        } else if let Err(refusal) = self.egress.check_resolved(&d.url).await {
            violations.push(FieldError::new("url", refusal.to_string()));
        }
        violations.check(storable("description", &d.description));
        if d.description.chars().count() > MAX_DESCRIPTION {
            violations.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        if d.event_types.is_empty() || d.event_types.len() > MAX_EVENT_TYPES {
            violations.push(FieldError::new(
                "event_types",
                format!("must name 1 to {MAX_EVENT_TYPES} event types"),
            ));
        }
        for (i, event_type) in d.event_types.iter().enumerate() {
            if !catalog::known(event_type) {
                violations.push(FieldError::new(
                    format!("event_types[{i}]"),
                    format!("{event_type:?} is not an event type (see ListWebhookEventTypes)"),
                ));
            }
        }
        let mut event_types = d.event_types.clone();
        event_types.sort();
        event_types.dedup();
        let channel_ids = convert::uuids(
            "channel_ids",
            &d.channel_ids,
            MAX_FILTER_VALUES,
            &mut violations,
        );
        if d.tags.len() > MAX_FILTER_VALUES {
            violations.push(FieldError::new(
                "tags",
                format!("at most {MAX_FILTER_VALUES}"),
            ));
        }
        for (i, tag) in d.tags.iter().enumerate() {
            if tag.is_empty() || tag.chars().count() > MAX_TAG || tag.contains('\0') {
                violations.push(FieldError::new(
                    format!("tags[{i}]"),
                    format!("must be 1 to {MAX_TAG} characters"),
                ));
            }
        }
        if d.rate_limit_per_second > MAX_RATE {
            violations.push(FieldError::new(
                "rate_limit_per_second",
                format!("must be at most {MAX_RATE} (0 for no limit)"),
            ));
        }
        if !violations.is_empty() {
            let mut within = Violations::new();
            within.extend_within("definition", violations);
            return Err(Error::Invalid(within));
        }
        Ok(Definition {
            url: d.url,
            description: d.description,
            event_types,
            channel_ids,
            tags: d.tags,
            ordered: d.ordered,
            rate_limit_per_second: d.rate_limit_per_second as i32,
        })
    }

    /// A new signing secret of endpoint `id`, and its sealed form to store.
    fn new_secret(&self, id: Uuid) -> Result<(SecretString, Vec<u8>), Error> {
        let secret = ism_platform::signing::new_secret().map_err(Error::Unexpected)?;
        let sealed = self
            .poster
            .sealer
            .seal(id, &secrecy::ExposeSecret::expose_secret(&secret))
            .map_err(Error::Unexpected)?;
        Ok((secret, sealed))
    }

    pub async fn create(
        &self,
        workspace_id: Uuid,
        definition: Option<pb::WebhookEndpointDefinition>,
    ) -> Result<(Endpoint, SecretString), Error> {
        let definition = self.check(definition).await?;
        let id = Uuid::now_v7();
        let (secret, sealed) = self.new_secret(id)?;
        let mut tx = self.pool.begin().await?;
        if store::count_endpoints(&mut tx, workspace_id).await? >= self.config.max_endpoints {
            return Err(Error::precondition(
                "workspace",
                format!(
                    "has {} webhook endpoints, the most allowed",
                    self.config.max_endpoints
                ),
            ));
        }
        let endpoint =
            store::insert_endpoint(&mut tx, id, workspace_id, &definition, &sealed).await?;
        bindings::commit(&self.amqp, tx).await?;
        Ok((endpoint, secret))
    }

    pub async fn read(&self, workspace_id: Uuid, id: Uuid) -> Result<Endpoint, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        store::endpoint(&mut conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    pub async fn list(&self, workspace_id: Uuid) -> Result<Vec<Endpoint>, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        Ok(store::endpoints(&mut conn, workspace_id).await?)
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        definition: Option<pb::WebhookEndpointDefinition>,
    ) -> Result<Endpoint, Error> {
        let definition = self.check(definition).await?;
        let mut tx = self.pool.begin().await?;
        let endpoint = store::update_definition(&mut tx, workspace_id, id, &definition)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        bindings::commit(&self.amqp, tx).await?;
        Ok(endpoint)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        store::delete_endpoint(&mut tx, workspace_id, id).await?;
        bindings::commit(&self.amqp, tx).await?;
        Ok(())
    }

    pub async fn set_enabled(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        enabled: bool,
    ) -> Result<Endpoint, Error> {
        let mut tx = self.pool.begin().await?;
        let endpoint = store::endpoint(&mut tx, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        let endpoint = if enabled {
            store::enable(&mut tx, workspace_id, id).await?
        } else {
            sender::disable(&mut tx, id, "disabled by a User").await?;
            store::endpoint(&mut tx, workspace_id, id).await?
        }
        .unwrap_or(endpoint);
        tx.commit().await?;
        if enabled {
            self.wake.notify_one();
        }
        Ok(endpoint)
    }

    pub async fn rotate(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        overlap_seconds: u32,
    ) -> Result<(SecretString, DateTime<Utc>), Error> {
        if overlap_seconds > MAX_OVERLAP_SECONDS {
            return Err(Error::invalid(
                "overlap_seconds",
                format!("must be at most {MAX_OVERLAP_SECONDS} (a week)"),
            ));
        }
        let overlap = if overlap_seconds == 0 {
            DEFAULT_OVERLAP_SECONDS
        } else {
            overlap_seconds
        };
        let (secret, sealed) = self.new_secret(id)?;
        let until = Utc::now() + chrono::Duration::seconds(i64::from(overlap));
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        if !store::set_secret(&mut conn, workspace_id, id, &sealed, until).await? {
            return Err(Error::NotFound("webhook endpoint"));
        }
        Ok((secret, until))
    }

    /// A signed test event to the endpoint now, and what it answered.
    pub async fn test(&self, workspace_id: Uuid, id: Uuid) -> Result<Attempt, Error> {
        let endpoint = self.read(workspace_id, id).await?;
        let secret: String = self
            .poster
            .sealer
            .open(id, &endpoint.secret)
            .map_err(|e| Error::Unexpected(e.into()))?;
        let event_id = Uuid::now_v7().to_string();
        let body = catalog::body(
            catalog::TEST_EVENT,
            &WebhookEndpointTest::full_name(),
            Utc::now(),
            &workspace_id.to_string(),
            serde_json::json!({ "endpoint_id": id.to_string() }),
        );
        let secret = SecretString::from(secret);
        let (attempt, _) = self
            .poster
            .post(&self.egress, &endpoint.url, &[&secret], &event_id, &body)
            .await;
        Ok(attempt)
    }
}
