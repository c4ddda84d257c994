//! Tracing set-up, request ids and traces across services (OpenTelemetry).

use souk_contract::env;
use std::io::IsTerminal;

use axum::http::{HeaderMap, HeaderName, Request};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which logs are written when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Where spans are sent (OTLP over HTTP/protobuf, e.g. `http://otel-collector:4318`); traces
/// are exported only when this or [`OTLP_TRACES_ENDPOINT`] is set. Standard OpenTelemetry
/// variables, read by the exporter itself along with `OTEL_EXPORTER_OTLP_HEADERS` and
/// `OTEL_EXPORTER_OTLP_TIMEOUT`; the sampler is `OTEL_TRACES_SAMPLER` (default: parent-based,
/// always on).
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Like [`OTLP_ENDPOINT`], the full URL for traces (no `/v1/traces` appended).
pub const OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The exported `service.name` (default: the name `init` is given).
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// What becomes a span in a trace, whatever `RUST_LOG` says about logs: Souk's own spans and
/// events. The HTTP stacks are left out, the exporter's own among them (its requests would
/// otherwise be traced and exported in turn), and sqlx's statement events would bury the rest.
const TRACE_FILTER: &str = "info,sqlx=warn,hyper=off,hyper_util=off,h2=off,reqwest=off,\
                            opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,\
                            opentelemetry_http=off";

/// What `init` set up. Dropping it sends the spans still queued (waiting at most a few
/// seconds for the collector), so it lives as long as the process serves.
#[must_use = "dropping it ends trace export"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot export traces: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber: logs as [`init_logs_and_traces`], and, when an OTLP endpoint
/// is set, an OpenTelemetry layer exporting spans in batches from a background thread, as
/// `service_name` unless `OTEL_SERVICE_NAME` names it. Without an endpoint there is no
/// exporter, no thread and no OpenTelemetry layer: traces cost nothing.
pub fn init(service_name: &str) -> Result<Telemetry, TelemetryError> {
    let configured = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if !configured(OTLP_ENDPOINT) && !configured(OTLP_TRACES_ENDPOINT) {
        init_logs_and_traces(DEFAULT_FILTER, None);
        return Ok(Telemetry { traces: None });
    }
    let provider = otlp_provider(service_name)?;
    init_logs_and_traces(DEFAULT_FILTER, Some(provider.tracer("souk")));
    Ok(Telemetry {
        traces: Some(provider),
    })
}

fn otlp_provider(service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    // The exporter's client is the workspace's reqwest, built without TLS: without this check
    // an https endpoint would only fail at each export, in a warning.
    for name in [OTLP_ENDPOINT, OTLP_TRACES_ENDPOINT] {
        if let Ok(url) = std::env::var(name)
            && url.trim_start().to_ascii_lowercase().starts_with("https:")
        {
            return Err(TelemetryError(format!(
                "{name}={url}: only plain http is supported; send to a collector beside the \
                 service or inside the cluster"
            )));
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    // The environment's detectors read OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only
    // without a name of its own is the service named here.
    let mut resource = Resource::builder();
    if std::env::var_os(OTEL_SERVICE_NAME).is_none_or(|v| v.is_empty()) {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs logs only, with `default_filter` when `RUST_LOG` is unset (tools, tests).
pub fn init_logs(default_filter: &str) {
    init_logs_and_traces(default_filter, None);
}

/// Installs the global subscriber once; later calls (tests, in-process services) do nothing.
/// Logs are JSON, one object per line, unless stdout is a terminal (see [`LogFormat::choose`]),
/// filtered by `RUST_LOG` (else `default_filter`). With `tracer`, spans also go to it, filtered
/// on their own so that quiet logs still leave whole traces.
pub fn init_logs_and_traces(default_filter: &str, tracer: Option<SdkTracer>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stdout().is_terminal();
    let format = LogFormat::choose(std::env::var(env::LOG_FORMAT).ok().as_deref(), terminal);
    let logs = tracing_subscriber::fmt::layer().with_target(false);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        // Colours only for a person at a terminal, never into a file or a log collector.
        LogFormat::Text => logs.with_ansi(terminal).boxed(),
    };
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init();
}

/// W3C Trace Context (`traceparent`, `tracestate`): what every service reads and writes.
fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// Makes the `traceparent` of an incoming request the parent of `span` (the request's span,
/// before it is entered). Without the header, or without traces, the span starts its own
/// trace (or none).
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = propagator().extract(&HeaderExtractor(headers));
    // Fails only when traces are off (no OpenTelemetry layer, or the span is filtered out):
    // nothing to link then.
    let _ = span.set_parent(parent);
}

/// Writes the current span's trace context into an outgoing request's headers, so the service
/// called continues this trace. Does nothing when traces are off or no span is current.
pub fn inject_trace(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    propagator().inject_context(&context, &mut HeaderInjector(headers));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `SOUK_LOG_FORMAT` (`json` or `text`) when set; otherwise text for a terminal and JSON
    /// for anything else (a container's stdout, a pipe), so pods log JSON by default.
    pub fn choose(setting: Option<&str>, stdout_is_terminal: bool) -> Self {
        match setting {
            Some("json") => Self::Json,
            Some("text") => Self::Text,
            _ if stdout_is_terminal => Self::Text,
            _ => Self::Json,
        }
    }
}

/// UUID v7 request ids: unique and sortable by time.
#[derive(Clone, Copy, Default)]
pub struct MakeRequestUuid;

impl MakeRequestId for MakeRequestUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::now_v7().to_string();
        Some(RequestId::new(id.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn json_unless_a_terminal_or_asked_otherwise() {
        assert_eq!(LogFormat::choose(None, false), LogFormat::Json);
        assert_eq!(LogFormat::choose(None, true), LogFormat::Text);
        assert_eq!(LogFormat::choose(Some("json"), true), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("text"), false), LogFormat::Text);
        assert_eq!(LogFormat::choose(Some("other"), false), LogFormat::Json);
    }
}
