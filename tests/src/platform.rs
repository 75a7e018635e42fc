//! One `ism` process (or several, sharing state) per test.
use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use hmac::{Hmac, KeyInit, Mac};
use ism_platform::config::ServiceName;
use ism_platform::events::topology::QUEUES;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::conversations::v1::{ListConversationsRequest, ListMessagesRequest};
use ism_proto::workspaces::v1::ExchangeApiKeyRequest;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use sha2::Sha256;
use tonic::transport::Channel;

const POSTGRES: &str = "postgres://ism:ism@127.0.0.1:5432/postgres";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The `ism` binary built by `cargo build -p ism` (the Makefile does it first).
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("ISM_BIN") {
        return path.into();
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ism");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p ism` (make test does)",
        path.display()
    );
    path
}

/// A listening socket on a port the system chose, held by the harness for the
/// platform's life and handed to each `ism serve` under `name`.
struct Socket {
    name: String,
    listener: TcpListener,
}

impl Socket {
    fn bind(name: String) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a free port");
        Self { name, listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound").port()
    }
}

/// A demo tenant: a Workspace with an owner API key and a custom channel.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub workspace_id: String,
    pub api_key: String,
    pub channel_id: String,
    pub webhook_secret: String,
    /// The Workspace's owner User.
    pub owner_user_id: String,
}

/// The gRPC service `service` serves (`contacts`: `ism.contacts.v1.ContactService`).
pub fn grpc_service_name(service: &str) -> &'static str {
    use ism_proto::*;
    match service {
        "workspaces" => workspaces::v1::workspace_service_server::SERVICE_NAME,
        "gateway" => gateway::v1::gateway_service_server::SERVICE_NAME,
        "contacts" => contacts::v1::contact_service_server::SERVICE_NAME,
        "conversations" => conversations::v1::conversation_service_server::SERVICE_NAME,
        "broadcasts" => broadcasts::v1::broadcast_service_server::SERVICE_NAME,
        "workflows" => workflows::v1::workflow_service_server::SERVICE_NAME,
        "integrations" => integrations::v1::integration_service_server::SERVICE_NAME,
        other => panic!("no service {other}"),
    }
}

/// The environment and processes of one isolated platform.
pub struct Platform {
    pub id: String,
    env: HashMap<String, String>,
    pub http_port: u16,
    pub grpc_ports: HashMap<&'static str, u16>,
    pub metrics_ports: HashMap<&'static str, u16>,
    /// Every listening socket of the platform, bound before any process starts.
    sockets: Vec<Socket>,
    children: Vec<Child>,
    log_dir: PathBuf,
}

impl Platform {
    /// A fresh, not yet started platform: own databases, exchange, queues and ports.
    pub fn new() -> Self {
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut env = HashMap::new();
        let mut grpc_ports = HashMap::new();
        let mut metrics_ports = HashMap::new();
        env.insert("ISM_DATABASE__URL".into(), POSTGRES.into());
        env.insert("ISM_DATABASE__NAME_PREFIX".into(), format!("ism_{id}"));
        env.insert("ISM_DATABASE__MAX_CONNECTIONS".into(), "5".into());
        env.insert("ISM_AMQP__URL".into(), AMQP.into());
        env.insert("ISM_AMQP__EXCHANGE".into(), format!("ism.events.{id}"));
        env.insert("ISM_AMQP__QUEUE_PREFIX".into(), id.clone());
        env.insert("ISM_AMQP__RETRY_BASE_MS".into(), "50".into());
        env.insert("ISM_REDIS__KEY_PREFIX".into(), id.clone());
        env.insert("ISM_GRPC__HOST".into(), "127.0.0.1".into());
        // Nothing routes by readiness here: a stopping process need not wait for it.
        env.insert("ISM_SHUTDOWN__PROPAGATION_SECONDS".into(), "0".into());
        env.insert("ISM_HEALTH__CHECK_INTERVAL_MS".into(), "200".into());
        env.insert("ISM_GATEWAY__DELIVERY_RETRY_BASE_MS".into(), "100".into());
        env.insert(
            "ISM_GATEWAY__DELIVERY_RETRY_FOR_SECONDS".into(),
            "60".into(),
        );
        // Webhook receivers in tests listen on loopback; retries come within seconds.
        env.insert("ISM_EGRESS__ALLOW".into(), r#"["127.0.0.0/8"]"#.into());
        env.insert(
            "ISM_INTEGRATIONS__RETRY_SCHEDULE_SECONDS".into(),
            "[0, 1, 1, 1, 1, 1, 1, 1]".into(),
        );
        env.insert("ISM_INTEGRATIONS__BREAKER_REST_SECONDS".into(), "1".into());
        env.insert("ISM_INTEGRATIONS__POLL_MS".into(), "200".into());
        env.insert(
            "ISM_TELEMETRY__LOG_FILTER".into(),
            "info,sqlx=warn,lapin=warn".into(),
        );
        let mut sockets = Vec::new();
        let mut socket = |name: String| {
            let socket = Socket::bind(name);
            let port = socket.port();
            sockets.push(socket);
            port
        };
        for service in ServiceName::ALL.map(ServiceName::as_str) {
            let grpc = socket(format!("{service}.grpc"));
            let metrics = socket(format!("{service}.metrics"));
            let key = service.to_uppercase();
            env.insert(format!("ISM_SERVICES__{key}__GRPC_PORT"), grpc.to_string());
            env.insert(
                format!("ISM_SERVICES__{key}__METRICS_PORT"),
                metrics.to_string(),
            );
            env.insert(
                format!("ISM_SERVICES__{key}__ENDPOINT"),
                format!("http://127.0.0.1:{grpc}"),
            );
            grpc_ports.insert(service, grpc);
            metrics_ports.insert(service, metrics);
        }
        let http_port = socket("gateway.http".to_owned());
        env.insert("ISM_GATEWAY__HTTP_PORT".into(), http_port.to_string());
        // Providers are told webhook and status URLs on the gateway's own port.
        env.insert(
            "ISM_GATEWAY__PUBLIC_URL".into(),
            format!("http://127.0.0.1:{http_port}"),
        );
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Self {
            id,
            env,
            http_port,
            grpc_ports,
            metrics_ports,
            sockets,
            children: Vec::new(),
            log_dir,
        }
    }

    /// The Prometheus text `service` exposes on its metrics port now.
    pub async fn metrics(&self, service: &str) -> String {
        reqwest::get(format!(
            "http://127.0.0.1:{}/metrics",
            self.metrics_ports[service]
        ))
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics text")
    }

    /// What the platform's processes have logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{}.log", self.id))).unwrap_or_default()
    }

    /// The setting `key` (`ISM_...`) processes are started with.
    pub fn setting(&self, key: &str) -> &str {
        &self.env[key]
    }

    /// Overrides one setting (an `ISM_...` variable) for processes started afterwards.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command.args(args).envs(&self.env);
        command
    }

    /// Runs an `ism` command to completion; panics with its output on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("ism runs");
        assert!(
            output.status.success(),
            "ism {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Closes the platform's socket `name` (`contacts.grpc`...): until a process binds its
    /// port itself, connections to it are refused, as they are to a service that is down
    /// in production. Processes started afterwards are not handed that socket.
    pub fn unbind(&mut self, name: &str) {
        self.sockets.retain(|socket| socket.name != name);
    }

    /// Starts `ism serve <what>` in the background on the platform's sockets (a process
    /// started again takes over the same ones); its log goes to target/e2e-logs.
    pub fn spawn(&mut self, what: &str) -> usize {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", self.id)))
            .expect("log file");
        let mut command = self.command(&["serve", what]);
        let names: Vec<&str> = self.sockets.iter().map(|s| s.name.as_str()).collect();
        let handed = self
            .sockets
            .iter()
            .zip(3..)
            .map(|(socket, child_fd)| FdMapping {
                parent_fd: socket.listener.as_fd().try_clone_to_owned().expect("dup"),
                child_fd,
            })
            .collect();
        command
            .fd_mappings(handed)
            .expect("distinct descriptors")
            .env("LISTEN_FDS", self.sockets.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
        let child = command
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("ism serve starts");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts each service in a process of its own (so one can be killed or measured
    /// alone); their indexes for [`Self::kill`] and [`Self::pid`], by service name.
    pub fn spawn_each(&mut self) -> HashMap<&'static str, usize> {
        ServiceName::ALL
            .map(ServiceName::as_str)
            .into_iter()
            .map(|service| (service, self.spawn(service)))
            .collect()
    }

    /// Migrates, creates a tenant whose channel delivers to `outbound_url`, and serves all.
    pub async fn start(outbound_url: &str) -> (Self, Tenant) {
        Self::start_with(outbound_url, &[]).await
    }

    /// [`start`](Self::start) with `settings` (`ISM_...` variables) overridden first.
    pub async fn start_with(outbound_url: &str, settings: &[(&str, &str)]) -> (Self, Tenant) {
        let mut platform = Self::new();
        for (key, value) in settings {
            platform.set(key, value);
        }
        let tenant = platform.bootstrap(outbound_url);
        platform.spawn("all");
        platform.wait_ready().await;
        (platform, tenant)
    }

    /// Creates a tenant (workspace, owner key, custom channel) straight in the databases.
    pub fn bootstrap(&self, outbound_url: &str) -> Tenant {
        let file = self
            .log_dir
            .join(format!("{}-{}.env", self.id, uuid::Uuid::new_v4().simple()));
        let out = self.run(&[
            "admin",
            "demo",
            "--file",
            file.to_str().expect("utf-8 path"),
            "--outbound-url",
            outbound_url,
        ]);
        let _ = std::fs::remove_file(&file);
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing in {out}"))
                .to_owned()
        };
        Tenant {
            workspace_id: value("ISM_DEMO_WORKSPACE_ID"),
            api_key: value("ISM_API_KEY"),
            channel_id: value("ISM_DEMO_CHANNEL_ID"),
            webhook_secret: value("ISM_DEMO_WEBHOOK_SECRET"),
            owner_user_id: value("ISM_DEMO_USER_ID"),
        }
    }

    /// Waits until the gateway is ready and every gRPC server reports SERVING.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        // A call to a socket no process accepts on yet waits in its backlog: bounded, so
        // the loop reaches its deadline.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        loop {
            let mut ready = http
                .get(format!("http://127.0.0.1:{}/readyz", self.http_port))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            for service in ServiceName::ALL {
                ready = ready && self.serving(service.as_str()).await;
            }
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "platform {} not ready in 60 s; see target/e2e-logs",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether `service` is ready: its gRPC health check for its own service name (what
    /// the chart's readiness probe asks) answers SERVING.
    pub async fn serving(&self, service: &str) -> bool {
        self.health(service, grpc_service_name(service)).await
            == Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
    }

    /// What `service`'s health service answers for `name` (`""`: the whole server, as a
    /// liveness probe asks); `None` when it does not answer.
    pub async fn health(
        &self,
        service: &str,
        name: &str,
    ) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
        let endpoint = self.channel(service).timeout(Duration::from_secs(2));
        let channel = tokio::time::timeout(Duration::from_secs(2), endpoint.connect())
            .await
            .ok()?
            .ok()?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let answer = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: name.to_owned(),
            })
            .await
            .ok()?;
        tonic_health::pb::health_check_response::ServingStatus::try_from(answer.into_inner().status)
            .ok()
    }

    /// The services `service`'s port lists through server reflection (v1).
    pub async fn reflected(&self, service: &str) -> std::collections::BTreeSet<String> {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let channel = self
            .channel(service)
            .connect()
            .await
            .expect("reflection reachable");
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("reflection answers")
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = stream
            .message()
            .await
            .expect("a reflection answer")
            .and_then(|answer| answer.message_response)
        else {
            panic!("{service}: no service list");
        };
        list.service.into_iter().map(|s| s.name).collect()
    }

    /// A channel to `service`'s gRPC port.
    pub fn channel(&self, service: &str) -> tonic::transport::Endpoint {
        tonic::transport::Endpoint::from_shared(format!(
            "http://127.0.0.1:{}",
            self.grpc_ports[service]
        ))
        .expect("endpoint")
    }

    /// An access token for `tenant`'s owner API key.
    pub async fn token(&self, tenant: &Tenant) -> String {
        let channel = self
            .channel("workspaces")
            .connect()
            .await
            .expect("workspaces reachable");
        WorkspaceServiceClient::new(channel)
            .exchange_api_key(ExchangeApiKeyRequest {
                api_key: tenant.api_key.clone(),
            })
            .await
            .expect("API key exchanges")
            .into_inner()
            .access_token
    }

    /// A conversations client.
    pub async fn conversations(&self) -> ConversationServiceClient<Channel> {
        ConversationServiceClient::new(
            self.channel("conversations")
                .connect()
                .await
                .expect("conversations reachable"),
        )
    }

    /// The external ids of every message of `tenant`'s conversations, newest first per
    /// conversation, once at least `expected` exist (panics after 60 s).
    pub async fn stored_external_ids(&self, tenant: &Tenant, expected: usize) -> Vec<String> {
        let token = self.token(tenant).await;
        let conversations = self.conversations().await;
        eventually(
            Duration::from_secs(60),
            &format!("{expected} stored messages"),
            || {
                let mut client = conversations.clone();
                let token = token.clone();
                async move {
                    let page = ListConversationsRequest {
                        page_size: 100,
                        ..Default::default()
                    };
                    let list = client
                        .list_conversations(authed(&token, page))
                        .await
                        .ok()?
                        .into_inner();
                    let mut ids = Vec::new();
                    for conversation in list.conversations {
                        let mut page_token = String::new();
                        loop {
                            let request = ListMessagesRequest {
                                conversation_id: conversation.id.clone(),
                                page_size: 100,
                                page_token,
                            };
                            let page = client
                                .list_messages(authed(&token, request))
                                .await
                                .ok()?
                                .into_inner();
                            ids.extend(page.messages.into_iter().map(|m| m.external_message_id));
                            if page.next_page_token.is_empty() {
                                break;
                            }
                            page_token = page.next_page_token;
                        }
                    }
                    (ids.len() >= expected).then_some(ids)
                }
            },
        )
        .await
    }

    /// POSTs `body` to the custom webhook of `channel_id`, signed with `secret` (if any).
    pub async fn webhook(
        &self,
        channel_id: &str,
        secret: Option<&str>,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/webhooks/custom/{channel_id}",
                self.http_port
            ))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            request = request.header("x-ism-signature", sign(secret, body));
        }
        let response = request.send().await.expect("gateway reachable");
        let code = response.status().as_u16();
        (
            code,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// The process id of a process started with [`spawn`](Self::spawn).
    pub fn pid(&self, index: usize) -> u32 {
        self.children[index].id()
    }

    /// Sends SIGKILL to a process started with [`spawn`](Self::spawn) and reaps it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and returns the exit status once the process is gone.
    pub fn terminate(
        &mut self,
        index: usize,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        self.stop(index);
        self.wait_exit(index, within)
    }

    /// Sends SIGTERM to a process started with [`spawn`](Self::spawn), without waiting.
    pub fn stop(&self, index: usize) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.children[index].id().to_string())
            .status();
    }

    /// The exit status of a process started with [`spawn`](Self::spawn), once it has
    /// exited by itself within `within`.
    pub fn wait_exit(
        &mut self,
        index: usize,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited(index) {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status of a process started with [`spawn`](Self::spawn) if it has exited.
    pub fn exited(&mut self, index: usize) -> Option<std::process::ExitStatus> {
        self.children[index].try_wait().ok().flatten()
    }

    /// A Postgres pool on this platform's database of `service` (for fault injection
    /// and inspection only; assertions go through the APIs).
    pub async fn database(&self, service: &str) -> sqlx::PgPool {
        let url = format!(
            "postgres://ism:ism@127.0.0.1:5432/ism_{}_{service}",
            self.id
        );
        sqlx::PgPool::connect(&url).await.expect("test database")
    }

    /// The names of this platform's exchange and the queue of `consumer` (`svc.name`).
    pub fn exchange(&self) -> String {
        format!("ism.events.{}", self.id)
    }

    pub fn queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.id)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let databases: Vec<String> = ServiceName::ALL
            .iter()
            .map(|s| format!("ism_{}_{s}", self.id))
            .collect();
        let queues: Vec<String> = QUEUES
            .iter()
            .map(|spec| self.queue(&spec.consumer()))
            .flat_map(|queue| [format!("{queue}.dlq"), queue])
            .chain([self.queue("revocations")])
            .collect();
        let exchange = self.exchange();
        // Cleanup runs on its own thread and runtime: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(cleanup(databases, queues, exchange));
        })
        .join();
    }
}

async fn cleanup(databases: Vec<String>, queues: Vec<String>, exchange: String) {
    if let Ok(pool) = sqlx::PgPool::connect(POSTGRES).await {
        for db in databases {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
        }
    }
    if let Ok(conn) = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default()).await
        && let Ok(channel) = conn.create_channel().await
    {
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await;
        }
        for name in [exchange.clone(), format!("{exchange}.dlx")] {
            let _ = channel
                .exchange_delete(name.as_str().into(), Default::default())
                .await;
        }
    }
}

/// `sha256=<hex>` HMAC of `body` under `secret`, computed independently of the gateway.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}
