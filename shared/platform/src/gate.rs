//! A check in front of a gRPC server: each request is let through, possibly with
//! something added to it, or answered in place with a status.
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;

/// What a [`Gated`] service asks of each request before the server sees it.
pub trait Gate: Clone + Send + Sync + 'static {
    /// The request to pass on, or the status to answer instead.
    fn admit<B: Send + 'static>(
        &self,
        request: http::Request<B>,
    ) -> BoxFuture<'static, Result<http::Request<B>, Status>>;
}

/// A gRPC server behind a [`Gate`]; layers build it with [`Gated::new`].
#[derive(Clone)]
pub struct Gated<S, G> {
    inner: S,
    gate: G,
}

impl<S, G> Gated<S, G> {
    pub fn new(inner: S, gate: G) -> Self {
        Self { inner, gate }
    }
}

impl<S, G, B> tower::Service<http::Request<B>> for Gated<S, G>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    G: Gate,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was made ready is the one we must call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let admitted = self.gate.admit(request);
        Box::pin(async move {
            match admitted.await {
                Ok(request) => inner.call(request).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
