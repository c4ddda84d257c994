//! Pictures for the demo catalog (`souk up --demo`), drawn here rather than shipped as files:
//! `/images/demo/<motif>-<hue>.svg` is a simple flat drawing of the motif in one hue. The same
//! name always gives the same bytes, so the answer is cached forever.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use souk_common::ApiError;

/// Each motif's shapes, in a 200x150 box; `{ink}` and `{soft}` are replaced by two tones of the hue.
const MOTIFS: &[(&str, &str)] = &[
    (
        "teapot",
        r#"<ellipse cx="100" cy="92" rx="48" ry="36" fill="{ink}"/><path d="M148 80 q26 -6 30 -26" stroke="{ink}" stroke-width="8" fill="none"/><path d="M52 78 q-22 0 -22 22 q0 18 22 20" stroke="{ink}" stroke-width="8" fill="none"/><rect x="84" y="48" width="32" height="10" rx="4" fill="{soft}"/><circle cx="100" cy="44" r="6" fill="{ink}"/>"#,
    ),
    (
        "cup",
        r#"<path d="M60 55 h70 v40 a35 30 0 0 1 -70 0z" fill="{ink}"/><path d="M130 62 a16 16 0 0 1 0 30" stroke="{ink}" stroke-width="8" fill="none"/><ellipse cx="95" cy="128" rx="55" ry="8" fill="{soft}"/>"#,
    ),
    (
        "bowl",
        r#"<path d="M40 70 h120 a60 50 0 0 1 -120 0z" fill="{ink}"/><ellipse cx="100" cy="70" rx="60" ry="10" fill="{soft}"/>"#,
    ),
    (
        "plate",
        r#"<ellipse cx="100" cy="78" rx="70" ry="48" fill="{ink}"/><ellipse cx="100" cy="78" rx="46" ry="30" fill="{soft}"/>"#,
    ),
    (
        "lamp",
        r#"<path d="M70 30 h60 l18 50 h-96z" fill="{ink}"/><rect x="96" y="80" width="8" height="40" fill="{ink}"/><rect x="70" y="120" width="60" height="10" rx="4" fill="{soft}"/>"#,
    ),
    (
        "cushion",
        r#"<rect x="45" y="35" width="110" height="80" rx="22" fill="{ink}"/><path d="M60 75 h80" stroke="{soft}" stroke-width="6" stroke-dasharray="8 8"/>"#,
    ),
    (
        "blanket",
        r#"<rect x="40" y="40" width="120" height="75" rx="6" fill="{ink}"/><path d="M40 60 h120 M40 80 h120 M40 100 h120" stroke="{soft}" stroke-width="5"/>"#,
    ),
    (
        "plant",
        r#"<path d="M75 100 h50 l-8 35 h-34z" fill="{ink}"/><path d="M100 100 c-30 -20 -40 -50 -20 -70 c10 20 20 40 20 70z M100 100 c25 -25 45 -35 55 -30 c-10 20 -30 30 -55 30z" fill="{soft}"/>"#,
    ),
    (
        "trowel",
        r#"<path d="M60 40 l50 50 l-15 15 l-50 -50 q-10 -25 15 -15z" fill="{ink}"/><rect x="108" y="88" width="45" height="14" rx="7" transform="rotate(45 108 88)" fill="{soft}"/>"#,
    ),
    (
        "notebook",
        r#"<rect x="62" y="28" width="80" height="100" rx="6" fill="{ink}"/><rect x="62" y="28" width="14" height="100" fill="{soft}"/><path d="M90 55 h40 M90 70 h40 M90 85 h30" stroke="{soft}" stroke-width="4"/>"#,
    ),
    (
        "pen",
        r#"<rect x="40" y="68" width="110" height="16" rx="8" fill="{ink}"/><path d="M150 68 l22 8 l-22 8z" fill="{soft}"/><rect x="60" y="62" width="8" height="24" fill="{soft}"/>"#,
    ),
    (
        "basket",
        r#"<path d="M45 65 h110 l-14 60 h-82z" fill="{ink}"/><path d="M65 65 a35 35 0 0 1 70 0" stroke="{ink}" stroke-width="7" fill="none"/><path d="M55 85 h90 M60 105 h80" stroke="{soft}" stroke-width="4"/>"#,
    ),
];

pub fn motifs() -> impl Iterator<Item = &'static str> {
    MOTIFS.iter().map(|(name, _)| *name)
}

/// The drawing for `<motif>-<hue>.svg` (hue 0..=359), or None for any other name.
pub fn svg(file: &str) -> Option<String> {
    let (motif, hue) = file.strip_suffix(".svg")?.rsplit_once('-')?;
    let hue: u16 = hue.parse().ok().filter(|h| *h < 360)?;
    let shapes = MOTIFS.iter().find(|(name, _)| *name == motif)?.1;
    let shapes = shapes
        .replace("{ink}", &format!("hsl({hue} 45% 32%)"))
        .replace("{soft}", &format!("hsl({hue} 40% 72%)"));
    Some(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 150" role="img" aria-label="{motif}"><rect width="200" height="150" fill="hsl({hue} 50% 92%)"/>{shapes}</svg>"#
    ))
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(body) = svg(&file) else {
        return ApiError::not_found("no such picture").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_drawings() {
        for motif in motifs() {
            let svg = svg(&format!("{motif}-120.svg")).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("hsl(120 "), "{svg}");
            assert!(!svg.contains('{'), "unreplaced tone in {motif}");
        }
        for bad in [
            "teapot-360.svg",
            "teapot-12",
            "nothing-12.svg",
            "teapot-x.svg",
            "../x.svg",
        ] {
            assert!(svg(bad).is_none(), "{bad}");
        }
    }
}
