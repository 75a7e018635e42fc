//! The gateway: channels and their credentials, provider webhooks in, delivery out.
mod api;
mod channel_cache;
mod channels;
pub mod config;
pub mod credentials;
mod delivery;
mod error;
mod hooks;
mod http;
mod intake;
mod media;
mod pacing;
pub mod providers;
mod serve;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::events::topology;
use ism_platform::listeners;
use ism_platform::ratelimit::Limiter;
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use ism_proto::workflows::v1::workflow_service_client::WorkflowServiceClient;
use sqlx::migrate::Migrator;
use tokio::sync::Notify;

pub use api::create_channel;
pub use error::Error;
pub use providers::custom::signature::{HEADER as SIGNATURE_HEADER, sign};

const USER_AGENT: &str = "IS-Messenger/0.1";
const MEDIA_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MEDIA_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the gateway until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let config: config::GatewaySettings = settings.section()?;
    let mut service =
        Service::start(ServiceName::Gateway, settings.clone(), stop, &MIGRATOR).await?;
    let cipher = Arc::new(credentials::Cipher::from_settings(&config)?);
    let resealed = store::reseal(&service.pool, &cipher).await?;
    if resealed > 0 {
        tracing::info!(resealed, "channel credentials sealed with the current key");
    }
    let http_client = reqwest::Client::builder().user_agent(USER_AGENT).build()?;
    let public_url = config.public_url.trim_end_matches('/').to_owned();
    let wake = Arc::new(Notify::new());
    service.consume(
        topology::GATEWAY_DELIVERY,
        delivery::Requests { wake: wake.clone() },
    );
    let worker = delivery::Worker {
        pool: service.pool.clone(),
        http: http_client.clone(),
        cipher: cipher.clone(),
        settings: config.clone(),
        wake,
        limiter: Limiter::new(ServiceName::Gateway, &settings.redis, &settings.rate_limit),
        public_url: public_url.clone(),
        unrecorded: Default::default(),
        pacing: Default::default(),
    };
    service.spawn(worker.run(service.shutdown.clone()));

    let listener = listeners::listen("gateway.http", &settings.grpc.host, config.http_port).await?;
    let channels = channel_cache::ChannelCache::new(Duration::from_millis(config.channel_cache_ms));
    let app = http::router(
        http::AppState {
            pool: service.pool.clone(),
            readiness: service.readiness.clone(),
            cipher: cipher.clone(),
            channels: channels.clone(),
            intake: intake::Intake::start(service.pool.clone()),
            public_url: public_url.clone(),
            media: Arc::new(media::MediaLinks::from_settings(&config, &public_url)?),
            workflows: service.peer(ServiceName::Workflows, WorkflowServiceClient::new)?,
            media_http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .connect_timeout(MEDIA_CONNECT_TIMEOUT)
                // Per read, not overall: a large file may take long to stream.
                .read_timeout(MEDIA_READ_TIMEOUT)
                .build()?,
        },
        config.body_limit_bytes,
    );
    let stop = service.stop.clone();
    let limits = serve::Limits {
        header_timeout: Duration::from_millis(config.http_header_timeout_ms),
        request_timeout: Duration::from_millis(config.http_request_timeout_ms),
        max_connections: config.http_max_connections,
    };
    service.spawn_server(async move {
        serve::serve(listener, app, limits, stop).await?;
        Ok(())
    });

    let verifier = service.remote_verifier()?;
    let server = GatewayServiceServer::new(api::Api {
        channels: channels::Channels {
            pool: service.pool.clone(),
            cipher,
            http: http_client,
            public_url,
            webhook_channels: channels,
        },
    });
    service.serve(compressed!(server), verifier, &[]).await
}
