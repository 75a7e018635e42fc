//! Stand-ins for the bot back ends a conversation can be handed to: Google (the OAuth 2.0
//! token endpoint for service accounts, Dialogflow ES `v2` and Dialogflow CX `v3`
//! `detectIntent`) and an OpenAI-compatible chat completions API. Each is a local HTTP
//! server that speaks the documented wire format, records what it gets and answers as
//! scripted (replies, error statuses, delays), so the platform's real HTTP clients are
//! exercised end to end.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

/// The private half of the test-only RSA key (2048 bits, PKCS#8 PEM) of the fake service
/// account: the `private_key` of [`FakeGoogle::service_account_json`]. Never used outside
/// tests.
pub const TEST_PRIVATE_KEY_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC9UOLtZtoQPMzb
ZRP9dOsBNVcWkQYp9iLl4zYrY8Zh7S4QDhDmFhB4gnt7CHPz1WNqmx08exy2uaF1
iX8/smX4WzATzcHvmcb6tZoY0r3ntqA1qaVTe50ByfR2EOyKzJhaI0JyHul+WKcM
g3mEwBAyViuiNtLR+RjB6A1ht/20hwofwdShxqrKb//R9StYUJWXA2gZ4etOJ/LT
HyqFgOxYO8xOrSim8uxrpX1h/Zn4iK8SzO0EM5ojh1ZFT3FZL+tRTRELyw3K3zvF
fk8F8oBRY7BBsF5k3lmJog1kOh7VIUKJ7y2s1wKOuRf+V1/YI+r0SuNv2rS6AU4g
Z5QIWCt1AgMBAAECgf8JDxXMxl8o57/lv7B1MGMOa77/FXF2EJEa7wRojx2vEepi
Wkn0uJmRKq099emWgV+AemuruThmhftz5GBya9b1S2fBitb84B7lYEs/ZNYxgEuq
RbPjisa4jzFjdOvcuG2R4p4LV+9UXGmh76ig8Y/U2Mq9uGHeKk1E+hWp12QMf1Sb
zlfTNfxNFkBtHZ3Vo5RXMt+27R+4WtolsYAH+SlgLOH0jrgT8IhT2zzVAELFDaZY
z/c+Cnq/DKHDEQZ6KPJqR/Inf52mf0R0m5A9El3FjKYHLhIcCiojci70RPb7mo+n
y1QBf+Fct8CQ8RfLfp0i6atVp4whpwHWLroGhwkCgYEA7VlMBFxrOBoFOsIn69GH
lEIWpkkJ0eJMn4rYScnmd0Up2YEJCFW/5gsEEFeAgM4fFbJnEDFZOXPDigi1UGwC
9O3x59SXOFTSvi8Ac9mCrLpKmbw2Z5Jj/A95CFPMojUmzvSIeNdB84mgqUkBbizk
SlkZTb3by/KVojv8IgTrbx0CgYEAzDFSQHh5h1YWEyd4wy3aeevYmdUFRWHZ0KAk
c40jfXSEtpqltP+ETyl7fgBG6bYiI0xKbfdIrkasOKtlGsn1FCpY1vmrk6fu3J5T
qiRjL63B8FTQt02Owj5g/LNfgc2RCubKUIWXb/NfL04EQFCaWfN0Vw5+w3Tg8ApA
U4ssxjkCgYEAhokDScWJEPfO1wuOzWCrVSJQ7FiiNFHt1NFC4DCNbjXKDvvRPuQ8
Lg04dHrk4B32CLpjKQ6P4Lz5rZhaDgfrdSIa6KncPZX3Ds5dl01HgNjnyFSjEfos
qoeqt0moyJkQMmbxpG1/eKgeZVZ4dRcFIA95BFQF7ojGwHr34+CeAxECgYAWpd3O
os4v8Z9vLnCZjWtvHHag0VzNTkYferOwUVY/Yv4ZVtvMUI73TM2SsysqXvY4Xgzf
V48rLVGK04/aQc46F1xVM8oRDY5T0AfNlk2eCzK4ml+wBR0xdEPDo42TUx6kS+bi
uX6Lfz3ufEPCcm48TeF4inYK7drJJQnvej9UGQKBgQDbsq86ZifxozPnhvu7xUsv
csfYNxARnrTYqay5sPnRni76A1nvlpGASl8D51uQJ30sq+pr0229b1xDKiGrX6sK
Pm7Rd6anBirlhA7RMBSyT0xwEwbQPvllzlXv8vcKR5NBuxa+0KzdqWnHF9jwGcFT
B5hi1ulhtp2JfoVN5V4Dhw==
-----END PRIVATE KEY-----
";

/// The public half of [`TEST_PRIVATE_KEY_PEM`] (SubjectPublicKeyInfo PEM), with which
/// [`FakeGoogle`] verifies the signed JWT assertions sent to its token endpoint.
pub const TEST_PUBLIC_KEY_PEM: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvVDi7WbaEDzM22UT/XTr
ATVXFpEGKfYi5eM2K2PGYe0uEA4Q5hYQeIJ7ewhz89VjapsdPHsctrmhdYl/P7Jl
+FswE83B75nG+rWaGNK957agNamlU3udAcn0dhDsisyYWiNCch7pflinDIN5hMAQ
MlYrojbS0fkYwegNYbf9tIcKH8HUocaqym//0fUrWFCVlwNoGeHrTify0x8qhYDs
WDvMTq0opvLsa6V9Yf2Z+IivEsztBDOaI4dWRU9xWS/rUU0RC8sNyt87xX5PBfKA
UWOwQbBeZN5ZiaINZDoe1SFCie8trNcCjrkX/ldf2CPq9Erjb9q0ugFOIGeUCFgr
dQIDAQAB
-----END PUBLIC KEY-----
";

/// The grant type of the service-account flow (RFC 7523), as Google documents it.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Scopes that grant access to Dialogflow.
const DIALOGFLOW_SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/dialogflow",
];

type Shared<T> = Arc<Mutex<T>>;

/// A listener on an ephemeral local port, and its base URL (`http://127.0.0.1:PORT`).
async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

/// A JSON answer with this status.
fn json_response(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The `Bearer` credential of a request's `Authorization` header.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization.and_then(|value| value.strip_prefix("Bearer "))
}

// ---------------------------------------------------------------------------------------
// Google: OAuth 2.0 for service accounts, Dialogflow ES (v2) and CX (v3)
// ---------------------------------------------------------------------------------------

/// One `detectIntent` call [`FakeGoogle`] got (recorded before any check, so calls it
/// refused are here too).
#[derive(Debug, Clone)]
pub struct GoogleRequest {
    /// The request path as sent, e.g.
    /// `/v2/projects/fake-project/agent/sessions/abc:detectIntent`.
    pub path: String,
    /// The `Authorization` header, e.g. `Bearer ya29.fake-1`.
    pub authorization: Option<String>,
    /// The JSON body (`Null` when it is not JSON).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

struct GoogleInner {
    /// `{url}/token`: the audience every assertion must name.
    token_uri: String,
    /// The public key of the service account.
    key: DecodingKey,
    /// Access tokens handed out so far.
    issued: HashSet<String>,
    /// Issued access tokens invalidated before their expiry.
    retired: HashSet<String>,
    /// Once set, no assertion is accepted and no access token is valid.
    revoked: bool,
    /// Scripted query results, by query text.
    replies: HashMap<String, Value>,
    /// Error statuses for the next `detectIntent` calls, in order.
    failures: VecDeque<u16>,
    /// Delays for the next `detectIntent` calls, in order.
    delays: VecDeque<Duration>,
    requests: Vec<GoogleRequest>,
}

/// A stand-in for Google, on one local server:
///
/// - the OAuth 2.0 token endpoint for service accounts ("Using OAuth 2.0 for Server to
///   Server Applications"): `POST /token`, form-encoded
///   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`, where the
///   JWT is RS256-signed with the key of [`FakeGoogle::service_account_json`] and carries
///   `iss` (the client email), `scope`, `aud` (the `token_uri`), `iat` and `exp` (at most
///   an hour apart). It answers `{"access_token":"ya29.fake-<n>","expires_in":3599,
///   "token_type":"Bearer"}`, or HTTP 400 with an OAuth error
///   (`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`);
/// - Dialogflow ES `projects.agent.sessions.detectIntent`
///   (`POST /v2/projects/{project}/agent/sessions/{session}:detectIntent`, also under
///   `locations/{location}/` and `environments/{environment}/users/{user}/`), body
///   `{"queryInput":{"text":{"text":"…","languageCode":"en"}},"queryParams":{…}}`,
///   answering `{"responseId":"…","queryResult":{…}}` (`QueryResult` of v2:
///   `queryText`, `languageCode`, `fulfillmentText`, `fulfillmentMessages`, `parameters`,
///   `action`, `intent`, `intentDetectionConfidence`, …);
/// - Dialogflow CX `projects.locations.agents.sessions.detectIntent`
///   (`POST /v3/projects/{p}/locations/{l}/agents/{agent}/sessions/{session}:detectIntent`,
///   also under `environments/{environment}/`), body
///   `{"queryInput":{"text":{"text":"…"},"languageCode":"en"},"queryParams":{…}}`,
///   answering `{"responseId":"…","queryResult":{…}}` (`QueryResult` of v3: `text`,
///   `languageCode`, `responseMessages` (`text`, `payload`, `liveAgentHandoff`,
///   `endInteraction`, …), `parameters`, `match`, …).
///
/// `detectIntent` requires `Authorization: Bearer <an access token this server issued>`,
/// else HTTP 401. Errors use Google's JSON error format
/// `{"error":{"code":503,"message":"…","status":"UNAVAILABLE"}}`.
#[derive(Clone)]
pub struct FakeGoogle {
    inner: Shared<GoogleInner>,
    /// The server's base URL, e.g. `http://127.0.0.1:40123`; the Dialogflow API root
    /// (in place of `https://dialogflow.googleapis.com`).
    pub url: String,
}

impl FakeGoogle {
    /// The `project_id` of the fake service account.
    pub const PROJECT_ID: &'static str = "fake-project";
    /// The `client_email` of the fake service account: the `iss` its assertions carry.
    pub const CLIENT_EMAIL: &'static str = "bot@fake-project.iam.gserviceaccount.com";
    /// The `private_key_id` of the fake service account; an assertion whose header
    /// names a `kid` must name this one.
    pub const PRIVATE_KEY_ID: &'static str = "125cff6c9f4c0d436fcaa4a21c93d1f5f1fbe5d6";
    /// The text of the default (fallback) answer to a query nothing was scripted for.
    pub const FALLBACK_TEXT: &'static str = "Sorry, I did not get that.";

    /// Starts the server on an ephemeral local port.
    pub async fn start() -> Self {
        let (listener, url) = listen().await;
        let inner = Arc::new(Mutex::new(GoogleInner {
            token_uri: format!("{url}/token"),
            key: DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY_PEM.as_bytes())
                .expect("test public key"),
            issued: HashSet::new(),
            retired: HashSet::new(),
            revoked: false,
            replies: HashMap::new(),
            failures: VecDeque::new(),
            delays: VecDeque::new(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/token", post(google_token))
            .route("/v2/{*rest}", post(detect_intent))
            .route("/v3/{*rest}", post(detect_intent))
            .fallback(google_not_found)
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { inner, url }
    }

    /// The token endpoint, `{url}/token` (the key file's `token_uri`).
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url)
    }

    /// A service-account key file as the Google Cloud console downloads it
    /// (`"type": "service_account"`, `project_id`, `private_key_id`, `private_key` in
    /// PKCS#8 PEM, `client_email`, `client_id`, `auth_uri`, `token_uri`, …), whose
    /// `token_uri` points at this server.
    pub fn service_account_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": Self::PROJECT_ID,
            "private_key_id": Self::PRIVATE_KEY_ID,
            "private_key": TEST_PRIVATE_KEY_PEM,
            "client_email": Self::CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url":
                "https://www.googleapis.com/robot/v1/metadata/x509/bot%40fake-project.iam.gserviceaccount.com",
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// From now on a `detectIntent` (ES or CX) whose query text equals `text` is answered
    /// with this `queryResult` (the test passes the shape of the API it calls). A
    /// missing `queryText`/`text` and `languageCode` are filled in from the request.
    /// Replaces an earlier reply for the same text.
    pub fn reply(&self, text: &str, query_result: Value) {
        let mut inner = self.inner.lock().expect("google lock");
        inner.replies.insert(text.to_owned(), query_result);
    }

    /// The next `count` `detectIntent` calls (after any already scripted) answer HTTP
    /// `status` with Google's error JSON, e.g.
    /// `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}`.
    /// These come before the authentication check.
    pub fn fail_next(&self, status: u16, count: usize) {
        let mut inner = self.inner.lock().expect("google lock");
        inner.failures.extend(std::iter::repeat_n(status, count));
    }

    /// The next `count` `detectIntent` calls (after any already scripted) wait `delay`
    /// before they are answered (as scripted otherwise), to exercise the caller's timeout.
    pub fn delay_next(&self, delay: Duration, count: usize) {
        let mut inner = self.inner.lock().expect("google lock");
        inner.delays.extend(std::iter::repeat_n(delay, count));
    }

    /// Revokes the service account's key: from now on the token endpoint answers
    /// `invalid_grant` and `detectIntent` answers 401 for every token, old or new.
    pub fn revoke(&self) {
        self.inner.lock().expect("google lock").revoked = true;
    }

    /// Invalidates every access token issued so far, before its expiry (as Google does
    /// when a key is rotated): `detectIntent` answers 401 for them; new ones are valid.
    pub fn retire_tokens(&self) {
        let mut inner = self.inner.lock().expect("google lock");
        let issued = inner.issued.clone();
        inner.retired.extend(issued);
    }

    /// Every `detectIntent` call so far, in arrival order (refused ones too).
    pub fn requests(&self) -> Vec<GoogleRequest> {
        self.inner.lock().expect("google lock").requests.clone()
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().expect("google lock").issued.len()
    }
}

/// An OAuth 2.0 error of Google's token endpoint (always HTTP 400).
fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

/// The canonical status name and a default message for an HTTP status, as Google's
/// JSON errors carry them.
fn google_status(code: u16) -> (&'static str, &'static str) {
    match code {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => (
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ),
        403 => ("PERMISSION_DENIED", "The caller does not have permission"),
        404 => ("NOT_FOUND", "Requested entity was not found."),
        409 => ("ABORTED", "The operation was aborted."),
        429 => (
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        ),
        500 => ("INTERNAL", "Internal error encountered."),
        501 => ("UNIMPLEMENTED", "Operation is not implemented."),
        503 => ("UNAVAILABLE", "The service is currently unavailable."),
        504 => (
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
        ),
        _ => ("UNKNOWN", "Unknown error."),
    }
}

/// Google's JSON error: `{"error":{"code":…,"message":…,"status":…}}`; a 401 also
/// carries `WWW-Authenticate`, as Google's APIs send it.
fn google_error(code: u16, message: Option<&str>) -> Response {
    let (status, default_message) = google_status(code);
    let mut response = json_response(
        code,
        &json!({"error": {"code": code, "message": message.unwrap_or(default_message), "status": status}}),
    );
    if code == 401 {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static(
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
            ),
        );
    }
    response
}

async fn google_not_found(uri: Uri) -> Response {
    google_error(
        404,
        Some(format!("The requested URL {} was not found.", uri.path()).as_str()),
    )
}

/// `POST /token`: exchanges a signed JWT assertion for an access token.
async fn google_token(State(inner): State<Shared<GoogleInner>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant_type = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    if grant_type != JWT_BEARER {
        return oauth_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let mut inner = inner.lock().expect("google lock");
    if inner.revoked {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    if let Err(refused) = check_assertion(&inner, assertion) {
        return *refused;
    }
    let token = format!("ya29.fake-{}", inner.issued.len() + 1);
    inner.issued.insert(token.clone());
    json_response(
        200,
        &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// Checks a service account's assertion as Google documents it: RS256 over the account's
/// key (and, when the header names a `kid`, that key's id), `iss` the client email, `aud`
/// the token URI, `exp` not passed and at most an hour after `iat`, and a `scope` that
/// grants Dialogflow.
fn check_assertion(inner: &GoogleInner, assertion: &str) -> Result<(), Box<Response>> {
    let bad_signature = || Box::new(oauth_error("invalid_grant", "Invalid JWT Signature."));
    let bad_time = || {
        Box::new(oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        ))
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| bad_signature())?;
    if header
        .kid
        .as_deref()
        .is_some_and(|kid| kid != FakeGoogle::PRIVATE_KEY_ID)
    {
        return Err(bad_signature());
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[inner.token_uri.as_str()]);
    validation.set_issuer(&[FakeGoogle::CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(assertion, &inner.key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => bad_time(),
            _ => bad_signature(),
        })?
        .claims;
    let now = unix_now();
    match (claims["iat"].as_i64(), claims["exp"].as_i64()) {
        (Some(iat), Some(exp)) if iat <= now + 60 && exp > iat && exp - iat <= 3600 => {}
        _ => return Err(bad_time()),
    }
    let scope = claims["scope"].as_str().unwrap_or_default();
    if !scope
        .split_whitespace()
        .any(|s| DIALOGFLOW_SCOPES.contains(&s))
    {
        return Err(Box::new(oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        )));
    }
    Ok(())
}

/// Which Dialogflow edition a `detectIntent` path addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edition {
    /// Dialogflow ES, API v2.
    Es,
    /// Dialogflow CX, API v3.
    Cx,
}

/// The edition and project of a documented `detectIntent` path, `None` for other paths.
fn parse_detect_intent(path: &str) -> Option<(Edition, String)> {
    let path = path.replace("%3A", ":").replace("%3a", ":");
    let (resource, method) = path.rsplit_once(':')?;
    if method != "detectIntent" {
        return None;
    }
    let segments: Vec<&str> = resource.trim_start_matches('/').split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    let (edition, rest) = match segments.as_slice() {
        ["v2", "projects", _, rest @ ..] => (Edition::Es, rest),
        ["v3", "projects", _, rest @ ..] => (Edition::Cx, rest),
        _ => return None,
    };
    // The location is optional in ES (the global agent), required in CX.
    let rest = match rest {
        ["locations", _, rest @ ..] => rest,
        _ if edition == Edition::Es => rest,
        _ => return None,
    };
    let rest = match (edition, rest) {
        (Edition::Es, ["agent", rest @ ..]) | (Edition::Cx, ["agents", _, rest @ ..]) => rest,
        _ => return None,
    };
    // An optional environment (and, in ES, user).
    let rest = match (edition, rest) {
        (Edition::Es, ["environments", _, "users", _, rest @ ..])
        | (Edition::Cx, ["environments", _, rest @ ..]) => rest,
        _ => rest,
    };
    matches!(rest, ["sessions", _]).then(|| (edition, segments[2].to_owned()))
}

/// The query text and language of a `detectIntent` body: ES puts `languageCode` in
/// `queryInput.text`, CX in `queryInput`. The message names what is missing.
fn text_query(edition: Edition, body: &Value) -> Result<(String, String), String> {
    let input = &body["queryInput"];
    let Some(text) = input["text"]["text"].as_str() else {
        return Err("Invalid query input: only queryInput.text.text is supported.".to_owned());
    };
    let language = match edition {
        Edition::Es => input["text"]["languageCode"].as_str(),
        Edition::Cx => input["languageCode"].as_str(),
    };
    match language {
        Some(language) if !language.is_empty() => Ok((text.to_owned(), language.to_owned())),
        _ => Err(match edition {
            Edition::Es => "Missing query_input.text.language_code.".to_owned(),
            Edition::Cx => "Missing query_input.language_code.".to_owned(),
        }),
    }
}

/// Dialogflow's answer when no intent matched: the Default Fallback Intent (ES) or a
/// no-match event (CX).
fn fallback(edition: Edition, project: &str, text: &str, language: &str) -> Value {
    match edition {
        Edition::Es => json!({
            "queryText": text,
            "languageCode": language,
            "action": "input.unknown",
            "parameters": {},
            "allRequiredParamsPresent": true,
            "fulfillmentText": FakeGoogle::FALLBACK_TEXT,
            "fulfillmentMessages": [{"text": {"text": [FakeGoogle::FALLBACK_TEXT]}}],
            "intent": {
                "name": format!("projects/{project}/agent/intents/00000000-0000-0000-0000-000000000000"),
                "displayName": "Default Fallback Intent",
                "isFallback": true,
            },
            "intentDetectionConfidence": 1,
        }),
        Edition::Cx => json!({
            "text": text,
            "languageCode": language,
            "responseMessages": [{"text": {"text": [FakeGoogle::FALLBACK_TEXT]}}],
            "match": {"matchType": "NO_MATCH", "event": "sys.no-match-default"},
        }),
    }
}

/// `POST /v2/…:detectIntent` and `POST /v3/…:detectIntent`.
async fn detect_intent(
    State(inner): State<Shared<GoogleInner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (delay, failure) = {
        let mut inner = inner.lock().expect("google lock");
        inner.requests.push(GoogleRequest {
            path: path.clone(),
            authorization: authorization.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
        (inner.delays.pop_front(), inner.failures.pop_front())
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = failure {
        return google_error(code, None);
    }
    let inner = inner.lock().expect("google lock");
    let token = bearer(authorization.as_deref());
    let valid = token.is_some_and(|t| inner.issued.contains(t) && !inner.retired.contains(t));
    if inner.revoked || !valid {
        return google_error(401, None);
    }
    let Some((edition, project)) = parse_detect_intent(&path) else {
        return google_error(
            404,
            Some(format!("The requested URL {path} was not found.").as_str()),
        );
    };
    let (text, language) = match text_query(edition, &body) {
        Ok(query) => query,
        Err(message) => return google_error(400, Some(message.as_str())),
    };
    let mut result = inner
        .replies
        .get(&text)
        .cloned()
        .unwrap_or_else(|| fallback(edition, &project, &text, &language));
    if let Value::Object(fields) = &mut result {
        let text_field = match edition {
            Edition::Es => "queryText",
            Edition::Cx => "text",
        };
        fields
            .entry(text_field)
            .or_insert_with(|| Value::String(text.clone()));
        fields
            .entry("languageCode")
            .or_insert_with(|| Value::String(language.clone()));
    }
    json_response(
        200,
        &json!({"responseId": uuid::Uuid::new_v4().to_string(), "queryResult": result}),
    )
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// OpenAI-compatible chat completions
// ---------------------------------------------------------------------------------------

/// What the model answers to one last user message.
#[derive(Clone)]
enum Scripted {
    /// Plain assistant content.
    Content(String),
    /// A call of the `handoff` function with this reason.
    Handoff(String),
}

#[derive(Default)]
struct OpenAiInner {
    /// Request bodies, in arrival order.
    requests: Vec<Value>,
    /// Scripted answers, by last user message.
    replies: HashMap<String, Scripted>,
    /// Error statuses for the next calls, in order.
    failures: VecDeque<u16>,
    /// Delays for the next calls, in order.
    delays: VecDeque<Duration>,
    /// Completions answered so far (numbers `chatcmpl-<n>`).
    completions: usize,
    /// Tool calls made so far (numbers `call_<n>`).
    tool_calls: usize,
}

/// A stand-in for an OpenAI-compatible chat completions API (`POST /v1/chat/completions`,
/// non-streaming), as OpenAI's API reference documents it.
///
/// Requests carry `Authorization: Bearer <key>` (it must be [`FakeOpenAi::API_KEY`], else
/// HTTP 401) and a body `{"model":"…","messages":[{"role":"system"|"user"|"assistant"|"tool",
/// "content":"…"}…],"tools":[{"type":"function","function":{"name":"handoff",…}}…]}`.
/// The answer is a chat completion object: `{"id":"chatcmpl-<n>","object":"chat.completion",
/// "created":<unix seconds>,"model":"<model>","choices":[{"index":0,"message":{"role":
/// "assistant","content":"…"},"finish_reason":"stop"}],"usage":{"prompt_tokens":…,
/// "completion_tokens":…,"total_tokens":…}}`; a tool call has `"content":null`, a
/// `tool_calls` array and `"finish_reason":"tool_calls"`. Errors use OpenAI's format
/// `{"error":{"message":"…","type":"…","param":null,"code":…}}`.
///
/// The model answers to the last `user` message: as scripted by [`FakeOpenAi::reply`] or
/// [`FakeOpenAi::handoff_on`], else `echo: <last user message>`. Token counts are
/// whitespace-separated words, not a real tokenizer's. `"stream": true` is refused with
/// HTTP 400 (not supported by this stand-in).
#[derive(Clone)]
pub struct FakeOpenAi {
    inner: Shared<OpenAiInner>,
    /// The API base URL including `/v1`, e.g. `http://127.0.0.1:40123/v1`; clients POST
    /// `{url}/chat/completions`.
    pub url: String,
}

impl FakeOpenAi {
    /// The only API key the server accepts.
    pub const API_KEY: &'static str = "sk-test-fake";

    /// Starts the server on an ephemeral local port.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(OpenAiInner::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .fallback(openai_not_found)
            .with_state(inner.clone());
        let (listener, base) = listen().await;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            inner,
            url: format!("{base}/v1"),
        }
    }

    /// From now on, when the last user message equals `last_user_message`, the assistant
    /// answers `content` (`"finish_reason":"stop"`). Replaces an earlier script for it.
    pub fn reply(&self, last_user_message: &str, content: &str) {
        let mut inner = self.inner.lock().expect("openai lock");
        inner.replies.insert(
            last_user_message.to_owned(),
            Scripted::Content(content.to_owned()),
        );
    }

    /// From now on, when the last user message equals `last_user_message`, the assistant
    /// calls the `handoff` function: `"content":null`, `"tool_calls":[{"id":"call_<n>",
    /// "type":"function","function":{"name":"handoff","arguments":"{\"reason\":\"<reason>\"}"}}]`
    /// and `"finish_reason":"tool_calls"`. As a real model, it only calls a tool the
    /// request offers: without a `handoff` function in `tools` (or with
    /// `"tool_choice":"none"`) it answers as by default. Replaces an earlier script for it.
    pub fn handoff_on(&self, last_user_message: &str, reason: &str) {
        let mut inner = self.inner.lock().expect("openai lock");
        inner.replies.insert(
            last_user_message.to_owned(),
            Scripted::Handoff(reason.to_owned()),
        );
    }

    /// The next `count` calls (after any already scripted, once the API key is checked)
    /// answer HTTP `status` with OpenAI's error JSON (429: `rate_limit_exceeded`; 500,
    /// 502, 503: `server_error`; …).
    pub fn fail_next(&self, status: u16, count: usize) {
        let mut inner = self.inner.lock().expect("openai lock");
        inner.failures.extend(std::iter::repeat_n(status, count));
    }

    /// The next `count` calls (after any already scripted) wait `delay` before they are
    /// answered, to exercise the caller's timeout.
    pub fn delay_next(&self, delay: Duration, count: usize) {
        let mut inner = self.inner.lock().expect("openai lock");
        inner.delays.extend(std::iter::repeat_n(delay, count));
    }

    /// The bodies of every `chat/completions` request so far, in arrival order (refused
    /// ones too; `Null` for a body that is not JSON).
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().expect("openai lock").requests.clone()
    }
}

/// OpenAI's JSON error.
fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// OpenAI's error for a scripted failure status.
fn openai_failure(status: u16) -> Response {
    match status {
        400 => openai_error(400, "Invalid request.", "invalid_request_error", None),
        401 => openai_error(
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => openai_error(
            403,
            "You are not allowed to access this resource.",
            "invalid_request_error",
            None,
        ),
        404 => openai_error(
            404,
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => openai_error(
            429,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500 => openai_error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        502 => openai_error(502, "Bad gateway.", "server_error", None),
        503 => openai_error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        _ => openai_error(status, "Unexpected error.", "server_error", None),
    }
}

async fn openai_not_found(uri: Uri) -> Response {
    openai_error(
        404,
        &format!("Invalid URL ({})", uri.path()),
        "invalid_request_error",
        None,
    )
}

/// The text of a message's `content`: a string, or the `text` parts of an array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// A rough token count: whitespace-separated words, at least 1.
fn word_count(text: &str) -> usize {
    text.split_whitespace().count().max(1)
}

/// Whether the request lets the model call a function named `name`.
fn offers_function(request: &Value, name: &str) -> bool {
    request["tool_choice"] != "none"
        && request["tools"].as_array().is_some_and(|tools| {
            tools
                .iter()
                .any(|tool| tool["type"] == "function" && tool["function"]["name"] == name)
        })
}

/// `POST /v1/chat/completions`.
async fn chat_completions(
    State(inner): State<Shared<OpenAiInner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let authorized = bearer(authorization) == Some(FakeOpenAi::API_KEY);
    let (delay, failure) = {
        let mut inner = inner.lock().expect("openai lock");
        inner.requests.push(request.clone());
        let failure = if authorized {
            inner.failures.pop_front()
        } else {
            None
        };
        (inner.delays.pop_front(), failure)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if !authorized {
        return openai_failure(401);
    }
    if let Some(status) = failure {
        return openai_failure(status);
    }
    if !request.is_object() {
        return openai_error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    }
    let Some(model) = request["model"].as_str().filter(|model| !model.is_empty()) else {
        return openai_error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
    };
    let messages = match request["messages"].as_array() {
        Some(messages) if !messages.is_empty() => messages,
        _ => {
            return openai_error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                "invalid_request_error",
                Some("empty_array"),
            );
        }
    };
    if request["stream"] == true {
        return openai_error(
            400,
            "Streaming is not supported by this stand-in.",
            "invalid_request_error",
            None,
        );
    }
    let last_user = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")
        .map(|message| content_text(&message["content"]))
        .unwrap_or_default();
    let prompt_tokens: usize = messages
        .iter()
        .map(|message| word_count(&content_text(&message["content"])))
        .sum();

    let mut inner = inner.lock().expect("openai lock");
    inner.completions += 1;
    let id = format!("chatcmpl-{}", inner.completions);
    let scripted = inner.replies.get(&last_user).cloned();
    let (message, finish_reason, completion_tokens) = match scripted {
        Some(Scripted::Handoff(reason)) if offers_function(&request, "handoff") => {
            inner.tool_calls += 1;
            let arguments = json!({"reason": reason}).to_string();
            let tokens = word_count(&arguments);
            (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": format!("call_{}", inner.tool_calls),
                        "type": "function",
                        "function": {"name": "handoff", "arguments": arguments},
                    }],
                    "refusal": null,
                }),
                "tool_calls",
                tokens,
            )
        }
        Some(Scripted::Content(content)) => {
            let tokens = word_count(&content);
            (
                json!({"role": "assistant", "content": content, "refusal": null}),
                "stop",
                tokens,
            )
        }
        Some(Scripted::Handoff(_)) | None => {
            let content = format!("echo: {last_user}");
            let tokens = word_count(&content);
            (
                json!({"role": "assistant", "content": content, "refusal": null}),
                "stop",
                tokens,
            )
        }
    };
    json_response(
        200,
        &json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }),
    )
}

/// `GET /v1/models`: the model list, which clients call to check a key.
async fn models(headers: HeaderMap) -> Response {
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if bearer(authorization) != Some(FakeOpenAi::API_KEY) {
        return openai_failure(401);
    }
    axum::Json(serde_json::json!({
        "object": "list",
        "data": [{"id": "gpt-fake", "object": "model", "created": 0, "owned_by": "stand-in"}]
    }))
    .into_response()
}
