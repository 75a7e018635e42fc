//! The time a call may still take, passed from the caller through every service it
//! reaches.
//!
//! The gRPC stack ([`DeadlineLayer`]) reads the caller's `grpc-timeout` (capped by this
//! server's own request timeout), keeps the deadline for the handler's future and
//! answers DEADLINE_EXCEEDED when it passes; a [`Peer`](crate::peer::Peer) call made
//! while handling it carries what is left, so a peer stops working on an answer nobody
//! waits for any more.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// What is left of the current call's deadline; `None` outside a call (an event
/// handler, a periodic job).
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Sets `request`'s timeout to what is left of the current call's deadline, or to
/// `otherwise` outside a call.
pub fn pass_on<T>(request: &mut tonic::Request<T>, otherwise: Duration) {
    request.set_timeout(remaining().unwrap_or(otherwise));
}

/// A `grpc-timeout` header value (`<digits><unit>`, unit one of `H M S m u n`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let amount: u64 = value.get(..value.len() - unit.len_utf8())?.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount.checked_mul(3600)?),
        'M' => Duration::from_secs(amount.checked_mul(60)?),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Keeps each call's deadline (the caller's `grpc-timeout`, at most `limit`) for the
/// handler, and answers DEADLINE_EXCEEDED once it has passed (a stream's deadline covers
/// its first answer).
#[derive(Clone, Copy)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S, B, R> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let allowed = asked.map_or(self.limit, |asked| asked.min(self.limit));
        let deadline = Instant::now() + allowed;
        let call = DEADLINE.scope(deadline, self.inner.call(request));
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, call).await {
                Ok(answered) => answered,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "no answer within the call's deadline ({} ms)",
                    allowed.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_refuse_garbage() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5M"), Some(Duration::from_secs(300)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "12", "12x", "-1S", "1.5S", "99999999999999999999H"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    async fn remaining_seen_by_handler(header: Option<&str>, limit: Duration) -> Duration {
        let handler = tower::service_fn(|_: http::Request<()>| async {
            let mut outgoing = tonic::Request::new(());
            pass_on(&mut outgoing, Duration::from_secs(99));
            let passed = outgoing
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout);
            let mut response = http::Response::new(());
            response
                .extensions_mut()
                .insert(passed.expect("a peer call carries a timeout"));
            Ok::<_, std::convert::Infallible>(response)
        });
        let mut service = DeadlineLayer::new(limit).layer(handler);
        let mut request = http::Request::new(());
        if let Some(header) = header {
            request
                .headers_mut()
                .insert("grpc-timeout", header.parse().unwrap());
        }
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        *response
            .extensions()
            .get::<Duration>()
            .expect("the handler answered")
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_answers_deadline_exceeded() {
        let slow = tower::service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let mut service = DeadlineLayer::new(Duration::from_secs(30)).layer(slow);
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert("grpc-timeout", "200m".parse().unwrap());
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let status = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("200 ms"), "{}", status.message());
    }

    #[tokio::test]
    async fn a_peer_call_carries_what_is_left_of_the_callers_deadline() {
        let limit = Duration::from_secs(10);
        let passed = remaining_seen_by_handler(Some("300m"), limit).await;
        assert!(
            passed <= Duration::from_millis(300) && passed > Duration::from_millis(200),
            "{passed:?}"
        );
        let passed = remaining_seen_by_handler(None, limit).await;
        assert!(
            passed <= limit && passed > Duration::from_secs(9),
            "no caller deadline: the server's own limit, {passed:?}"
        );
        let passed = remaining_seen_by_handler(Some("1H"), limit).await;
        assert!(passed <= limit, "capped by the server's limit, {passed:?}");
    }

    #[tokio::test]
    async fn outside_a_call_the_fallback_bounds_a_peer_call() {
        assert_eq!(remaining(), None);
        let mut request = tonic::Request::new(());
        pass_on(&mut request, Duration::from_secs(7));
        let passed = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        assert_eq!(passed, Some(Duration::from_secs(7)));
    }
}
