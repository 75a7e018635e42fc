//! Every gRPC server starts here: health, reflection (v1 and v1alpha), one tower stack
//! (request id, trace span + metrics, concurrency limit, auth, per-workspace rate limit), a timeout, and a
//! graceful shutdown that drains in-flight calls.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::auth::AuthLayer;
use crate::config::{ServiceName, Settings};
use crate::deadline::DeadlineLayer;
use crate::ratelimit::RateLimitLayer;
use crate::telemetry;

/// A lazily connecting client channel to another service.
pub fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| anyhow::anyhow!("endpoint {endpoint:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Serves `routes` on `listener` until `shutdown`, then drains for up to the configured
/// drain time.
pub async fn serve(
    service: ServiceName,
    settings: &Settings,
    listener: TcpListener,
    routes: Routes,
    auth: AuthLayer,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ism_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ism_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(ObserveLayer { service })
        .layer(GlobalConcurrencyLimitLayer::new(
            settings.grpc.concurrency_limit,
        ))
        .layer(DeadlineLayer::new(Duration::from_millis(
            settings.grpc.request_timeout_ms,
        )))
        .layer(auth)
        .layer(RateLimitLayer::new(
            service,
            &settings.redis,
            &settings.rate_limit,
        ))
        .into_inner();

    let drain = Duration::from_secs(settings.shutdown.drain_seconds);
    let stopping = shutdown.clone();
    let server = Server::builder()
        .timeout(Duration::from_millis(settings.grpc.request_timeout_ms))
        .layer(stack)
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, a response's last small frame waits for the caller's
            // delayed ACK (about 40 ms); the builder's own setting is ignored for an
            // incoming stream.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                stopping.cancelled().await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
            },
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(%service, "drain time over; closing remaining gRPC calls");
        }
    }
    Ok(())
}

/// One span per call (child of the caller's trace) and per-RPC request metrics.
#[derive(Clone, Copy)]
struct ObserveLayer {
    service: ServiceName,
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            service: self.service,
        }
    }
}

#[derive(Clone)]
struct Observe<S> {
    inner: S,
    service: ServiceName,
}

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            ism.service = %self.service,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
            grpc.status = tracing::field::Empty,
        );
        telemetry::adopt_parent(&span, telemetry::context_from_http(request.headers()));
        let service = self.service.as_str();
        let started = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = future.await;
                // Errors travel as trailers-only responses with grpc-status in the headers;
                // a successful call carries it in trailers, so its absence means OK.
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map(tonic::Code::from_i32)
                        .unwrap_or(tonic::Code::Ok),
                    Err(_) => tonic::Code::Internal,
                };
                let elapsed = started.elapsed().as_secs_f64();
                tracing::Span::current().record("grpc.status", tracing::field::debug(code));
                tracing::debug!(latency_s = elapsed, ?code, "gRPC call finished");
                let labels = [
                    ("service", service.to_owned()),
                    ("method", method),
                    ("code", format!("{code:?}")),
                ];
                metrics::counter!("ism_grpc_requests_total", &labels).increment(1);
                metrics::histogram!("ism_grpc_request_seconds", &labels).record(elapsed);
                result
            }
            .instrument(span),
        )
    }
}
