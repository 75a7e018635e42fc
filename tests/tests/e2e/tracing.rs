//! One inbound message is one trace: a local OTLP collector receives the spans of the
//! real binary and finds the gateway's webhook span, the queue hop into conversations, and
//! the contacts call, all under one trace id.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ism_e2e::{Platform, Receiver, eventually};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
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

#[tokio::test]
async fn one_inbound_message_is_one_trace_across_gateway_queue_conversations_and_contacts() {
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

    let trace = eventually(Duration::from_secs(30), "a trace reaching contacts", || {
        let spans = collector.spans.lock().unwrap().clone();
        async move {
            let webhook = spans.iter().find(|s| s.name == WEBHOOK)?;
            let trace: Vec<Span> = spans
                .iter()
                .filter(|s| s.trace_id == webhook.trace_id)
                .cloned()
                .collect();
            trace.iter().any(|s| s.name == RESOLVE).then_some(trace)
        }
    })
    .await;

    let named = |name: &str| {
        trace
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {trace:#?}"))
    };
    let webhook = named(WEBHOOK);
    let consume = trace
        .iter()
        .find(|s| {
            s.name == "event.consume"
                && attribute(s, "consumer").as_deref() == Some("conversations.inbound")
        })
        .expect("the conversations consumer span is in the webhook's trace");
    let resolve = named(RESOLVE);
    assert_eq!(
        consume.parent_span_id, webhook.span_id,
        "the queue hop continues the webhook's span"
    );
    assert_eq!(
        attribute(resolve, "ism.service").as_deref(),
        Some("contacts")
    );
    // Kinds and attributes as OpenTelemetry's conventions for HTTP, RPC and messaging say.
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
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
    let mut ancestor = resolve.parent_span_id.clone();
    let mut hops = 0;
    while ancestor != consume.span_id {
        let parent = trace
            .iter()
            .find(|s| s.span_id == ancestor)
            .expect("the contacts span descends from the consumer span");
        ancestor = parent.parent_span_id.clone();
        hops += 1;
        assert!(
            hops < 10,
            "no path from the contacts span to the consumer span"
        );
    }
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
}
