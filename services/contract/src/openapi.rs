//! The public API's contract as a document: the OpenAPI 3.1 description of `/api/v1` that the
//! gateway serves at `/openapi.json`. It is the one document: the services that serve their
//! own `/openapi.json` (product, cart) serve their part of it (`subset`), and the API tests
//! check every answer of the gateway against it.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value};

/// A string schema that allows one value (JSON Schema `const`), for a `schema_with`: utoipa's
/// derive has no `const`, and `const` itself is not an OpenAPI extension, so it is set as a
/// raw member of the schema.
pub fn const_string(value: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .extensions(Some(Extensions::from_iter([("const", value)])))
        .build()
}

/// The whole public API, as JSON text.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The keys of a path item that are operations (OpenAPI 3.1 §4.8.9).
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

static PARSED: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON"));

/// `DOCUMENT`, parsed once.
pub fn document() -> &'static Value {
    &PARSED
}

/// Whether `path` is `prefix` or lies under it, by whole segments (`/api/v1/products/{id}` is
/// under `/api/v1/products`, `/api/v1/productsX` is not).
pub fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The document cut down to the paths under `prefixes` (by whole segments): those path items,
/// the components they reference (directly or through other components), the security
/// schemes and tags their operations name, and everything else (`openapi`, `info`,
/// `servers`) as it is, with the prefixes added to the title.
pub fn subset(prefixes: &[&str]) -> Value {
    // Parsed here rather than through `document()`, whose parse stays for the life of the
    // process: a service serving its part keeps only that part's bytes.
    let parsed: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON");
    let doc = &parsed;
    let paths: Map<String, Value> = doc["paths"]
        .as_object()
        .expect("paths is an object")
        .iter()
        .filter(|(path, _)| prefixes.iter().any(|prefix| under(path, prefix)))
        .map(|(path, item)| (path.clone(), item.clone()))
        .collect();

    // Components reachable from the paths: `#/components/<kind>/<name>`, followed to a fixed
    // point since components reference each other.
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    let mut pending: Vec<&Value> = paths.values().collect();
    while let Some(node) = pending.pop() {
        for reference in local_refs(node) {
            let Some((kind, name)) = reference
                .strip_prefix("#/components/")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            if wanted.insert((kind.to_owned(), name.to_owned()))
                && let Some(component) = doc["components"][kind].get(name)
            {
                pending.push(component);
            }
        }
    }
    let operations = || {
        paths.values().flat_map(|item| {
            METHODS
                .iter()
                .filter_map(|method| item.get(*method))
                .collect::<Vec<_>>()
        })
    };
    for operation in operations() {
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().into_iter().flat_map(Map::keys) {
                wanted.insert(("securitySchemes".to_owned(), scheme.clone()));
            }
        }
    }
    let tags: BTreeSet<String> = operations()
        .flat_map(|operation| operation["tags"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();

    let mut components = Map::new();
    for (kind, name) in &wanted {
        if let Some(component) = doc["components"][kind.as_str()].get(name) {
            components
                .entry(kind.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("a components section is an object")
                .insert(name.clone(), component.clone());
        }
    }

    let mut part = doc.clone();
    let title = format!(
        "{} (the part under {})",
        doc["info"]["title"].as_str().unwrap_or("Souk public API"),
        prefixes.join(", ")
    );
    part["info"]["title"] = Value::String(title);
    part["paths"] = Value::Object(paths);
    part["components"] = Value::Object(components);
    if let Some(all) = doc["tags"].as_array() {
        part["tags"] = Value::Array(
            all.iter()
                .filter(|tag| tag["name"].as_str().is_some_and(|name| tags.contains(name)))
                .cloned()
                .collect(),
        );
    }
    part
}

/// Every `$ref` value within `node`.
fn local_refs(node: &Value) -> Vec<&str> {
    let mut refs = Vec::new();
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    refs.push(reference);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component_names(doc: &Value, kind: &str) -> BTreeSet<String> {
        doc["components"][kind]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_subset_has_the_paths_under_its_prefixes_only() {
        let part = subset(&["/api/v1/cart"]);
        let paths: Vec<&String> = part["paths"].as_object().unwrap().keys().collect();
        assert!(!paths.is_empty());
        for path in &paths {
            assert!(under(path, "/api/v1/cart"), "{path}");
        }
        let all = document()["paths"].as_object().unwrap();
        let expected = all.keys().filter(|p| under(p, "/api/v1/cart")).count();
        assert_eq!(paths.len(), expected);
        assert!(
            part["info"]["title"]
                .as_str()
                .unwrap()
                .contains("/api/v1/cart")
        );
        assert_eq!(part["openapi"], document()["openapi"]);
    }

    #[test]
    fn a_subset_keeps_every_component_it_references_and_no_other() {
        let part = subset(&["/api/v1/products", "/api/v1/categories"]);
        for reference in local_refs(&part) {
            let pointer = reference.strip_prefix('#').unwrap();
            assert!(part.pointer(pointer).is_some(), "{reference} is dangling");
        }
        // Indirect references are followed: Product refers to Variant.
        assert!(component_names(&part, "schemas").contains("Variant"));
        // What only other services' paths use is left out.
        for absent in ["Order", "Cart", "User", "Promotion"] {
            assert!(
                !component_names(&part, "schemas").contains(absent),
                "{absent}"
            );
        }
        // Nothing is kept that nothing references.
        let referenced: BTreeSet<&str> = local_refs(&part["paths"])
            .into_iter()
            .chain(local_refs(&part["components"]))
            .collect();
        for name in component_names(&part, "schemas") {
            assert!(
                referenced.contains(format!("#/components/schemas/{name}").as_str()),
                "{name} is kept but not referenced"
            );
        }
        assert_eq!(
            component_names(&part, "securitySchemes"),
            BTreeSet::from(["bearer".to_owned()])
        );
        let tags: Vec<&Value> = part["tags"].as_array().unwrap().iter().collect();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0]["name"], "product");
    }

    #[test]
    fn under_matches_whole_segments() {
        assert!(under("/api/v1/products", "/api/v1/products"));
        assert!(under("/api/v1/products/{id}", "/api/v1/products"));
        assert!(!under("/api/v1/productsX", "/api/v1/products"));
        assert!(!under("/api/v1", "/api/v1/products"));
    }
}
