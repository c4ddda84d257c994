//! Per-endpoint summary from goose's metrics: requests/s, p50/p95/p99 and errors.
//!
//! Goose records response times in whole milliseconds (rounded coarser above 100 ms), so the
//! percentiles here have millisecond resolution; `scripts/bench` uses wrk where microseconds
//! matter.

use std::collections::BTreeMap;

use goose::metrics::GooseMetrics;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub requests: usize,
    pub errors: usize,
    pub rps: f64,
    pub p50_ms: usize,
    pub p95_ms: usize,
    pub p99_ms: usize,
    pub max_ms: usize,
    pub statuses: BTreeMap<u16, usize>,
}

/// The smallest time with at least `q` of the requests at or below it.
fn percentile(times: &BTreeMap<usize, usize>, count: usize, q: f64) -> usize {
    let wanted = ((count as f64) * q).ceil().max(1.0) as usize;
    let mut seen = 0;
    for (&ms, &n) in times {
        seen += n;
        if seen >= wanted {
            return ms;
        }
    }
    times.keys().next_back().copied().unwrap_or(0)
}

pub fn summarize(metrics: &GooseMetrics) -> Vec<Endpoint> {
    let secs = metrics.duration.max(1) as f64;
    let mut out: Vec<Endpoint> = metrics
        .requests
        .values()
        .map(|r| {
            let count = r.raw_data.counter;
            Endpoint {
                name: r.path.clone(),
                requests: r.success_count + r.fail_count,
                errors: r.fail_count,
                rps: (r.success_count + r.fail_count) as f64 / secs,
                p50_ms: percentile(&r.raw_data.times, count, 0.50),
                p95_ms: percentile(&r.raw_data.times, count, 0.95),
                p99_ms: percentile(&r.raw_data.times, count, 0.99),
                max_ms: r.raw_data.maximum_time,
                statuses: r.status_code_counts.iter().map(|(k, v)| (*k, *v)).collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn table(endpoints: &[Endpoint], secs: usize) -> String {
    let mut s = format!(
        "\nsouk-load: {secs} s measured (after all users started)\n\n{:<36} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}  statuses\n",
        "endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
    );
    for e in endpoints {
        let statuses: Vec<String> = e.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        s += &format!(
            "{:<36} {:>9} {:>9.1} {:>7} {:>7} {:>7} {:>7} {:>7}  {}\n",
            e.name,
            e.requests,
            e.rps,
            e.p50_ms,
            e.p95_ms,
            e.p99_ms,
            e.max_ms,
            e.errors,
            statuses.join(" ")
        );
    }
    let total: usize = endpoints.iter().map(|e| e.requests).sum();
    let errors: usize = endpoints.iter().map(|e| e.errors).sum();
    s += &format!(
        "{:<36} {:>9} {:>9.1} {:>39}\n",
        "all",
        total,
        total as f64 / secs.max(1) as f64,
        errors
    );
    s
}
