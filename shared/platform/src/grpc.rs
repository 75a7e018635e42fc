//! Every gRPC server starts here: health (liveness and readiness), reflection (v1 and
//! v1alpha) of what the port serves, one tower stack (request id, trace span + metrics,
//! concurrency limit, deadline, auth, per-workspace rate limit), and a stop that drains
//! in-flight calls.
use std::collections::HashSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::auth::AuthLayer;
use crate::config::{ServiceName, Settings};
use crate::deadline::DeadlineLayer;
use crate::health::Readiness;
use crate::ratelimit::RateLimitLayer;
use crate::shutdown::Stop;
use crate::telemetry;

/// A lazily connecting client channel to another service.
pub fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| anyhow::anyhow!("endpoint {endpoint:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// What a gRPC server of a service needs besides its routes.
pub struct Serving {
    pub service: ServiceName,
    pub settings: Arc<Settings>,
    pub auth: AuthLayer,
    pub readiness: Readiness,
    pub stop: Stop,
}

impl Serving {
    /// Serves `server` on `listener` until the stop closes listeners, then drains for up
    /// to the configured drain time. The health service reports the server (`""`, for
    /// liveness) SERVING until then, and `server`'s own name (for readiness) as
    /// [`Readiness`] says; reflection lists `server`, health and reflection, no more.
    pub async fn serve<S: GrpcServer>(
        self,
        listener: TcpListener,
        server: S,
    ) -> anyhow::Result<()> {
        let Self {
            service,
            settings,
            auth,
            mut readiness,
            stop,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(S::NAME, ServingStatus::NotServing)
            .await;
        let reflected = [S::NAME, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA];
        let reflection = || {
            reflected.iter().fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(ism_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, name| builder.with_service_name(*name),
            )
        };
        let routes = Routes::new(server)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        let methods = Methods::of(S::NAME)?;

        let stack = ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(ObserveLayer { service, methods })
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

        let reporting = {
            let health = health.clone();
            async move {
                loop {
                    let status = if readiness.is_ready() {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    health.set_service_status(S::NAME, status).await;
                    if !readiness.changed().await {
                        // The checks end as listeners close: the server's end decides.
                        return std::future::pending().await;
                    }
                }
            }
        };
        let drain = Duration::from_secs(settings.shutdown.drain_seconds);
        let closed = stop.closed().clone();
        let server = Server::builder()
            .layer(stack)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY, a response's last small frame waits for the caller's
                // delayed ACK (about 40 ms); the builder's own setting is ignored for an
                // incoming stream.
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move {
                    closed.cancelled().await;
                    health.set_not_serving::<S>().await;
                    health
                        .set_service_status("", ServingStatus::NotServing)
                        .await;
                },
            );
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result?,
            _ = async { stop.closed().cancelled().await; tokio::time::sleep(drain).await } => {
                tracing::warn!(%service, "drain time over; closing remaining gRPC calls");
            }
            () = reporting => {}
        }
        Ok(())
    }
}

const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// The paths a server answers, so that a scanner's made-up path does not become a metric
/// series of its own.
struct Methods(HashSet<&'static str>);

impl Methods {
    fn of(service: &str) -> anyhow::Result<Arc<Self>> {
        let files = prost_types::FileDescriptorSet::decode(ism_proto::FILE_DESCRIPTOR_SET)?;
        let own = files
            .file
            .iter()
            .flat_map(|file| {
                file.service
                    .iter()
                    .filter(move |s| format!("{}.{}", file.package(), s.name()) == service)
            })
            .flat_map(|s| s.method.iter().map(|m| format!("/{service}/{}", m.name())));
        let standard = [
            format!("/{HEALTH}/Check"),
            format!("/{HEALTH}/Watch"),
            format!("/{REFLECTION_V1}/ServerReflectionInfo"),
            format!("/{REFLECTION_V1ALPHA}/ServerReflectionInfo"),
        ];
        // Leaked once per server: label values must outlive every recorded series.
        Ok(Arc::new(Self(
            own.chain(standard)
                .map(|path| &*Box::leak(path.into_boxed_str()))
                .collect(),
        )))
    }

    fn label(&self, path: &str) -> &'static str {
        self.0.get(path).copied().unwrap_or("unknown")
    }
}

/// gRPC's canonical code names, by code number, as other gRPC tooling spells them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Whether `code` is the server's failure rather than the caller's, as OpenTelemetry's
/// conventions for gRPC servers count it.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

fn code_name(code: Code) -> &'static str {
    CODE_NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// One span per call (child of the caller's trace) and per-RPC request metrics, both
/// ending when the call does: at the response's last frame for a stream, or when the
/// caller goes away.
#[derive(Clone)]
struct ObserveLayer {
    service: ServiceName,
    methods: Arc<Methods>,
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            service: self.service,
            methods: self.methods.clone(),
        }
    }
}

#[derive(Clone)]
struct Observe<S> {
    inner: S,
    service: ServiceName,
    methods: Arc<Methods>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<Observed<R>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = self.methods.label(request.uri().path());
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // Named and described as OpenTelemetry's conventions for RPC servers say.
        let (rpc_service, rpc_method) = method
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = %method.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = rpc_service,
            rpc.method = rpc_method,
            rpc.grpc.status_code = tracing::field::Empty,
            ism.service = %self.service,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
            grpc.status = tracing::field::Empty,
        );
        telemetry::adopt_parent(&span, telemetry::context_from_http(request.headers()));
        let mut call = Call {
            service: self.service.as_str(),
            method,
            started: Instant::now(),
            code: None,
            span: span.clone(),
        };
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                match future.await {
                    Ok(response) => {
                        // An error travels as a trailers-only response, its grpc-status in
                        // the headers; otherwise it comes in the body's trailers.
                        call.code = status_of(response.headers());
                        Ok(response.map(|body| Observed { body, call }))
                    }
                    Err(e) => {
                        call.code.replace(Code::Internal);
                        Err(e)
                    }
                }
            }
            .instrument(span),
        )
    }
}

fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// One call being observed: recorded once, when it is dropped (its response's end, or
/// the caller gone before it, which counts as CANCELLED).
struct Call {
    service: &'static str,
    method: &'static str,
    started: Instant,
    code: Option<Code>,
    span: tracing::Span,
}

impl Drop for Call {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(Code::Cancelled);
        let elapsed = self.started.elapsed().as_secs_f64();
        let name = code_name(code);
        self.span.record("grpc.status", name);
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        self.span
            .in_scope(|| tracing::debug!(latency_s = elapsed, code = name, "gRPC call finished"));
        let labels = [
            ("service", self.service),
            ("method", self.method),
            ("code", name),
        ];
        metrics::counter!("ism_grpc_requests_total", &labels).increment(1);
        metrics::histogram!("ism_grpc_request_seconds", &labels).record(elapsed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that finishes its [`Call`] with the code of its trailers.
    pub struct Observed<B> {
        #[pin]
        body: B,
        call: Call,
    }
}

impl<B: http_body::Body> http_body::Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    this.call.code = Some(code);
                }
            }
            Some(Err(_)) => this.call.code = Some(Code::Internal),
            // A successful unary answer without grpc-status trailers would be malformed;
            // what ended without one (and without an error) is counted as OK.
            None => {
                this.call.code.get_or_insert(Code::Ok);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The compression every server accepts, and answers with when the caller accepts it.
pub const GZIP: tonic::codec::CompressionEncoding = tonic::codec::CompressionEncoding::Gzip;

/// A generated gRPC server with the platform's compression: [`GZIP`] accepted, and used for
/// answers to callers that accept it. A macro, as generated servers share no trait.
#[macro_export]
macro_rules! compressed {
    ($server:expr) => {
        $server
            .accept_compressed($crate::grpc::GZIP)
            .send_compressed($crate::grpc::GZIP)
    };
}

/// What a service's gRPC server is: a generated server (named, cloneable, sendable).
pub trait GrpcServer:
    tower::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcServer for S where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}
