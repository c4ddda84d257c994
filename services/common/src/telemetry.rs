//! Tracing set-up, request ids and traces across services (OpenTelemetry).

// Traces are exported only when `OTLP_ENDPOINT` or `OTLP_TRACES_ENDPOINT` is set: standard
// OpenTelemetry variables, read by the exporter itself along with `OTEL_EXPORTER_OTLP_HEADERS`
// and `OTEL_EXPORTER_OTLP_TIMEOUT`; the SDK reads the sampler (`env::TRACES_SAMPLER`, default
// parent-based, always on).
use souk_contract::env::{self, OTEL_SERVICE_NAME, OTLP_ENDPOINT, OTLP_TRACES_ENDPOINT};
use std::io::IsTerminal;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::sync::{Arc, OnceLock};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which logs are written when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

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
/// on their own so that quiet logs still leave whole traces, and each JSON line written inside
/// a span carries its `trace_id` and `span_id`.
pub fn init_logs_and_traces(default_filter: &str, tracer: Option<SdkTracer>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stdout().is_terminal();
    let format = LogFormat::choose(std::env::var(env::LOG_FORMAT).ok().as_deref(), terminal);
    // Colours only for a person at a terminal, never into a file or a log collector.
    let _ = dispatch(filter, format, terminal, tracer, std::io::stdout).try_init();
}

/// The subscriber `init_logs_and_traces` installs, writing its log lines to `writer`.
fn dispatch<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    tracer: Option<SdkTracer>,
    writer: W,
) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(writer);
    // Set once the dispatch exists: the trace ids are read through it.
    let this = Arc::new(OnceLock::new());
    let logs = match format {
        // Without traces there is no id to add, and nothing is looked up per line.
        LogFormat::Json if tracer.is_some() => logs
            .json()
            .event_format(WithTraceIds {
                json: tracing_subscriber::fmt::format().json().with_target(false),
                dispatch: this.clone(),
            })
            .boxed(),
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Text => logs.with_ansi(ansi).boxed(),
    };
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(logs.with_filter(filter))
            .with(traces),
    );
    let _ = this.set(dispatch.downgrade());
    dispatch
}

/// JSON log lines that also name the trace and span they were written in (the innermost span
/// that is part of a trace), so that logs and traces join.
struct WithTraceIds<E> {
    json: E,
    /// The subscriber the spans live in. Not `dispatcher::get_default`: inside an event that
    /// answers no dispatcher when a scoped one is set (as in tests).
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N, E> FormatEvent<S, N> for WithTraceIds<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = self.trace_ids(event) else {
            return self.json.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.json.format_event(ctx, Writer::new(&mut line), event)?;
        // One JSON object and its newline: the ids go in before the closing brace.
        match line.strip_suffix("}\n") {
            Some(object) => writeln!(
                writer,
                "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
            ),
            None => writer.write_str(&line),
        }
    }
}

impl<E> WithTraceIds<E> {
    /// The ids of the innermost span around `event` that belongs to a trace; spans are looked
    /// up in the registry itself, so a span the log filter leaves out still counts.
    fn trace_ids(&self, event: &Event<'_>) -> Option<(TraceId, SpanId)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let registry = dispatch.downcast_ref::<Registry>()?;
        let leaf = if event.is_contextual() {
            registry.current_span().id().cloned()
        } else {
            event.parent().cloned()
        }?;
        let span = registry.span(&leaf)?;
        span.scope().find_map(|span| {
            let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
            let otel_span = context.span();
            let ids = otel_span.span_context();
            ids.is_valid().then(|| (ids.trace_id(), ids.span_id()))
        })
    }
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

/// A fresh request id: a UUID v7, unique and sortable by time.
pub fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use serde_json::Value;
    use tower::ServiceExt;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::MakeWriter;

    use super::{LogFormat, dispatch};

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        }
    }

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

    /// The JSON lines a service writes while serving one request with a `traceparent`,
    /// through the layers every service wears.
    async fn log_of_a_traced_request(traced: bool) -> Vec<Value> {
        let captured = Captured::default();
        let provider = SdkTracerProvider::builder().build();
        let tracer = traced.then(|| provider.tracer("test"));
        let dispatch = dispatch(
            EnvFilter::new("info"),
            LogFormat::Json,
            false,
            tracer,
            captured.clone(),
        );
        // The test runs on one thread: the request is served under this subscriber.
        let _default = tracing::dispatcher::set_default(&dispatch);
        let routes = Router::new().route(
            "/hello",
            get(|| async {
                tracing::info!("saying hello");
                "hello"
            }),
        );
        let app = crate::server::layers("test", routes, Vec::new());
        let request = Request::get("/hello")
            .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"))
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        captured.lines()
    }

    /// The handler's log line among a request's.
    fn hello_line(lines: Vec<serde_json::Value>) -> serde_json::Value {
        lines
            .iter()
            .find(|line| line["fields"]["message"] == "saying hello")
            .unwrap_or_else(|| panic!("no hello in {lines:#?}"))
            .clone()
    }

    #[tokio::test]
    async fn a_traced_request_logs_its_trace_id_and_span_id() {
        let hello = hello_line(log_of_a_traced_request(true).await);
        assert_eq!(hello["trace_id"], TRACE_ID, "{hello}");
        // The request span's own id: a child of the caller's span, in the same trace.
        let span_id = hello["span_id"].as_str().unwrap();
        assert!(
            span_id.len() == 16 && span_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{hello}"
        );
        assert_ne!(span_id, CLIENT_SPAN_ID);
        assert_ne!(span_id, "0000000000000000");
        // Everything else is as without traces.
        assert_eq!(hello["span"]["name"], "request", "{hello}");
        assert_eq!(hello["level"], "INFO");
    }

    #[tokio::test]
    async fn without_traces_log_lines_carry_no_ids() {
        let hello = hello_line(log_of_a_traced_request(false).await);
        assert!(hello.get("trace_id").is_none(), "{hello}");
        assert!(hello.get("span_id").is_none(), "{hello}");
        assert_eq!(hello["span"]["name"], "request", "{hello}");
    }

    #[test]
    fn json_unless_a_terminal_or_asked_otherwise() {
        assert_eq!(LogFormat::choose(None, false), LogFormat::Json);
        assert_eq!(LogFormat::choose(None, true), LogFormat::Text);
        assert_eq!(LogFormat::choose(Some("json"), true), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("text"), false), LogFormat::Text);
        assert_eq!(LogFormat::choose(Some("other"), false), LogFormat::Json);
    }
}
