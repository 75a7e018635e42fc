//! The webhook port's HTTP server: hyper as `axum::serve` runs it, with the limits a
//! public port needs against slow or greedy clients, which `axum::serve` cannot set:
//! - a client must send a request's headers within `http_header_timeout_ms` (hyper's
//!   header read timeout; it also closes a keep-alive connection idle that long);
//! - a request must be read and answered within `http_request_timeout_ms` (408), so a
//!   body trickled a byte at a time cannot hold a connection;
//! - at most `http_max_connections` connections are served at once; further clients
//!   wait in the listen backlog.
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use http::header::CONNECTION;
use http::{HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use ism_platform::shutdown::Stop;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower::util::MapResponseLayer;
use tower_http::timeout::TimeoutLayer;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: u32,
}

/// Serves `app` on `listener` within `limits` until the stop closes listeners, then
/// lets the connections in flight finish their requests. From the stop's announcement
/// on, every answer says `Connection: close`, so that callers open their next request on
/// a new connection (to another replica) instead of reusing one this process is about
/// to close under a request they are writing.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: Stop,
) -> std::io::Result<()> {
    let announced = stop.announced().clone();
    let app = app
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(MapResponseLayer::new(move |mut response: Response| {
            if announced.is_cancelled() {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }));
    let stop = stop.closed().clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection reset before it was accepted, or descriptors exhausted:
                // wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accepting a webhook connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(|request: Request<Incoming>| request.map(axum::body::Body::new));
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.header_timeout)
                .keep_alive_timeout(limits.header_timeout);
            let connection =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
    // Every connection holds a slot until it is done: having them all back means the
    // last one finished.
    let _ = slots.acquire_many(limits.max_connections).await;
    Ok(())
}
