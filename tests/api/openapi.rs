//! Every answer the gateway gives a test (`App::send`), checked against the public OpenAPI
//! document (`souk::openapi`, generated from the code): the operation is found by method and path template,
//! the status must be documented for it, the content type must be one documented for that
//! status, and a JSON body must match the documented schema. So no test can pass on an answer
//! the document does not describe, and the document cannot drift from the API.
//!
//! In scope is what the document describes: its paths, and every other path under `/api/v1`,
//! of which the document's conventions (`info.description`) say an unknown path is 404 and a
//! method a path does not support is 405, both `Problem`s, after the checks the gateway makes
//! on every `/api/v1` request (a token that is sent must be valid, the rate limit). Paths
//! outside both (the storefront's pages and assets, demo pictures) are not checked.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::Validator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_contract::openapi::METHODS;

/// The document the answers are checked against: the one generated from the code
/// (`souk::openapi`), which the gateway serves.
fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
        serde_json::to_value(souk::openapi::document()).expect("the document serialises")
    });
    &DOCUMENT
}

/// The public API's prefix: the document describes everything under it.
const API_PREFIX: &str = "/api/v1/";

/// Responses of any `/api/v1` request that is no documented operation, from the document's
/// conventions: an invalid token and the rate limit are checked before routing, then an
/// unknown path is 404 and an unsupported method 405 (`method_not_allowed`, a `Problem`).
fn conventions(undocumented: Undocumented) -> Value {
    let problem = json!({
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    });
    let mut responses = json!({
        "401": {"$ref": "#/components/responses/InvalidToken"},
        "429": {"$ref": "#/components/responses/TooManyRequests"},
    });
    match undocumented {
        Undocumented::Path => responses["404"] = json!({"$ref": "#/components/responses/NotFound"}),
        Undocumented::Method => responses["405"] = problem,
    }
    responses
}

#[derive(Debug, Clone, Copy)]
enum Undocumented {
    Path,
    Method,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(Contract::load);

/// Checks one answer of the gateway to `method path`; panics, naming what differs from the
/// document, when it does not conform.
#[track_caller]
pub fn check(method: &Method, path: &str, status: StatusCode, content_type: &str, body: &[u8]) {
    CONTRACT.check(method, path, status, content_type, body);
}

struct Template {
    /// As written in the document (`/api/v1/products/{id}`).
    path: String,
    /// `None` for a `{parameter}` segment.
    segments: Vec<Option<String>>,
}

impl Template {
    fn parse(path: &str) -> Template {
        let segments = path
            .split('/')
            .map(|seg| (!(seg.starts_with('{') && seg.ends_with('}'))).then(|| seg.to_owned()))
            .collect();
        Template {
            path: path.to_owned(),
            segments,
        }
    }

    /// How many literal segments matched, when `path` matches: the most literal match is the
    /// one meant (`/a/b` over `/a/{id}`).
    fn matches(&self, path: &str) -> Option<usize> {
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut literal = 0;
        for (want, got) in self.segments.iter().zip(segments) {
            match want {
                Some(want) if want == got => literal += 1,
                Some(_) => return None,
                None if got.is_empty() => return None,
                None => {}
            }
        }
        Some(literal)
    }
}

struct Contract {
    templates: Vec<Template>,
    /// Compiled once per schema (a JSON pointer into the document).
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// What the document says about one status of one request.
struct Expected {
    /// Media type and the pointer of its schema, if it has one.
    content: Vec<(String, Option<String>)>,
}

impl Contract {
    fn load() -> Contract {
        let templates = document()["paths"]
            .as_object()
            .expect("paths is an object")
            .keys()
            .map(|path| Template::parse(path))
            .collect();
        Contract {
            templates,
            validators: Mutex::new(HashMap::new()),
        }
    }

    #[track_caller]
    fn check(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) {
        let what = format!("{method} {path} answered {status}");
        let Some((responses, responses_pointer)) = self.responses(method, path) else {
            return;
        };
        let code = status.as_str();
        // An exact status, then its range (`4XX`), then `default` (OpenAPI 3.1 §4.8.16).
        let range = format!("{}XX", &code[..1]);
        let Some((key, response)) = [code, range.as_str(), "default"]
            .into_iter()
            .find_map(|key| responses.get(key).map(|r| (key, r)))
        else {
            panic!(
                "{what}, a status the OpenAPI document does not document for it ({responses_pointer}); body: {}",
                String::from_utf8_lossy(body)
            );
        };
        let expected = expected(response, &format!("{responses_pointer}/{key}"));
        if *method == Method::HEAD {
            return; // the answer to HEAD has the headers of GET's and no body
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if expected.content.is_empty() {
            assert!(
                body.is_empty(),
                "{what}, documented without a body, but sent {content_type:?}: {}",
                String::from_utf8_lossy(body)
            );
            return;
        }
        let Some((_, schema)) = expected.content.iter().find(|(m, _)| *m == media) else {
            let documented: Vec<&str> = expected.content.iter().map(|(m, _)| m.as_str()).collect();
            panic!(
                "{what} with Content-Type {content_type:?}; the OpenAPI document has {documented:?}; body: {}",
                String::from_utf8_lossy(body)
            );
        };
        if !(media == "application/json" || media.ends_with("+json")) {
            return;
        }
        let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what} with {media} that is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        let Some(schema) = schema else {
            return;
        };
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| {
                format!(
                    "at {:?}: {} (schema {schema}{})",
                    e.instance_path().as_str(),
                    e,
                    e.schema_path().as_str()
                )
            })
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the OpenAPI document:\n  {}\nbody: {instance:#}",
            errors.join("\n  ")
        );
        if media == "application/problem+json" {
            assert_eq!(
                instance["status"],
                status.as_u16(),
                "{what}: a problem's `status` is the answer's; body: {instance:#}"
            );
        }
    }

    /// The documented responses to `method path`, with where they are in the document; None
    /// when the path is outside the document.
    fn responses(&self, method: &Method, path: &str) -> Option<(Value, String)> {
        let doc = document();
        let template = self
            .templates
            .iter()
            .filter_map(|t| t.matches(path).map(|literal| (literal, t)))
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, t)| t);
        let Some(template) = template else {
            return path.starts_with(API_PREFIX).then(|| {
                (
                    conventions(Undocumented::Path),
                    "the conventions for unknown paths".to_owned(),
                )
            });
        };
        let item_pointer = format!("/paths/{}", escape(&template.path));
        let item = &doc["paths"][&template.path];
        let name = method.as_str().to_ascii_lowercase();
        // HEAD is answered wherever GET is (RFC 9110 §9.3.2).
        let documented = [name.as_str(), "get"]
            .into_iter()
            .take(if *method == Method::HEAD { 2 } else { 1 })
            .find(|m| METHODS.contains(m) && item.get(*m).is_some());
        match documented {
            Some(m) => Some((
                item[m]["responses"].clone(),
                format!("{item_pointer}/{m}/responses"),
            )),
            None => Some((
                conventions(Undocumented::Method),
                format!(
                    "the conventions for a method {} does not document",
                    template.path
                ),
            )),
        }
    }

    fn validator(&self, schema: &str) -> Arc<Validator> {
        let mut validators = self.validators.lock().unwrap();
        validators
            .entry(schema.to_owned())
            .or_insert_with(|| Arc::new(compile(schema)))
            .clone()
    }
}

/// The response's content by media type, following a `$ref` to `components/responses`.
fn expected(response: &Value, pointer: &str) -> Expected {
    let (response, pointer) = match response.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference.strip_prefix('#').expect("a local $ref");
            let resolved = document()
                .pointer(target)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            (resolved, target.to_owned())
        }
        None => (response, pointer.to_owned()),
    };
    let content = response["content"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(media, spec)| {
            let schema = spec.get("schema").map(|schema| {
                match schema.get("$ref").and_then(Value::as_str) {
                    Some(reference) => reference.trim_start_matches('#').to_owned(),
                    // A conventions response is not in the document: its schemas are `$ref`s.
                    None => format!("{pointer}/content/{}/schema", escape(media)),
                }
            });
            (media.to_ascii_lowercase(), schema)
        })
        .collect();
    Expected { content }
}

/// A validator of the schema at `pointer`, with the whole document as its root so that its
/// `#/components/...` references resolve. Formats (uuid, date-time, email, uri) are checked.
fn compile(pointer: &str) -> Validator {
    let mut root = document().clone();
    root["$ref"] = Value::String(format!("#{pointer}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the schema at {pointer} compiles: {e}"))
}

/// A JSON pointer token (RFC 6901): `~` and `/` escaped.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[test]
fn paths_find_their_most_literal_template() {
    let contract = Contract::load();
    let (_, at) = contract
        .responses(
            &Method::GET,
            "/api/v1/products/0193a1f2-7c4e-7d3a-9b1e-2f5c8d9e0a1b",
        )
        .unwrap();
    assert_eq!(at, "/paths/~1api~1v1~1products~1{id}/get/responses");
    let (_, at) = contract
        .responses(&Method::PUT, "/api/v1/cart/promotion")
        .unwrap();
    assert_eq!(at, "/paths/~1api~1v1~1cart~1promotion/put/responses");
    let (responses, _) = contract.responses(&Method::GET, "/api/v1/nope").unwrap();
    assert!(responses.get("404").is_some());
    let (responses, _) = contract
        .responses(&Method::PUT, "/api/v1/products")
        .unwrap();
    assert!(responses.get("405").is_some());
    assert!(contract.responses(&Method::GET, "/assets/app.js").is_none());
    assert!(
        contract
            .responses(&Method::GET, "/api/v1/products/")
            .unwrap()
            .0
            .get("404")
            .is_some()
    );
}

#[test]
#[should_panic(expected = "does not match the OpenAPI document")]
fn a_body_that_breaks_the_schema_fails() {
    let body = json!({"items": [], "next_cursor": 7}).to_string();
    check(
        &Method::GET,
        "/api/v1/products",
        StatusCode::OK,
        "application/json",
        body.as_bytes(),
    );
}

#[test]
#[should_panic(expected = "a status the OpenAPI document does not document")]
fn an_undocumented_status_fails() {
    check(
        &Method::GET,
        "/api/v1/products",
        StatusCode::IM_A_TEAPOT,
        "application/problem+json",
        b"{}",
    );
}

#[test]
fn a_documented_answer_passes() {
    let body = json!({"items": [], "next_cursor": null}).to_string();
    check(
        &Method::GET,
        "/api/v1/products",
        StatusCode::OK,
        "application/json",
        body.as_bytes(),
    );
    let problem = json!({
        "type": "https://souk.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "no such endpoint",
        "code": "not_found",
    })
    .to_string();
    check(
        &Method::GET,
        "/api/v1/nope",
        StatusCode::NOT_FOUND,
        "application/problem+json",
        problem.as_bytes(),
    );
}
