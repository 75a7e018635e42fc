//! What an SRE and a client author see from outside: readiness that follows the
//! dependencies, a gRPC surface without surprises, metrics that count every call, and a
//! rollout that fails no call.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ism_e2e::platform::grpc_service_name;
use ism_e2e::proxy::Proxy;
use ism_e2e::{Platform, Receiver, authed, eventually};
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::{GetContactRequest, ListContactsRequest};
use ism_proto::conversations::v1::ListConversationsRequest;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const SERVICES: [&str; 7] = [
    "workspaces",
    "gateway",
    "contacts",
    "conversations",
    "broadcasts",
    "workflows",
    "integrations",
];

/// The value of the sample `series` (name and labels, as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn each_port_reflects_checks_and_counts_only_what_it_serves() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let token = platform.token(&tenant).await;

    for service in SERVICES {
        let own = grpc_service_name(service);
        let expected: BTreeSet<String> = [
            own,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(platform.reflected(service).await, expected, "{service}");
        assert_eq!(
            platform.health(service, own).await,
            Some(ServingStatus::Serving),
            "{service} ready"
        );
        assert_eq!(
            platform.health(service, "").await,
            Some(ServingStatus::Serving),
            "{service} alive"
        );
        let other = grpc_service_name(if service == "contacts" {
            "workspaces"
        } else {
            "contacts"
        });
        let mut health = HealthClient::new(platform.channel(service).connect().await.unwrap());
        let refused = health
            .check(HealthCheckRequest {
                service: other.to_owned(),
            })
            .await
            .expect_err("another port's service is unknown here");
        assert_eq!(refused.code(), Code::NotFound, "{service}: {other}");
    }

    // gzip both ways: accepted from the caller, and used to answer a caller that accepts it.
    let channel = platform.channel("contacts").connect().await.unwrap();
    let mut zipped = ContactServiceClient::new(channel.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let answer = zipped
        .list_contacts(authed(&token, ListContactsRequest::default()))
        .await
        .expect("a gzip request is accepted");
    assert_eq!(
        answer
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );

    // Client mistakes are the client's: answered, and logged below ERROR.
    let mut contacts = ContactServiceClient::new(channel.clone());
    for id in ["not-a-uuid", "01a24660-1d3b-7619-b12f-a36d664caeec"] {
        let refused = contacts
            .get_contact(authed(&token, GetContactRequest { id: id.into() }))
            .await
            .unwrap_err();
        assert!(
            matches!(refused.code(), Code::InvalidArgument | Code::NotFound),
            "{refused:?}"
        );
    }

    // Raw HTTP/2, as a scanner sends it.
    let raw = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let call = |path: &str| {
        raw.post(format!(
            "http://127.0.0.1:{}{path}",
            platform.grpc_ports["contacts"]
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        // An empty message: no compression flag, zero length.
        .body(vec![0u8, 0, 0, 0, 0])
    };
    let grpc_status = |response: &reqwest::Response| {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };

    // A made-up path answers UNIMPLEMENTED and does not become a series of its own.
    let probe = call("/evil/aaaa").send().await.unwrap();
    assert_eq!(grpc_status(&probe).as_deref(), Some("12"));

    // A stream is counted when it ends, with its whole length, even when the caller
    // goes away.
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first: Option<HealthCheckResponse> = watch.message().await.unwrap();
    assert!(first.is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(watch);

    let watched = r#"ism_grpc_request_seconds_sum{service="contacts",method="/grpc.health.v1.Health/Watch",code="CANCELLED"}"#;
    let text = eventually(
        Duration::from_secs(10),
        "the ended stream counted",
        || async {
            let text = platform.metrics("contacts").await;
            sample(&text, watched).map(|_| text)
        },
    )
    .await;
    assert!(
        sample(&text, watched).unwrap() >= 1.4,
        "a stream timed to its end"
    );
    for (series, at_least) in [
        (
            r#"ism_grpc_requests_total{service="contacts",method="/ism.contacts.v1.ContactService/ListContacts",code="OK"}"#,
            1.0,
        ),
        (
            r#"ism_grpc_requests_total{service="contacts",method="unknown",code="UNIMPLEMENTED"}"#,
            1.0,
        ),
    ] {
        let value = sample(&text, series).unwrap_or_else(|| panic!("{series} in {text}"));
        assert!(value >= at_least, "{series} = {value}");
    }
    assert!(!text.contains("evil"), "a scanner's path is no label");
    assert!(!text.contains(r#"code="Ok""#), "canonical code names only");

    // Every family on every port says what it is, and the process and build are there.
    for service in SERVICES {
        let text = platform.metrics(service).await;
        let families: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for family in &families {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{service}: {family} has no HELP"
            );
        }
        for family in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "ism_build_info",
            "ism_dependency_up",
            "ism_outbox_oldest_seconds",
        ] {
            assert!(families.contains(family), "{service}: no {family}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("ism_build_info{") && l.contains("commit=\"")),
            "{service}: build info with a commit"
        );
        assert_eq!(
            promtool_problems(&text),
            "",
            "{service}: promtool check metrics"
        );
    }
    let log = platform.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(r#""level":"ERROR""#))
        .collect();
    assert!(
        errors.is_empty(),
        "client mistakes logged as errors: {errors:?}"
    );
    // Outcome series start at zero, so an alert on the first dead letter can fire.
    let conversations = platform.metrics("conversations").await;
    assert!(
        conversations
            .lines()
            .any(|l| l.starts_with("ism_events_consumed_total{")
                && l.contains(r#"outcome="dead_lettered""#)),
        "{conversations}"
    );
}

// Two threads: the proxies relay while the harness blocks on `ism admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_the_broker_and_liveness_does_not() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let database = Proxy::start("127.0.0.1:5432").await;
    let broker = Proxy::start("127.0.0.1:5672").await;
    let url = database.url(platform.setting("ISM_DATABASE__URL"));
    platform.set("ISM_DATABASE__URL", &url);
    let url = broker.url(platform.setting("ISM_AMQP__URL"));
    platform.set("ISM_AMQP__URL", &url);
    platform.bootstrap(&receiver.url);
    platform.spawn("all");
    platform.wait_ready().await;
    let http = reqwest::Client::new();
    let probe = |path: &'static str| {
        let http = http.clone();
        let port = platform.http_port;
        async move {
            http.get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }
    };
    assert_eq!(probe("/readyz").await, Some(200));

    for (outage, proxy) in [("database", &database), ("broker", &broker)] {
        proxy.cut();
        for service in SERVICES {
            eventually(
                Duration::from_secs(30),
                &format!("{service} not ready while the {outage} is down"),
                || async { (!platform.serving(service).await).then_some(()) },
            )
            .await;
            assert_eq!(
                platform.health(service, "").await,
                Some(ServingStatus::Serving),
                "{service} stays alive while the {outage} is down"
            );
        }
        assert_eq!(probe("/readyz").await, Some(503), "{outage} down");
        assert_eq!(probe("/healthz").await, Some(200), "{outage} down");
        let up = platform.metrics("contacts").await;
        assert_eq!(
            sample(
                &up,
                &format!(r#"ism_dependency_up{{service="contacts",dependency="{outage}"}}"#)
            ),
            Some(0.0),
            "{up}"
        );

        proxy.restore();
        for service in SERVICES {
            eventually(
                Duration::from_secs(30),
                &format!("{service} ready again once the {outage} is back"),
                || async { platform.serving(service).await.then_some(()) },
            )
            .await;
        }
        assert_eq!(probe("/readyz").await, Some(200), "{outage} back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_each_of_two_processes_under_steady_calls_and_webhooks_fails_none() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_SHUTDOWN__PROPAGATION_SECONDS", "1");
    let tenant = platform.bootstrap(&receiver.url);
    let first = platform.spawn("all");
    let second = platform.spawn("all");
    platform.wait_ready().await;
    let token = platform.token(&tenant).await;

    let platform = Arc::new(tokio::sync::Mutex::new(platform));
    let (calls, failures, retries) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (grpc_port, http_port) = {
        let p = platform.lock().await;
        (p.grpc_ports["conversations"], p.http_port)
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))
        .unwrap()
        .connect_lazy();
    let mut load = Vec::new();
    for lane in 0..4 {
        let (calls, failures, retries, failed, stop) = (
            calls.clone(),
            failures.clone(),
            retries.clone(),
            failed.clone(),
            stop.clone(),
        );
        let client = ConversationServiceClient::new(channel.clone());
        let token = token.clone();
        let http = reqwest::Client::new();
        let channel_id = tenant.channel_id.clone();
        let secret = tenant.webhook_secret.clone();
        load.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let list = |mut client: ConversationServiceClient<_>| {
                    let token = token.clone();
                    async move {
                        client
                            .list_conversations(authed(&token, ListConversationsRequest::default()))
                            .await
                    }
                };
                let mut listed = list(client.clone()).await;
                // gRPC clients retry a call that failed in transport, before any answer
                // (a connection closing under it); tonic does not, so the test does.
                if listed.as_ref().is_err_and(in_transport) {
                    retries.fetch_add(1, Ordering::SeqCst);
                    listed = list(client.clone()).await;
                }
                let external_id = format!("rollout-{lane}-{n}");
                let body = serde_json::to_vec(&json!({
                    "message_id": external_id,
                    "from": { "id": format!("c{lane}") },
                    "text": "hello"
                }))
                .unwrap();
                let post = || {
                    http.post(format!(
                        "http://127.0.0.1:{http_port}/webhooks/custom/{channel_id}"
                    ))
                    .header("content-type", "application/json")
                    .header("x-ism-signature", ism_e2e::sign(&secret, &body))
                    .body(body.clone())
                    .send()
                };
                let mut posted = post().await;
                // As providers do: a webhook whose connection failed is sent again (the
                // message id makes a repeat harmless).
                if posted
                    .as_ref()
                    .is_err_and(|e| e.is_connect() || e.is_request())
                {
                    retries.fetch_add(1, Ordering::SeqCst);
                    posted = post().await;
                }
                calls.fetch_add(2, Ordering::SeqCst);
                if let Err(status) = listed {
                    failures.fetch_add(1, Ordering::SeqCst);
                    failed
                        .lock()
                        .unwrap()
                        .push(format!("ListConversations: {status:?}"));
                }
                match posted {
                    Ok(r) if r.status().is_success() => sent.push(external_id),
                    Ok(r) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("webhook: HTTP {}", r.status()));
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                        failed.lock().unwrap().push(format!("webhook: {e}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    for old in [first, second] {
        let replacement = {
            let mut p = platform.lock().await;
            p.stop(old);
            p.spawn("all")
        };
        let status = eventually(Duration::from_secs(40), "the old process gone", || {
            let platform = platform.clone();
            async move { platform.lock().await.exited(old) }
        })
        .await;
        assert!(status.success(), "a clean stop: {status:?}");
        platform.lock().await.wait_ready().await;
        let _ = replacement;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for lane in load {
        sent.extend(lane.await.unwrap());
    }
    let total = calls.load(Ordering::SeqCst);
    assert!(total > 100, "a steady stream: {total} calls");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {total} calls ({} retried once): {:?}",
        retries.load(Ordering::SeqCst),
        failed.lock().unwrap()
    );
    println!(
        "{total} calls, {} retried once, none failed",
        retries.load(Ordering::SeqCst)
    );
    // Every webhook accepted is stored, once.
    let platform = platform.lock().await;
    let mut stored = platform.stored_external_ids(&tenant, sent.len()).await;
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent);
}

/// Whether a call failed in the client's transport (the connection), before any answer.
fn in_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<tonic::transport::Error>())
}

/// What `promtool check metrics` finds wrong in `text` (empty when nothing). promtool is
/// installed with the test infrastructure (scripts/dev-infra.sh).
fn promtool_problems(text: &str) -> String {
    use std::io::Write;
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (make test installs it)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads the metrics");
    let output = check.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("{}: {said}", output.status)
    }
}

#[tokio::test]
async fn a_busy_database_pool_answers_unavailable_never_internal() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&receiver.url);
    // One connection per service and a short wait for it: a burst of calls must queue
    // past the wait.
    platform.set("ISM_DATABASE__MAX_CONNECTIONS", "1");
    platform.set("ISM_DATABASE__ACQUIRE_TIMEOUT_MS", "150");
    platform.set("ISM_RATE_LIMIT__ENABLED", "false");
    platform.spawn("all");
    platform.wait_ready().await;
    let token = platform.token(&tenant).await;
    let contacts = ContactServiceClient::new(platform.channel("contacts").connect().await.unwrap());
    let calls = (0..16).map(|_| {
        let mut contacts = contacts.clone();
        let token = token.clone();
        async move {
            contacts
                .list_contacts(authed(&token, ListContactsRequest::default()))
                .await
                .map(|_| ())
        }
    });
    // The one connection is held by a call waiting on a lock for a second (fault
    // injection through the service's own database), as a slow query would hold it.
    let database = platform.database("contacts").await;
    let mut lock = database.begin().await.unwrap();
    sqlx::query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        lock.commit().await.unwrap();
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(calls), release);
    let codes: Vec<Code> = answers
        .iter()
        .map(|answer| {
            answer
                .as_ref()
                .map_or_else(|status| status.code(), |()| Code::Ok)
        })
        .collect();
    assert!(
        codes
            .iter()
            .all(|code| matches!(code, Code::Ok | Code::Unavailable)),
        "{answers:?}"
    );
    assert!(
        codes.contains(&Code::Unavailable),
        "the burst outwaited the pool: {codes:?}"
    );
    assert!(codes.contains(&Code::Ok), "{codes:?}");
}
