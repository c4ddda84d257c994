//! Spans of the traces a test starts, kept in memory: every service runs in the test's process,
//! so one exporter sees them all, while traces still cross services only in `traceparent`
//! headers.
//!
//! The subscriber is process-wide and tests run in parallel, so this exporter is installed
//! once, for every test. Its sampler keeps only traces whose `traceparent` a test sent with
//! the sampled flag ([`Trace::traceparent`]); every other request starts an unsampled trace,
//! which costs no memory here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};

/// Installs the global subscriber (once): logs filtered by `log_filter` unless `RUST_LOG` is
/// set, and the in-memory exporter.
pub(crate) fn init(log_filter: &str) {
    let collected = collected();
    let provider = provider(collected.clone());
    souk_common::telemetry::init_logs_and_traces(log_filter, Some(provider.tracer("souk-test")));
}

fn provider(collected: Collected) -> &'static SdkTracerProvider {
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        SdkTracerProvider::builder()
            // Exported as each span ends: a test reads them once the answer is in.
            .with_simple_exporter(collected)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .build()
    })
}

fn collected() -> &'static Collected {
    static COLLECTED: OnceLock<Collected> = OnceLock::new();
    COLLECTED.get_or_init(Collected::default)
}

/// The finished spans of sampled traces.
#[derive(Clone, Debug, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(batch);
        std::future::ready(Ok(()))
    }
}

/// A trace a test starts: its id, and the `traceparent` that makes a request part of it.
#[derive(Clone, Debug)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The span id of the test itself, the client: the parent of the first server's span.
    pub client_span_id: SpanId,
}

impl Trace {
    /// A new trace with random ids.
    pub fn start() -> Self {
        Self {
            trace_id: TraceId::from_bytes(*uuid::Uuid::new_v4().as_bytes()),
            client_span_id: SpanId::from_bytes(
                uuid::Uuid::new_v4().as_bytes()[..8]
                    .try_into()
                    .expect("8 of 16 bytes"),
            ),
        }
    }

    /// The W3C `traceparent` header value: version 00, this trace, the client's span, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.client_span_id)
    }

    /// The spans of this trace that have ended so far, in the order they ended.
    pub fn spans(&self) -> Vec<FinishedSpan> {
        collected()
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|span| span.span_context.trace_id() == self.trace_id)
            .map(FinishedSpan::from)
            .collect()
    }
}

/// What a test reads of a span.
#[derive(Clone, Debug)]
pub struct FinishedSpan {
    pub name: String,
    pub span_id: SpanId,
    pub parent_span_id: SpanId,
    /// Its attributes (the span's fields), as text.
    pub attributes: BTreeMap<String, String>,
}

impl FinishedSpan {
    /// The `service` field of a server's request span: which service served it.
    pub fn service(&self) -> Option<&str> {
        self.attributes.get("service").map(String::as_str)
    }
}

impl From<&SpanData> for FinishedSpan {
    fn from(span: &SpanData) -> Self {
        Self {
            name: span.name.to_string(),
            span_id: span.span_context.span_id(),
            parent_span_id: span.parent_span_id,
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
        }
    }
}
