//! `?limit=` and `?cursor=` as API.md defines them. Cursors are opaque to clients: base64url of
//! a small JSON document that only the issuing service reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Query parameters as strings, so a malformed value is our 422, not a framework rejection.
/// Documented as what a client may send: `params(PageQuery)` in a `#[utoipa::path]`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1-100 (default 20); anything else is 422 (field `limit`).
    #[param(schema_with = limit_schema)]
    pub limit: Option<String>,
    /// Opaque `next_cursor` from the previous page; one this endpoint did not issue is 422 (field `cursor`).
    pub cursor: Option<String>,
}

/// `limit` as a client sends it: an integer in range (the field is a string only to answer
/// a malformed one with our 422).
pub fn limit_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_LIMIT))
        .default(Some(DEFAULT_LIMIT.into()))
        .build()
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_field(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }

    pub fn cursor<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(raw) => decode_cursor(raw).map(Some),
        }
    }
}

pub fn encode_cursor<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this endpoint issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// An item type listed in pages: names and describes its page's schema (`UserPage`...), so
/// each `Page<T>` is its own component rather than utoipa's generic `Page_T`. In a
/// `#[utoipa::path]`, name the page through a type alias (`pub type UserPage = Page<User>;`,
/// `body = UserPage`): the macro names a written-out `Page<User>` `UserPage_User`.
pub trait PageItem: utoipa::ToSchema {
    /// The page schema's name, e.g. `UserPage`.
    const PAGE_NAME: &'static str;
    /// What the page holds and in what order, e.g. "A page of profiles, newest first."
    const PAGE_DESCRIPTION: &'static str;
}

impl<T: PageItem> utoipa::PartialSchema for Page<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
        use utoipa::openapi::{Ref, RefOr};
        ObjectBuilder::new()
            .description(Some(format!(
                "{} `next_cursor` is null on the last page; pass it as `cursor` to get the next one.",
                T::PAGE_DESCRIPTION
            )))
            .property(
                "items",
                ArrayBuilder::new().items(RefOr::Ref(Ref::from_schema_name(T::name()))),
            )
            .required("items")
            .property(
                "next_cursor",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some("Opaque; null when there is no further page.")),
            )
            .required("next_cursor")
            .into()
    }
}

impl<T: PageItem> utoipa::ToSchema for Page<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(T::PAGE_NAME)
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says another page exists.
    pub fn from_rows<C: Serialize>(
        mut rows: Vec<T>,
        limit: i64,
        cursor_of: impl Fn(&T) -> C,
    ) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(&cursor_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item as a service would list it.
    #[derive(utoipa::ToSchema)]
    #[expect(dead_code, reason = "only its schema is read")]
    struct Widget {
        id: i64,
    }

    impl PageItem for Widget {
        const PAGE_NAME: &'static str = "WidgetPage";
        const PAGE_DESCRIPTION: &'static str = "A page of widgets, newest first.";
    }

    type WidgetPage = Page<Widget>;

    #[utoipa::path(get, path = "/widgets", params(PageQuery), responses((status = 200, body = WidgetPage)))]
    #[expect(dead_code, reason = "only its generated description is read")]
    fn list_widgets() {}

    #[test]
    fn a_page_is_its_own_component() {
        #[derive(utoipa::OpenApi)]
        #[openapi(paths(list_widgets))]
        struct Doc;
        let doc = serde_json::to_value(<Doc as utoipa::OpenApi>::openapi()).unwrap();
        let operation = &doc["paths"]["/widgets"]["get"];
        assert_eq!(
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/WidgetPage"
        );
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["WidgetPage"]["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/Widget"
        );
        assert_eq!(
            schemas["WidgetPage"]["properties"]["next_cursor"]["type"],
            serde_json::json!(["string", "null"])
        );
        assert_eq!(
            schemas["WidgetPage"]["required"],
            serde_json::json!(["items", "next_cursor"])
        );
        assert!(schemas["Widget"].is_object());
        let limit = &operation["parameters"][0];
        assert_eq!(limit["name"], "limit");
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["required"], false);
        assert_eq!(
            limit["schema"],
            serde_json::json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20})
        );
        assert_eq!(operation["parameters"][1]["name"], "cursor");
        assert_eq!(operation["parameters"][1]["schema"]["type"], "string");
    }

    #[test]
    fn limits_and_cursors() {
        let q = PageQuery {
            limit: Some("0".into()),
            cursor: None,
        };
        assert_eq!(q.limit().unwrap_err().status, 422);
        let q = PageQuery {
            limit: Some("abc".into()),
            cursor: Some("!!".into()),
        };
        assert!(q.limit().is_err());
        assert_eq!(q.cursor::<i64>().unwrap_err().status, 422);
        let c = encode_cursor(&(5, "x"));
        assert_eq!(
            decode_cursor::<(i64, String)>(&c).unwrap(),
            (5, "x".to_owned())
        );
        let page = Page::from_rows(vec![1, 2, 3], 2, |r| *r);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(
            decode_cursor::<i32>(page.next_cursor.as_deref().unwrap()).unwrap(),
            2
        );
    }
}
