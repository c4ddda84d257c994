//! Field checks shared by the handlers. Each pushes a `FieldError` and returns the cleaned value.

use serde::{Deserialize, Deserializer};
use souk_common::FieldError;

/// Largest price accepted: keeps every sum of lines far from i64 overflow.
pub const MAX_PRICE_CENTS: i64 = 100_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;

/// Distinguishes an absent field (leave as is) from `null`.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `Some(None)` (an explicit null) for a field that cannot be null.
pub fn not_null<T>(field: &str, v: Option<Option<T>>, errors: &mut Vec<FieldError>) -> Option<T> {
    match v {
        Some(Some(v)) => Some(v),
        Some(None) => {
            errors.push(FieldError::new(field, "cannot be null"));
            None
        }
        None => None,
    }
}

pub fn text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> String {
    let value = value.trim().to_owned();
    let n = value.chars().count();
    if n < min || n > max {
        errors.push(FieldError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    value
}

pub fn sku(value: &str, errors: &mut Vec<FieldError>) -> String {
    sku_in("sku", value, errors)
}

/// A SKU in a field of another name (`variants[2].sku`).
pub fn sku_in(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = text(field, value, 1, 64, errors);
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.push(FieldError::new(field, "must not contain spaces"));
    }
    value
}

pub fn slug(value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim().to_owned();
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !ok {
        errors.push(FieldError::new(
            "slug",
            "must be 1 to 64 characters of a-z, 0-9 and inner hyphens",
        ));
    }
    value
}

pub fn price(field: &str, value: i64, errors: &mut Vec<FieldError>) {
    if !(0..=MAX_PRICE_CENTS).contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be an integer number of cents from 0 to {MAX_PRICE_CENTS}"),
        ));
    }
}

pub fn stock(value: i64, errors: &mut Vec<FieldError>) {
    stock_in("stock", value, errors)
}

pub fn stock_in(field: &str, value: i64, errors: &mut Vec<FieldError>) {
    if !(0..=MAX_STOCK).contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be an integer from 0 to {MAX_STOCK}"),
        ));
    }
}

/// The shop sells in one currency; anything else is refused rather than silently converted.
pub fn currency(value: &str, shop: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim().to_ascii_lowercase();
    if value != shop {
        errors.push(FieldError::new(
            "currency",
            format!("this shop sells in \"{shop}\" only"),
        ));
    }
    value
}

/// Longest `image_url` accepted (as the public contract says).
pub const MAX_IMAGE_URL: usize = 2048;

/// A product picture: an absolute `http(s)://host/...` URL, as the public contract says (a
/// relative path would mean something else to every client that is not the storefront).
/// Visible ASCII only (anything else must be percent-encoded), so the value is safe in any
/// attribute or header.
pub fn image_url(value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim().to_owned();
    let host_of = |rest: &str| rest.split(['/', '?', '#']).next().unwrap_or("").to_owned();
    let shape_ok = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .is_some_and(|rest| !host_of(rest).is_empty());
    let chars_ok = value
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'\\');
    if !(shape_ok && chars_ok && value.len() <= MAX_IMAGE_URL) {
        errors.push(FieldError::new(
            "image_url",
            format!(
                "must be an absolute http(s):// URL of visible ASCII (percent-encode the \
                 rest), at most {MAX_IMAGE_URL} characters"
            ),
        ));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_checks() {
        let mut e = Vec::new();
        assert_eq!(sku("  AB-1 ", &mut e), "AB-1");
        assert!(e.is_empty());
        sku("A B", &mut e);
        assert_eq!(e.len(), 1);
        let mut e = Vec::new();
        slug("shoes-2", &mut e);
        assert!(e.is_empty());
        for bad in ["Shoes", "-x", "x-", "", "a_b"] {
            let mut e = Vec::new();
            slug(bad, &mut e);
            assert_eq!(e.len(), 1, "{bad}");
        }
        let mut e = Vec::new();
        price("price_cents", -1, &mut e);
        stock(-1, &mut e);
        price("price_cents", 0, &mut e);
        stock(0, &mut e);
        assert_eq!(e.len(), 2);
        let mut e = Vec::new();
        assert_eq!(currency("USD", "usd", &mut e), "usd");
        currency("eur", "usd", &mut e);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn image_urls() {
        for good in [
            "https://cdn.example.com/a.png",
            " http://127.0.0.1:8080/x.svg?v=1 ",
        ] {
            let mut e = Vec::new();
            image_url(good, &mut e);
            assert!(e.is_empty(), "{good}: {e:?}");
        }
        let long = format!("https://x.example/{}", "a".repeat(MAX_IMAGE_URL));
        for bad in [
            "",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//evil.example/x.png",
            "https:///x.png",
            "ftp://x.example/a.png",
            "https://x.example/a b.png",
            "https://x.example/caf\u{e9}.png",
            "relative/path.png",
            "/images/demo/teapot.svg",
            long.as_str(),
        ] {
            let mut e = Vec::new();
            image_url(bad, &mut e);
            assert_eq!(e.len(), 1, "{bad:?} accepted");
        }
    }
}
