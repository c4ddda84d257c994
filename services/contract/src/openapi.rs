//! Helpers for the public API's OpenAPI document, which is generated from the services' code
//! (`souk_common::openapi`, `souk::openapi`): the operation keys of a path item, whole-segment
//! path prefixes, and a `const` string schema for the bodies' derives.

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

/// The keys of a path item that are operations (OpenAPI 3.1 §4.8.9).
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Whether `path` is `prefix` or lies under it, by whole segments (`/api/v1/products/{id}` is
/// under `/api/v1/products`, `/api/v1/productsX` is not).
pub fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_matches_whole_segments() {
        assert!(under("/api/v1/products", "/api/v1/products"));
        assert!(under("/api/v1/products/{id}", "/api/v1/products"));
        assert!(!under("/api/v1/productsX", "/api/v1/products"));
        assert!(!under("/api/v1", "/api/v1/products"));
    }
}
