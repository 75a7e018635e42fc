//! One subscriber for the process: env filter, JSON (or pretty) logs, OpenTelemetry
//! spans exported over OTLP, and W3C trace context carried across gRPC and AMQP.
use std::collections::BTreeMap;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySettings};

/// Flushes pending spans when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("trace export shutdown: {e}");
        }
    }
}

/// Installs the global subscriber and propagator. `service_name` becomes the OTLP
/// resource's `service.name`.
pub fn init(settings: &TelemetrySettings, service_name: &str) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());

    anyhow::ensure!(
        (0.0..=1.0).contains(&settings.sampling_ratio),
        "telemetry.sampling_ratio: {} is not between 0 and 1",
        settings.sampling_ratio
    );
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler(settings.sampling_ratio))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        );
    if !settings.otlp_endpoint.is_empty() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.otlp_endpoint.clone())
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("ism"));

    let filter = EnvFilter::try_new(&settings.log_filter)
        .map_err(|e| anyhow::anyhow!("telemetry.log_filter: {e}"))?;
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("telemetry already initialised: {e}"))?;
    Ok(TelemetryGuard { provider })
}

/// Records `ratio` of new traces, and whatever the caller decided for traces it began.
fn sampler(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

/// One JSON object per log line: time, level, target, the event's fields, the fields of
/// every span it is inside (outer first, inner winning: `request_id`, `event.id`...), and
/// the OpenTelemetry `trace_id` and `span_id` of the innermost one, so that any line
/// written while handling a request or an event can be found from its trace and back.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = FieldMap::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("fields".into(), fields.0.into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut span = serde_json::Map::new();
            let mut innermost = None;
            for each in scope.from_root() {
                let extensions = each.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(serde_json::Value::Object(own)) =
                        serde_json::from_str::<serde_json::Value>(formatted)
                {
                    span.extend(own);
                }
                span.insert("name".into(), each.name().into());
                innermost = Some(each.id());
            }
            line.insert("span".into(), span.into());
            let ids = innermost.and_then(|id| {
                tracing::dispatcher::get_default(|dispatch| {
                    tracing_opentelemetry::get_otel_context(&id, dispatch)
                })
            });
            if let Some(cx) = ids {
                let context = cx.span().span_context().clone();
                if context.is_valid() {
                    line.insert("trace_id".into(), context.trace_id().to_string().into());
                    line.insert("span_id".into(), context.span_id().to_string().into());
                }
            }
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct FieldMap(serde_json::Map<String, serde_json::Value>);

impl Visit for FieldMap {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// Makes `cx` the parent of `span` and records its trace id on the span's `trace_id`
/// field, so every log line inside carries it.
pub fn adopt_parent(span: &tracing::Span, cx: Context) {
    let _ = span.set_parent(cx);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

/// The W3C trace context of the current span, as header pairs.
pub fn current_context_headers() -> BTreeMap<String, String> {
    let mut carrier = BTreeMap::new();
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MapCarrier(&mut carrier)));
    carrier
}

/// Sends `request` in a CLIENT span named by its method, as OpenTelemetry's HTTP
/// conventions name it, with the span's context in `traceparent`, so a receiver that
/// traces continues the caller's trace. Only the server's address is recorded of the
/// URL: providers put tokens in paths (Telegram's `/bot<token>/`).
pub async fn send_http(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let (client, request) = request.build_split();
    let mut request = request?;
    let span = tracing::info_span!(
        "http.client",
        otel.name = %request.method(),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        server.address = request.url().host_str().unwrap_or_default(),
        server.port = request.url().port_or_known_default(),
        http.response.status_code = tracing::field::Empty,
        error.r#type = tracing::field::Empty,
    );
    let cx = span.context();
    global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(request.headers_mut()));
    });
    let answer = client.execute(request).instrument(span.clone()).await;
    let error = match &answer {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            (status.is_client_error() || status.is_server_error())
                .then(|| status.as_str().to_owned())
        }
        Err(e) if e.is_timeout() => Some("timeout".to_owned()),
        Err(_) => Some("connect".to_owned()),
    };
    if let Some(error) = error {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", error);
    }
    answer
}

/// The remote context carried in `headers` (HTTP/gRPC).
pub fn context_from_http(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderCarrier(headers)))
}

/// The remote context carried in string pairs (AMQP headers, outbox rows).
pub fn context_from_map(map: &BTreeMap<String, String>) -> Context {
    let mut owned = map.clone();
    global::get_text_map_propagator(|p| p.extract(&MapCarrier(&mut owned)))
}

struct MapCarrier<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for MapCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderCarrier<'a>(&'a http::HeaderMap);

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};

    use super::*;

    fn decision(ratio: f64, parent: Option<bool>) -> SamplingDecision {
        let cx = match parent {
            None => Context::new(),
            Some(sampled) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(7u128),
                SpanId::from(9u64),
                if sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                true,
                TraceState::default(),
            )),
        };
        sampler(ratio)
            .should_sample(
                Some(&cx),
                TraceId::from(0x0123_4567_89ab_cdef_0123_4567_89ab_cdefu128),
                "call",
                &SpanKind::Server,
                &[],
                &[],
            )
            .decision
    }

    #[test]
    fn new_traces_are_sampled_by_ratio_and_callers_traces_by_the_caller() {
        assert_eq!(decision(1.0, None), SamplingDecision::RecordAndSample);
        assert_eq!(decision(0.0, None), SamplingDecision::Drop);
        assert_eq!(decision(0.0, Some(true)), SamplingDecision::RecordAndSample);
        assert_eq!(decision(1.0, Some(false)), SamplingDecision::Drop);
    }
}
