//! Signed access tokens: claims, local verification with the workspaces service's public
//! keys, the tower layer every gRPC server runs, and service tokens for outgoing calls.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ism_proto::workspaces::v1::GetPublicKeysRequest;
use ism_proto::workspaces::v1::IssueServiceTokenRequest;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::gate::{Gate, Gated};
use crate::{revocations, telemetry};

/// Issuer of every token.
pub const ISSUER: &str = "ism-workspaces";
/// Metadata naming the Workspace a service token acts in.
pub const WORKSPACE_HEADER: &str = "x-ism-workspace-id";
/// Fewest seconds between key refreshes triggered by unknown key ids.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);
/// Longest wait for the token keys at start before the fetch is tried again.
const KEYS_TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds a token is still accepted after its `exp`, for clocks a little apart.
const LEEWAY_SECONDS: u64 = 5;
/// Verified tokens remembered per process; a client reuses its token for many calls.
const VERIFIED_CAPACITY: usize = 10_000;

crate::stored_enum! {
    /// What a token may do. Owners can do all a manager can, managers all an agent can.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        Owner = "owner",
        Manager = "manager",
        Agent = "agent",
        /// Another IS-Messenger service.
        Service = "service",
    }
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Agent => 1,
            Role::Manager => 2,
            Role::Owner => 3,
            Role::Service => 4,
        }
    }

    /// Whether this role may do what `required` may.
    pub fn allows(self, required: Role) -> bool {
        self.rank() >= required.rank()
    }

    /// A role a person or an API key can hold: every role but `Service`.
    pub fn grantable(self) -> bool {
        self != Role::Service
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// `api_key:<id>`, `user:<id>` or `service:<name>`.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub role: Role,
    /// The Workspace the token acts in; absent for service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<Uuid>,
}

/// Who a token speaks for, parsed once from its `sub` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A person: `user:<id>`.
    User(Uuid),
    /// An API key: `api_key:<id>`.
    ApiKey(String),
    /// A service of the platform acting in a Workspace: `service:<name>`.
    Service(String),
    /// A subject of another form, kept as it was written.
    Other(String),
}

impl Subject {
    /// The User this subject is, if it is one.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Subject::User(id) => Some(*id),
            _ => None,
        }
    }
}

impl std::str::FromStr for Subject {
    type Err = std::convert::Infallible;

    fn from_str(sub: &str) -> Result<Self, Self::Err> {
        Ok(match sub.split_once(':') {
            Some(("user", id)) => match id.parse() {
                Ok(id) => Subject::User(id),
                Err(_) => Subject::Other(sub.to_owned()),
            },
            Some(("api_key", id)) => Subject::ApiKey(id.to_owned()),
            Some(("service", name)) => Subject::Service(name.to_owned()),
            _ => Subject::Other(sub.to_owned()),
        })
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::User(id) => write!(f, "user:{id}"),
            Subject::ApiKey(id) => write!(f, "api_key:{id}"),
            Subject::Service(name) => write!(f, "service:{name}"),
            Subject::Other(sub) => f.write_str(sub),
        }
    }
}

/// The authenticated caller of a request, put in its extensions by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: Subject,
    pub role: Role,
    workspace_id: Option<Uuid>,
    /// The subject as text, as stored with what the caller did (audit, owners, events).
    actor: String,
}

impl Caller {
    /// The subject as text (`user:<id>`), as stored with what the caller did.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The Workspace every read and write of this request is confined to.
    pub fn workspace_id(&self) -> Result<Uuid, Status> {
        self.workspace_id.ok_or_else(|| {
            Status::invalid_argument(format!(
                "{WORKSPACE_HEADER}: a service call must name its workspace"
            ))
        })
    }

    /// PERMISSION_DENIED unless the caller's role allows `required`.
    pub fn require(&self, required: Role) -> Result<(), Status> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "the {} role may not do this; it needs {}",
                self.role.as_str(),
                required.as_str()
            )))
        }
    }

    /// The caller of `request`; UNAUTHENTICATED if the auth layer did not run.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no credentials"))
    }
}

/// Verifies tokens against the current public keys, fetched from the workspaces service
/// (or given directly to the workspaces service itself).
pub struct Verifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    source: Option<WorkspaceServiceClient<Channel>>,
    /// When the keys were last fetched successfully.
    last_refresh: Mutex<Option<Instant>>,
    /// Held while the keys are fetched: a call naming an unknown key waits for a fetch in
    /// flight instead of being refused meanwhile.
    refreshing: tokio::sync::Mutex<()>,
    /// Tokens whose signature already checked out, by their exact text, with their key id:
    /// an Ed25519 verification costs tens of microseconds, a lookup well under one. Expiry
    /// and the key's presence are checked again on every hit.
    verified: quick_cache::sync::Cache<String, (String, Claims)>,
}

impl Verifier {
    /// A verifier with a fixed key set.
    pub fn with_keys(keys: HashMap<String, DecodingKey>) -> Arc<Self> {
        Arc::new(Self {
            keys: RwLock::new(keys),
            source: None,
            last_refresh: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        })
    }

    /// A verifier that fetches keys from the workspaces service at `endpoint` on first use,
    /// when a token names an unknown key, and every `refresh` interval.
    pub fn from_workspaces(endpoint: &str, refresh: Duration) -> anyhow::Result<Arc<Self>> {
        let channel = crate::grpc::channel(endpoint)?;
        let verifier = Arc::new(Self {
            keys: RwLock::new(HashMap::new()),
            source: Some(WorkspaceServiceClient::new(channel)),
            last_refresh: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        });
        let weak = Arc::downgrade(&verifier);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(refresh);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = verifier.refresh().await {
                    tracing::warn!(error = %e, "refreshing token keys failed; keeping the old ones");
                }
            }
        });
        Ok(verifier)
    }

    /// Waits until the keys are loaded (retrying while the workspaces service cannot give
    /// them) or `shutdown`: a server reports SERVING only after this, so it never refuses
    /// a valid token for want of its key.
    pub async fn ready(&self, shutdown: &tokio_util::sync::CancellationToken) {
        let mut wait = Duration::from_millis(100);
        while !shutdown.is_cancelled() && !self.loaded() {
            // A peer that accepts the connection but never answers (a process gone from
            // behind a socket a supervisor still holds) must not keep a stop waiting.
            let refreshed = tokio::select! {
                _ = shutdown.cancelled() => return,
                refreshed = tokio::time::timeout(KEYS_TIMEOUT, self.refresh()) => refreshed
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("the key fetch timed out"))),
            };
            if let Err(e) = refreshed {
                tracing::info!(error = %e, "token keys not loaded yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }

    fn loaded(&self) -> bool {
        !self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    async fn refresh(&self) -> Result<(), Status> {
        let Some(mut client) = self.source.clone() else {
            return Ok(());
        };
        let keys = client
            .get_public_keys(GetPublicKeysRequest {})
            .await?
            .into_inner()
            .keys;
        let mut fresh = HashMap::new();
        for key in keys {
            match DecodingKey::from_ed_components(&key.x) {
                Ok(decoding) => {
                    fresh.insert(key.kid, decoding);
                }
                Err(e) => {
                    tracing::warn!(kid = %key.kid, error = %e, "ignoring an unusable token key")
                }
            }
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *self.last_refresh.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }

    fn lookup(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }

    /// The claims of a valid, unexpired token signed by a known key.
    pub async fn verify(&self, token: &str) -> Result<Claims, Status> {
        let bad = |why: &str| Status::unauthenticated(format!("invalid access token: {why}"));
        if let Some((kid, claims)) = self.verified.get(token) {
            let now = jsonwebtoken::get_current_timestamp() as i64;
            if claims.exp.saturating_add_unsigned(LEEWAY_SECONDS) < now {
                return Err(bad("expired"));
            }
            if self.lookup(&kid).is_some() {
                return self.unrevoked(claims);
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        let kid = header.kid.ok_or_else(|| bad("no key id"))?;
        let key = match self.lookup(&kid) {
            Some(key) => key,
            None => {
                let _fetching = self.refreshing.lock().await;
                let recently = self
                    .last_refresh
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some_and(|at| at.elapsed() < MIN_REFRESH_GAP);
                if self.lookup(&kid).is_none() && !recently {
                    self.refresh().await.map_err(|e| {
                        Status::unavailable(format!("cannot fetch token keys: {}", e.message()))
                    })?;
                }
                match self.lookup(&kid) {
                    Some(key) => key,
                    None if !self.loaded() => {
                        return Err(Status::unavailable(
                            "token keys are not loaded yet; retry shortly",
                        ));
                    }
                    None => return Err(bad("unknown signing key")),
                }
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => bad("expired"),
            _ => bad("signature or claims rejected"),
        })?;
        self.verified
            .insert(token.to_owned(), (kid, data.claims.clone()));
        self.unrevoked(data.claims)
    }

    /// `claims`, unless their subject's access was revoked after they were issued.
    fn unrevoked(&self, claims: Claims) -> Result<Claims, Status> {
        if revocations::covers(&claims.sub, claims.iat) {
            return Err(Status::unauthenticated(
                "invalid access token: its API key was revoked or its User deactivated",
            ));
        }
        Ok(claims)
    }
}

/// Authenticates every request except health, reflection and the listed public RPCs.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    public: &'static [&'static str],
}

impl AuthLayer {
    /// `public` holds full gRPC paths (`/pkg.Service/Method`) that need no token.
    pub fn new(verifier: Arc<Verifier>, public: &'static [&'static str]) -> Self {
        Self { verifier, public }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Gated<S, AuthLayer>;

    fn layer(&self, inner: S) -> Self::Service {
        Gated::new(inner, self.clone())
    }
}

impl Gate for AuthLayer {
    fn admit<B: Send + 'static>(
        &self,
        mut request: http::Request<B>,
    ) -> BoxFuture<'static, Result<http::Request<B>, Status>> {
        let path = request.uri().path();
        let exempt = path.starts_with("/grpc.health.")
            || path.starts_with("/grpc.reflection.")
            || self.public.contains(&path);
        if exempt {
            return Box::pin(std::future::ready(Ok(request)));
        }
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let caller = authenticate(&verifier, request.headers()).await?;
            request.extensions_mut().insert(caller);
            Ok(request)
        })
    }
}

async fn authenticate(verifier: &Verifier, headers: &http::HeaderMap) -> Result<Caller, Status> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Status::unauthenticated("authorization must be \"Bearer <token>\""))?;
    let claims = verifier.verify(token.trim()).await?;
    let workspace_id =
        match claims.role {
            Role::Service => {
                match headers.get(WORKSPACE_HEADER) {
                    Some(v) => Some(v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(
                        || Status::invalid_argument(format!("{WORKSPACE_HEADER} is not a UUID")),
                    )?),
                    None => None,
                }
            }
            _ => Some(
                claims
                    .ws
                    .ok_or_else(|| Status::unauthenticated("invalid access token: no workspace"))?,
            ),
        };
    let subject: Subject = claims.sub.parse().unwrap_or_else(|e| match e {});
    Ok(Caller {
        actor: subject.to_string(),
        subject,
        role: claims.role,
        workspace_id,
    })
}

/// Service tokens for this service's outgoing calls, fetched from the workspaces service
/// and renewed before they expire.
pub struct ServiceTokens {
    service: String,
    secret: SecretString,
    client: WorkspaceServiceClient<Channel>,
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl ServiceTokens {
    pub fn new(
        service: &str,
        secret: SecretString,
        workspaces_endpoint: &str,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            service: service.to_owned(),
            secret,
            client: WorkspaceServiceClient::new(crate::grpc::channel(workspaces_endpoint)?),
            current: tokio::sync::Mutex::new(None),
        }))
    }

    async fn token(&self) -> Result<String, Status> {
        let mut current = self.current.lock().await;
        if let Some((token, renew_at)) = current.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let response = self
            .client
            .clone()
            .issue_service_token(IssueServiceTokenRequest {
                service: self.service.clone(),
                secret: self.secret.expose_secret().to_owned(),
            })
            .await?
            .into_inner();
        let lifetime = response
            .expires_at
            .map(|t| t.seconds - chrono::Utc::now().timestamp())
            .unwrap_or(60)
            .max(2) as u64;
        // Renew at half-life so a token never expires in flight.
        let renew_at = Instant::now() + Duration::from_secs(lifetime / 2);
        *current = Some((response.access_token.clone(), renew_at));
        Ok(response.access_token)
    }

    /// `message` as a request acting in `workspace_id`, carrying this service's token and
    /// the current trace context.
    pub async fn request<T>(
        &self,
        message: T,
        workspace_id: Uuid,
    ) -> Result<tonic::Request<T>, Status> {
        let token = self.token().await?;
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("service token is not a valid header"))?;
        metadata.insert("authorization", bearer);
        metadata.insert(
            WORKSPACE_HEADER,
            MetadataValue::try_from(workspace_id.to_string())
                .map_err(|_| Status::internal("workspace id header"))?,
        );
        for (key, value) in telemetry::current_context_headers() {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                MetadataValue::try_from(value),
            ) {
                metadata.insert(key, value);
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn subjects_parse_to_their_kind_and_print_back_the_same() {
        let user = Uuid::now_v7();
        for (text, subject) in [
            (format!("user:{user}"), Subject::User(user)),
            ("api_key:7".to_owned(), Subject::ApiKey("7".into())),
            (
                "service:workflows".to_owned(),
                Subject::Service("workflows".into()),
            ),
            (
                "user:not-a-uuid".to_owned(),
                Subject::Other("user:not-a-uuid".into()),
            ),
        ] {
            let parsed: Subject = text.parse().unwrap();
            assert_eq!(parsed, subject);
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(Subject::User(user).user_id(), Some(user));
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    /// A verifier knowing one key `k1`, and a token of `k1` expiring at `exp`.
    fn verifier_and_token(exp: i64) -> (Arc<Verifier>, String) {
        let random = aws_lc_rs::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&random).expect("a key");
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).expect("the key");
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let claims = Claims {
            iss: ISSUER.into(),
            sub: "api_key:test".into(),
            iat: exp - 300,
            exp,
            role: Role::Agent,
            ws: Some(Uuid::now_v7()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_der(document.as_ref()),
        )
        .expect("signed");
        let key = DecodingKey::from_ed_components(&x).expect("public key");
        (
            Verifier::with_keys(HashMap::from([("k1".into(), key)])),
            token,
        )
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    #[tokio::test]
    async fn a_remembered_token_is_accepted_and_a_tampered_copy_is_not() {
        let (verifier, token) = verifier_and_token(now() + 300);
        verifier.verify(&token).await.expect("valid");
        let again = verifier.verify(&token).await.expect("still valid");
        assert_eq!(again.sub, "api_key:test");
        let mut tampered = token.clone();
        tampered.insert(token.len() - 3, 'x');
        let refused = verifier.verify(&tampered).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn a_remembered_token_expires_on_time() {
        // Within the leeway now, past it two seconds later.
        let (verifier, token) = verifier_and_token(now() - LEEWAY_SECONDS as i64 + 1);
        verifier.verify(&token).await.expect("within the leeway");
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let refused = verifier.verify(&token).await.unwrap_err();
        assert!(refused.message().contains("expired"), "{refused:?}");
    }

    #[tokio::test]
    async fn a_remembered_token_of_a_retired_key_is_refused() {
        let (verifier, token) = verifier_and_token(now() + 300);
        verifier.verify(&token).await.expect("valid");
        {
            let mut keys = verifier.keys.write().unwrap_or_else(|p| p.into_inner());
            let retired: Vec<String> = keys.keys().cloned().collect();
            let key = keys.values().next().cloned().expect("a key");
            for kid in retired {
                keys.remove(&kid);
            }
            keys.insert("the-next-key".to_owned(), key);
        }
        let refused = verifier.verify(&token).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn before_its_keys_are_loaded_a_verifier_asks_to_retry() {
        let (verifier, token) = verifier_and_token(now() + 300);
        verifier
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let refused = verifier.verify(&token).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::Unavailable,
            "a valid token is never refused for want of keys: {refused:?}"
        );
    }
}
