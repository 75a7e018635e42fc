//! One message is one trace, both ways: a local OTLP collector receives the spans of the
//! real binary and finds, under one trace id, the gateway's webhook span, the queue hop
//! into conversations and the contacts call; and for a reply, SendMessage, the queue hop
//! into the gateway, the delivery attempt, the provider call (whose request carries the
//! trace) and the status update back in conversations.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ism_e2e::{Platform, Receiver, eventually};
use ism_proto::conversations::v1 as conv;
use ism_proto::types::v1::{MessageContent, Text, message_content::Kind};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// The spans of the first trace whose span `root` was collected, once one of them
    /// is `reaching`.
    async fn trace(&self, root: &str, what: &str, reaching: impl Fn(&Span) -> bool) -> Vec<Span> {
        eventually(Duration::from_secs(30), what, || {
            let spans = self.spans.lock().unwrap().clone();
            let found = spans.iter().find(|s| s.name == root).map(|root| {
                spans
                    .iter()
                    .filter(|s| s.trace_id == root.trace_id)
                    .cloned()
                    .collect::<Vec<Span>>()
            });
            let done = found.filter(|trace| trace.iter().any(&reaching));
            async move { done }
        })
        .await
    }
}

fn named<'a>(trace: &'a [Span], name: &str) -> &'a Span {
    trace
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} span in {trace:#?}"))
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                Some(s.clone())
            }
            opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(n) => {
                Some(n.to_string())
            }
            _ => None,
        }
    })
}

/// The span names OpenTelemetry's conventions give: the route of an HTTP server span,
/// `package.Service/Method` of an RPC server span.
const WEBHOOK: &str = "POST /webhooks/{provider}/{channel_id}";
const RESOLVE: &str = "ism.contacts.v1.ContactService/ResolveContact";
const SEND: &str = "ism.conversations.v1.ConversationService/SendMessage";

/// The span called `name` among `span`'s ancestors.
fn line_span<'a>(trace: &'a [Span], span: &'a Span, name: &str) -> &'a Span {
    ancestry(trace, span)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} above {}", span.name))
}

/// The spans of `trace` from `span` up to its root, `span` first.
fn ancestry<'a>(trace: &'a [Span], span: &'a Span) -> Vec<&'a Span> {
    let mut line = vec![span];
    while let Some(parent) = trace.iter().find(|s| {
        !line[line.len() - 1].parent_span_id.is_empty()
            && s.span_id == line[line.len() - 1].parent_span_id
    }) {
        line.push(parent);
    }
    line
}

#[tokio::test]
async fn a_message_is_one_trace_each_way_across_services_queues_and_the_provider() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let server = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let receiver = Receiver::start().await;
    let (platform, tenant) =
        Platform::start_with(&receiver.url, &[("ISM_TELEMETRY__OTLP_ENDPOINT", &otlp)]).await;

    let body = serde_json::to_vec(
        &json!({"message_id": "traced", "from": {"id": "c1"}, "text": "follow me"}),
    )
    .unwrap();
    assert_eq!(
        platform
            .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
            .await
            .0,
        200
    );

    let trace = collector
        .trace(WEBHOOK, "a trace reaching contacts", |s| s.name == RESOLVE)
        .await;

    let webhook = named(&trace, WEBHOOK);
    let consume = trace
        .iter()
        .find(|s| {
            s.name == "event.consume"
                && attribute(s, "consumer").as_deref() == Some("conversations.inbound")
        })
        .expect("the conversations consumer span is in the webhook's trace");
    let resolve = named(&trace, RESOLVE);
    // The queue hop continues the webhook's span through the PRODUCER span of the
    // event it raised.
    let created = trace
        .iter()
        .find(|s| s.span_id == consume.parent_span_id)
        .expect("the consumer span's parent is in the trace");
    assert_eq!(created.kind, SpanKind::Producer as i32);
    assert_eq!(created.parent_span_id, webhook.span_id);
    assert_eq!(
        attribute(created, "messaging.operation.type").as_deref(),
        Some("create")
    );
    assert_eq!(
        attribute(resolve, "ism.service").as_deref(),
        Some("contacts")
    );
    // Kinds and attributes as OpenTelemetry's conventions for HTTP, RPC and messaging say.
    assert_eq!(webhook.kind, SpanKind::Server as i32);
    assert_eq!(consume.kind, SpanKind::Consumer as i32);
    assert_eq!(resolve.kind, SpanKind::Server as i32);
    for (span, key, value) in [
        (webhook, "http.request.method", "POST"),
        (webhook, "http.route", "/webhooks/{provider}/{channel_id}"),
        (webhook, "http.response.status_code", "200"),
        (consume, "messaging.system", "rabbitmq"),
        (
            consume,
            "messaging.consumer.group.name",
            "conversations.inbound",
        ),
        (resolve, "rpc.system", "grpc"),
        (resolve, "rpc.service", "ism.contacts.v1.ContactService"),
        (resolve, "rpc.method", "ResolveContact"),
        (resolve, "rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(
            attribute(span, key).as_deref(),
            Some(value),
            "{key} of {}",
            span.name
        );
    }
    assert!(
        ancestry(&trace, resolve)
            .iter()
            .any(|s| s.span_id == consume.span_id),
        "the contacts span descends from the consumer span: {trace:#?}"
    );
    // Every log line written inside a span (a request, an event's handling) names its
    // trace and span, and the message's lines name this message's trace.
    let log = platform.log();
    let inside: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line.get("span").is_some())
        .collect();
    assert!(!inside.is_empty(), "lines inside spans: {log}");
    for line in &inside {
        let id = |key: &str, length: usize| {
            line[key]
                .as_str()
                .is_some_and(|id| id.len() == length && id.chars().all(|c| c.is_ascii_hexdigit()))
        };
        assert!(id("trace_id", 32) && id("span_id", 16), "{line}");
    }
    let stored = inside
        .iter()
        .find(|line| line["fields"]["message"] == "inbound message stored")
        .expect("the stored message's log line");
    assert_eq!(
        stored["trace_id"].as_str(),
        Some(hex::encode(&consume.trace_id).as_str())
    );

    // The reply: SendMessage → gateway.delivery → delivery.attempt → POST to the
    // provider → conversations.status, one trace however the hops are batched.
    let api = platform.api(&tenant).await;
    let conversation = api
        .conversations
        .clone()
        .list_conversations(api.authed(conv::ListConversationsRequest::default()))
        .await
        .expect("conversations listed")
        .into_inner()
        .conversations
        .pop()
        .expect("the message's conversation");
    api.send_message(conv::SendMessageRequest {
        conversation_id: conversation.id,
        content: Some(MessageContent {
            kind: Some(Kind::Text(Text {
                body: "traced reply".into(),
            })),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let status_consumer = |s: &Span| {
        s.name == "event.consume"
            && attribute(s, "consumer").as_deref() == Some("conversations.status")
    };
    let trace = collector
        .trace(
            SEND,
            "the reply's trace reaching its status update",
            status_consumer,
        )
        .await;
    let send = named(&trace, SEND);
    let status = trace
        .iter()
        .find(|s| status_consumer(s))
        .expect("found above");
    let line: Vec<(&str, Option<String>)> = ancestry(&trace, status)
        .into_iter()
        .rev()
        .map(|s| (s.name.as_str(), attribute(s, "consumer")))
        .collect();
    println!("the reply's trace, root first: {line:#?}");
    assert_eq!(
        line[0].0, SEND,
        "the status update descends from SendMessage"
    );
    let attempt = line_span(&trace, status, "delivery.attempt");
    let post = named(&trace, "POST");
    assert_eq!(
        post.parent_span_id, attempt.span_id,
        "the provider call is the attempt's"
    );
    assert!(
        line.iter().any(|(name, consumer)| *name == "event.consume"
            && consumer.as_deref() == Some("gateway.delivery")),
        "the queue hop into the gateway: {line:#?}"
    );
    assert_eq!(post.kind, SpanKind::Client as i32);
    assert_eq!(status.kind, SpanKind::Consumer as i32);
    assert_eq!(send.kind, SpanKind::Server as i32);
    assert_eq!(
        attribute(post, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attribute(post, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(post, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    // The provider's request carries the trace, as `traceparent`
    // (version-trace id-span id-flags), naming the provider call's own span.
    let received = receiver
        .received()
        .into_iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("traced reply"))
        .expect("the reply reached the provider");
    let traceparent = received
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("a traceparent header");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            hex::encode(&post.trace_id),
            hex::encode(&post.span_id)
        )
    );
}
