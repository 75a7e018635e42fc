//! Calls to another service of the platform.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::auth::ServiceTokens;
use crate::config::ServiceName;
use crate::deadline;
use crate::error::Error;

/// A client of the peer service `name`. Each call acts in one Workspace with this
/// service's token, carries what is left of the current call's deadline, and turns the
/// peer's refusal into this service's error deliberately ([`Error::from_peer`]): NOT_FOUND
/// stays NOT_FOUND, an outage or a timeout stays retryable (UNAVAILABLE), a refused
/// token is this service's own fault (INTERNAL).
#[derive(Clone)]
pub struct Peer<C> {
    name: ServiceName,
    client: C,
    tokens: Arc<ServiceTokens>,
    /// The timeout of a call made outside a request.
    timeout: Duration,
}

impl<C: Clone> Peer<C> {
    /// A client of `name`; a call made outside a request waits at most `timeout`.
    pub fn new(
        name: ServiceName,
        client: C,
        tokens: Arc<ServiceTokens>,
        timeout: Duration,
    ) -> Self {
        Self {
            name,
            client,
            tokens,
            timeout,
        }
    }

    /// Calls `rpc` with `message` in `workspace_id`; `what` names the object read, as a
    /// NOT_FOUND reports it.
    pub async fn call<T, R, F, Fut>(
        &self,
        workspace_id: Uuid,
        what: &'static str,
        message: T,
        rpc: F,
    ) -> Result<R, Error>
    where
        F: FnOnce(C, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        self.answer(workspace_id, message, rpc)
            .await?
            .map_err(|status| self.refused(what, &status))
    }

    /// Like [`Self::call`], but hands back the peer's status for the caller to map the
    /// codes it gives a meaning of its own (an unknown Team becomes a field error).
    pub async fn answer<T, R, F, Fut>(
        &self,
        workspace_id: Uuid,
        message: T,
        rpc: F,
    ) -> Result<Result<R, Status>, Error>
    where
        F: FnOnce(C, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut request = self
            .tokens
            .request(message, workspace_id)
            .await
            .map_err(|status| {
                Error::from_peer(ServiceName::Workspaces.as_str(), "service token", &status)
            })?;
        deadline::pass_on(&mut request, self.timeout);
        Ok(rpc(self.client.clone(), request)
            .await
            .map(Response::into_inner))
    }

    /// The peer's refusal while reading `what`, as this service's error.
    pub fn refused(&self, what: &'static str, status: &Status) -> Error {
        Error::from_peer(self.name.as_str(), what, status)
    }
}
