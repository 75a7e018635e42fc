//! What token verification costs: the auth layer alone, and a full unary gRPC call over
//! loopback with and without it, in the same run. `cargo bench -p ism-platform --bench auth`.
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ism_platform::auth::{AuthLayer, Claims, ISSUER, Role, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tower::{Layer, Service, ServiceExt};

const LAYER_CALLS: u32 = 50_000;
const UNARY_CALLS: usize = 5_000;
/// Distinct tokens verified once each, for the cost of a full verification.
const FIRST_SIGHT_TOKENS: usize = 2_000;
const BUDGET_MICROS: f64 = 50.0;

/// The smallest authenticated unary RPC: `/bench.Bench/Ping`, an empty message in and out.
type Empty = ();
#[derive(Clone)]
struct PingServer;

struct Ping;

impl tonic::server::UnaryService<Empty> for Ping {
    type Response = Empty;
    type Future = std::future::Ready<Result<tonic::Response<Empty>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<Empty>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(())))
    }
}

impl tonic::server::NamedService for PingServer {
    const NAME: &'static str = "bench.Bench";
}

impl Service<http::Request<tonic::body::Body>> for PingServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(tonic_prost::ProstCodec::<Empty, Empty>::default());
            Ok(grpc.unary(Ping, request).await)
        })
    }
}

/// The key set of a fresh Ed25519 key, and `count` distinct tokens it signed.
fn key_and_tokens(count: usize) -> (HashMap<String, DecodingKey>, Vec<String>) {
    let document =
        Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("a key");
    let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).expect("the key");
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("bench".to_owned());
    let signing = EncodingKey::from_ed_der(document.as_ref());
    let tokens = (0..count)
        .map(|n| {
            let claims = Claims {
                iss: ISSUER.to_owned(),
                sub: format!("api_key:bench-{n}"),
                iat: now,
                exp: now + 3600,
                role: Role::Agent,
                ws: Some(uuid::Uuid::now_v7()),
            };
            jsonwebtoken::encode(&header, &claims, &signing).expect("signs")
        })
        .collect();
    let keys = HashMap::from([(
        "bench".to_owned(),
        DecodingKey::from_ed_components(&x).expect("public key"),
    )]);
    (keys, tokens)
}

/// Mean time of verifying each of `tokens` once: every one a full Ed25519 verification.
async fn first_sight(verifier: &Verifier, tokens: &[String]) -> Duration {
    let started = Instant::now();
    for token in tokens {
        verifier.verify(token).await.expect("valid");
    }
    started.elapsed() / tokens.len() as u32
}

fn request(bearer: &str) -> http::Request<()> {
    http::Request::builder()
        .uri("/bench.Bench/Ping")
        .header("authorization", bearer)
        .body(())
        .expect("a request")
}

/// Mean time per call of `service` over `LAYER_CALLS` calls.
async fn per_call<S>(mut service: S, bearer: &str) -> Duration
where
    S: Service<http::Request<()>, Response = http::Response<tonic::body::Body>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..1_000 {
        service
            .ready()
            .await
            .expect("ready")
            .call(request(bearer))
            .await
            .expect("answers");
    }
    let started = Instant::now();
    for _ in 0..LAYER_CALLS {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request(bearer))
            .await
            .expect("answers");
        assert!(
            response.headers().get("grpc-status").is_none(),
            "the token was refused"
        );
    }
    started.elapsed() / LAYER_CALLS
}

async fn serve(auth: Option<AuthLayer>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    let incoming = TcpIncoming::from(listener);
    match auth {
        Some(auth) => {
            tokio::spawn(
                Server::builder()
                    .layer(auth)
                    .add_service(PingServer)
                    .serve_with_incoming(incoming),
            );
        }
        None => {
            tokio::spawn(
                Server::builder()
                    .add_service(PingServer)
                    .serve_with_incoming(incoming),
            );
        }
    }
    format!("http://{address}")
}

/// Latencies of sequential unary calls, sorted.
async fn unary_calls(endpoint: String, bearer: &str) -> Vec<Duration> {
    let channel = Endpoint::from_shared(endpoint)
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connects");
    let mut client = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_static("/bench.Bench/Ping");
    let mut call = async || {
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().expect("ascii"));
        client.ready().await.expect("ready");
        client
            .unary::<Empty, Empty, _>(request, path.clone(), tonic_prost::ProstCodec::default())
            .await
            .expect("the call succeeds");
    };
    for _ in 0..500 {
        call().await;
    }
    let mut latencies = Vec::with_capacity(UNARY_CALLS);
    for _ in 0..UNARY_CALLS {
        let started = Instant::now();
        call().await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn summary(latencies: &[Duration]) -> (f64, f64, f64) {
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (micros(mean), micros(at(0.5)), micros(at(0.99)))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (keys, tokens) = key_and_tokens(FIRST_SIGHT_TOKENS + 1);
        let bearer = format!("Bearer {}", tokens[FIRST_SIGHT_TOKENS]);
        let verifier = Verifier::with_keys(keys);
        let cold = micros(first_sight(&verifier, &tokens[..FIRST_SIGHT_TOKENS]).await);
        println!("a token's first verification (Ed25519 signature, claims): {cold:.1} µs over {FIRST_SIGHT_TOKENS} distinct tokens");
        let auth = AuthLayer::new(verifier, &[]);
        let bare = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
        });

        let without_layer = per_call(bare, &bearer).await;
        let with_layer = per_call(auth.layer(bare), &bearer).await;
        let layer_cost = micros(with_layer) - micros(without_layer);
        println!("auth layer alone, a client's token reused (remembered verification, caller): {layer_cost:.1} µs/call over {LAYER_CALLS} calls");

        let plain = unary_calls(serve(None).await, &bearer).await;
        let authed = unary_calls(serve(Some(auth)).await, &bearer).await;
        let (plain_mean, plain_p50, plain_p99) = summary(&plain);
        let (auth_mean, auth_p50, auth_p99) = summary(&authed);
        println!("unary call without auth: mean {plain_mean:.1} µs  p50 {plain_p50:.1} µs  p99 {plain_p99:.1} µs  ({UNARY_CALLS} calls)");
        println!("unary call with auth:    mean {auth_mean:.1} µs  p50 {auth_p50:.1} µs  p99 {auth_p99:.1} µs  ({UNARY_CALLS} calls)");
        let added = auth_p50 - plain_p50;
        let verdict = if layer_cost < BUDGET_MICROS && added < BUDGET_MICROS { "within" } else { "OVER" };
        println!("token verification adds {added:.1} µs per call at p50 ({layer_cost:.1} µs alone): {verdict} the {BUDGET_MICROS} µs budget");
        let first = if cold < BUDGET_MICROS { "within" } else { "over" };
        println!("  once per token and process (its first call, then remembered until it expires): {cold:.1} µs, {first} the budget");
    });
}
