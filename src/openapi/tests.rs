//! The generated OpenAPI document checked for itself and against the gateway's router, so
//! that neither can drift from the other silently: every operation is named, tagged and
//! summarised, every prefix `routes::resolve` knows is documented, every documented `/api/v1`
//! path resolves with the access its `security` claims, every operation names its errors as
//! problem+json, every `$ref` resolves, and `Problem.code` is the contract's `ErrorCode`.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use serde_json::Value;

use souk_contract::openapi::{METHODS, under};

use souk_gateway::routes::{self, API_PREFIX, Access, Route};

/// The gateway's own routes (see `souk_gateway::app` and `server::layers`): served, never
/// proxied. (`/docs` is a page, not an operation.)
const OWN_PATHS: [&str; 5] = [
    "/.well-known/jwks.json",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
];

fn doc() -> Value {
    serde_json::to_value(super::document()).expect("the document is JSON")
}

/// What the gateway serves is what the code generates, to the byte.
#[test]
fn the_served_document_is_the_generated_one() {
    assert!(
        super::DOCUMENT == super::document_json(),
        "src/openapi.json is stale: run `cargo run -- openapi > src/openapi.json`"
    );
}

/// `(path, method, operation)` for every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                ops.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    ops
}

/// A concrete request path for a templated one: `{id}` becomes a UUID.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "0193a1f2-7c4e-7d3a-9b1e-2f5c8d9e0a1b"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_method(name: &str) -> Method {
    Method::from_bytes(name.to_ascii_uppercase().as_bytes()).expect("a known method")
}

/// Follows a local `$ref` (JSON pointer), if any.
fn deref<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').expect("a local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => node,
    }
}

/// Whether a schema is the Problem schema or extends it through `allOf`.
fn is_problem_schema(doc: &Value, schema: &Value) -> bool {
    if schema.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/Problem") {
        return true;
    }
    let schema = deref(doc, schema);
    schema["allOf"]
        .as_array()
        .is_some_and(|parts| parts.iter().any(|p| is_problem_schema(doc, p)))
}

/// The path segments `resolve` matches on, read from its source: every lower-case string
/// literal in the function body. A prefix added to the router is therefore probed here too.
fn router_segments() -> BTreeSet<String> {
    let source = include_str!("../../services/gateway/src/routes.rs");
    let start = source
        .find("pub fn resolve")
        .expect("routes::resolve exists");
    let body = &source[start..];
    let body = &body[..body.find("#[cfg(test)]").unwrap_or(body.len())];
    body.split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| {
            !lit.is_empty()
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
        .map(str::to_owned)
        .collect()
}

const PROBE_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn resolve_all(path: &str) -> Vec<Option<Route>> {
    PROBE_METHODS
        .iter()
        .map(|m| routes::resolve(m, path))
        .collect()
}

/// Public prefixes the router knows: `/api/v1/<a>` when it resolves, and `/api/v1/<a>/<b>`
/// when it resolves differently from `/api/v1/<a>` (another service or access, or `<a>` alone
/// is no route), for every pair of segments the router names.
fn router_prefixes() -> BTreeSet<String> {
    let segments = router_segments();
    let mut prefixes = BTreeSet::new();
    for a in &segments {
        let one = format!("{API_PREFIX}{a}");
        let first = resolve_all(&one);
        if first.iter().any(Option::is_some) {
            prefixes.insert(one.clone());
        }
        for b in &segments {
            let two = format!("{one}/{b}");
            let second = resolve_all(&two);
            if second.iter().any(Option::is_some) && second != first {
                prefixes.insert(two);
            }
        }
    }
    prefixes
}

#[test]
fn is_openapi_3_1_served_from_the_root() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().expect("a tag has a name"))
        .collect();
    let mut seen = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
            .to_owned();
        assert!(seen.insert(id.clone()), "duplicate operationId {id}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        let op_tags = op["tags"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(
            op_tags.len() == 1 && op_tags[0].as_str().is_some_and(|t| tags.contains(t)),
            "{method} {path} is not in exactly one of the document's tags: {op_tags:?}"
        );
        assert!(
            op["security"].is_array(),
            "{method} {path} has no explicit security"
        );
    }
}

#[test]
fn every_router_prefix_is_documented() {
    let doc = doc();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let prefixes = router_prefixes();
    for expected in [
        "/api/v1/products",
        "/api/v1/admin/users",
        "/api/v1/auth/login",
    ] {
        assert!(prefixes.contains(expected), "probe misses {expected}");
    }
    for prefix in &prefixes {
        assert!(
            paths.iter().any(|p| under(p, prefix)),
            "the router serves {prefix} but the document has no path under it"
        );
    }
}

#[test]
fn every_documented_path_resolves_with_the_documented_access() {
    let doc = doc();
    let mut own = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        if !path.starts_with(API_PREFIX) {
            assert!(
                OWN_PATHS.contains(&path.as_str()),
                "{path} is neither under {API_PREFIX} nor served by the gateway itself"
            );
            assert!(routes::resolve(&Method::GET, &path).is_none());
            own.insert(path);
            continue;
        }
        let route = routes::resolve(&parse_method(&method), &concrete(&path))
            .unwrap_or_else(|| panic!("{method} {path} is documented but the router rejects it"));
        let security = op["security"].as_array().expect("explicit security");
        let anonymous = security.is_empty()
            || security
                .iter()
                .any(|req| req.as_object().is_some_and(|o| o.is_empty()));
        match route.access {
            Access::Public => assert!(
                anonymous,
                "{method} {path} is public at the gateway but documented as needing a token"
            ),
            // A token; the services check the admin role (`AdminUser`), documented as the
            // requirement's role, with the 403 that comes with it.
            Access::User => {
                let user = serde_json::json!([{"bearer": []}]);
                let admin = serde_json::json!([{"bearer": ["admin"]}]);
                assert!(
                    op["security"] == user || op["security"] == admin,
                    "{method} {path} needs a token at the gateway; document `bearer` only \
                     (with the role `admin` where only admins may call it)"
                );
                assert_eq!(
                    op["security"] == admin,
                    op["responses"].get("403").is_some(),
                    "{method} {path}: 403 is for admin operations"
                );
            }
        }
    }
    assert_eq!(own, OWN_PATHS.iter().map(|p| p.to_string()).collect());
}

#[test]
fn every_api_operation_documents_problem_errors() {
    let doc = doc();
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        let mut problem_4xx = false;
        for (status, response) in responses {
            let response = deref(&doc, response);
            assert!(
                response["headers"]["x-request-id"].is_object(),
                "{method} {path} {status} does not document x-request-id"
            );
            if status.starts_with('4')
                && let Some(schema) = response.pointer("/content/application~1problem+json/schema")
            {
                assert!(
                    is_problem_schema(&doc, schema),
                    "{method} {path} {status}: problem+json that is not a Problem"
                );
                problem_4xx = true;
            }
        }
        if !path.starts_with(API_PREFIX) {
            continue; // the gateway's own endpoints answer no 4xx
        }
        assert!(
            problem_4xx,
            "{method} {path} has no 4xx response with the Problem schema"
        );
        let limited = deref(&doc, &op["responses"]["429"]);
        assert!(
            limited["headers"]["Retry-After"].is_object(),
            "{method} {path}: 429 without Retry-After"
        );
    }
}

#[test]
fn every_ref_resolves() {
    let doc = doc();
    let mut refs: BTreeMap<String, usize> = BTreeMap::new();
    let mut stack = vec![&doc];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    *refs.entry(r.to_owned()).or_default() += 1;
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(!refs.is_empty());
    for r in refs.keys() {
        let pointer = r
            .strip_prefix("#/components/")
            .unwrap_or_else(|| panic!("{r} does not point into components"));
        assert!(
            doc["components"].pointer(&format!("/{pointer}")).is_some(),
            "{r} points to no component"
        );
    }
    for name in [
        "Problem",
        "ValidationProblem",
        "User",
        "ShippingAddress",
        "TokenPair",
        "Product",
        "Category",
        "Cart",
        "CartLine",
        "Order",
        "OrderItem",
        "ProductPage",
        "OrderPage",
        "UserPage",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "schema {name} missing"
        );
    }
}

/// The query extractor answers 400 `malformed_request` to a repeated or unparsable query
/// parameter, so every operation that takes one must document that 400.
#[test]
fn every_operation_with_query_parameters_documents_400() {
    let doc = doc();
    let mut missing = Vec::new();
    for (path, method, op) in operations(&doc) {
        let takes_query = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| deref(&doc, p)["in"] == "query");
        if takes_query && op["responses"].get("400").is_none() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(missing.is_empty(), "no 400 documented: {missing:?}");
}

/// The document's `Problem.code` enum is souk-contract's `ErrorCode`, no more and no less, and
/// every example problem in it names one of those codes.
#[test]
fn problem_codes_are_the_contracts_error_codes() {
    use souk_contract::ErrorCode;

    let doc = doc();
    let documented: Vec<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("Problem.code has an enum")
            .iter()
            .map(|c| c.as_str().expect("a code is a string"))
            .collect();
    let documented_set: BTreeSet<&str> = documented.iter().copied().collect();
    assert_eq!(
        documented.len(),
        documented_set.len(),
        "a code listed twice"
    );
    let declared: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let undocumented: Vec<_> = declared.difference(&documented_set).collect();
    let unknown: Vec<_> = documented_set.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "ErrorCode not in the document: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "the document's codes ErrorCode lacks: {unknown:?}"
    );

    let mut example_codes = Vec::new();
    collect_example_codes(&doc, &mut example_codes);
    assert!(
        !example_codes.is_empty(),
        "the document shows no problem example"
    );
    for code in example_codes {
        assert!(
            ErrorCode::from_wire(&code).is_some(),
            "example with unknown code {code}"
        );
    }
}

/// The `code` of every problem example (an object with `type`, `status` and `code`).
fn collect_example_codes(node: &Value, codes: &mut Vec<String>) {
    match node {
        Value::Object(members) => {
            if let (Some(Value::String(code)), true, true) = (
                members.get("code"),
                members.contains_key("type"),
                members.contains_key("status"),
            ) {
                codes.push(code.clone());
            }
            members
                .values()
                .for_each(|child| collect_example_codes(child, codes));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|child| collect_example_codes(child, codes)),
        _ => {}
    }
}
