//! Traces across services: one checkout is one trace through all six services, carried from
//! service to service only by the W3C `traceparent` header (the services share this process
//! and its exporter, but each request span takes its parent from the header it received).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::json;
use souk_testkit::{FinishedSpan, Trace};

use crate::checkout::{product, shopper_with_cart};
use crate::helpers::App;
use souk_testkit::eventually;

const SERVICES: [&str; 6] = ["gateway", "user", "product", "cart", "order", "payment"];

/// What a trace looks like so far: the services whose request spans it holds, and the spans
/// whose parent is neither in it nor the client's span (a trace broken in two).
#[derive(Debug)]
struct Shape {
    served_by: BTreeSet<String>,
    orphans: Vec<String>,
    spans: Vec<FinishedSpan>,
}

fn shape(trace: &Trace) -> Shape {
    let spans = trace.spans();
    let ids: HashSet<_> = spans.iter().map(|s| s.span_id).collect();
    Shape {
        served_by: spans
            .iter()
            .filter(|s| s.name == "request")
            .filter_map(|s| s.service().map(str::to_owned))
            .collect(),
        orphans: spans
            .iter()
            .filter(|s| {
                s.parent_span_id != trace.client_span_id && !ids.contains(&s.parent_span_id)
            })
            .map(|s| format!("{} {:?}", s.name, s.attributes))
            .collect(),
        spans,
    }
}

#[tokio::test]
async fn one_checkout_is_one_trace_through_all_six_services() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 2500, 3).await;
    let me = shopper_with_cart(&app, &teapot, 1).await;

    // The test is the client that starts the trace (the gateway accepts a client's
    // `traceparent`, as W3C Trace Context says), so it knows which spans are this checkout's.
    let trace = Trace::start();
    let req = app
        .http
        .post(app.url("/api/v1/checkout"))
        .bearer_auth(&me.token)
        .header("idempotency-key", "traced-checkout")
        .header("traceparent", trace.traceparent())
        .json(&json!({"payment_method": "pm_card_visa"}));
    let res = app.send(req).await;
    assert_eq!(res.expect(201, None)["status"], "paid");

    // A request span ends as its answer has been sent: wait for the last ones to come in.
    // The checkout touches every service: the gateway forwards it to the order service, which
    // reads the shopper's profile (user), claims the cart (cart), reserves (product), charges
    // (payment), then commits the reservation and trims the cart.
    let all: BTreeSet<String> = SERVICES.iter().map(|s| s.to_string()).collect();
    let shape = eventually(
        "request spans of all six services, in one connected trace",
        Duration::from_secs(10),
        async || shape(&trace),
        |shape| shape.served_by == all && shape.orphans.is_empty(),
    )
    .await;

    // The gateway's request span is the only child of the client's span: the root of the
    // services' part of the trace.
    let roots: Vec<_> = shape
        .spans
        .iter()
        .filter(|s| s.parent_span_id == trace.client_span_id)
        .collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert_eq!(roots[0].name, "request");
    assert_eq!(roots[0].service(), Some("gateway"));

    // Each service's request span hangs under a call from another service (a client span), so
    // the parent came over the wire, in the `traceparent` of that call.
    let by_id = |id| shape.spans.iter().find(|s| s.span_id == id);
    for served in shape.spans.iter().filter(|s| s.name == "request") {
        let service = served.service().unwrap();
        if service == "gateway" {
            continue;
        }
        let caller = by_id(served.parent_span_id).unwrap();
        assert_eq!(
            caller.attributes.get("to").map(String::as_str),
            Some(service),
            "{service}'s request span is not the child of a call to it: {caller:#?}"
        );
    }

    // The order service's handler and the saga's steps are spans of the same trace.
    let names: BTreeSet<&str> = shape.spans.iter().map(|s| s.name.as_str()).collect();
    for step in [
        "checkout", "advance", "claim", "reserve", "charge", "complete",
    ] {
        assert!(names.contains(step), "no {step:?} span in {names:?}");
    }
}
