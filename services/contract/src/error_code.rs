//! The machine-readable reasons of problem+json answers (`code`), every service's in one list.
//! The public OpenAPI document lists exactly these (the gateway's tests hold it to that).

use serde::{Deserialize, Serialize};

/// Declares `ErrorCode` with each variant's wire string once: the serde name, `as_str` and
/// `ALL` all come from the same line, so they cannot disagree.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)+) => {
        /// A problem's `code`: the stable reason a client can act on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it travels in a problem document.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                }
            }
        }
    };
}

error_codes! {
    // Requests the server cannot take as they are.
    /// 400: the body or a query parameter cannot be read.
    MalformedRequest = "malformed_request",
    /// 422: one `errors` entry per invalid field.
    ValidationFailed = "validation_failed",
    /// 413: the body is larger than 1 MiB.
    PayloadTooLarge = "payload_too_large",
    /// 415: the body is not `application/json`.
    UnsupportedMediaType = "unsupported_media_type",
    /// 405.
    MethodNotAllowed = "method_not_allowed",
    /// 408: the body did not arrive in time.
    RequestTimeout = "request_timeout",
    /// 429, with `Retry-After`.
    RateLimited = "rate_limited",

    // Who is asking.
    /// 401: no valid identity (token or service proof).
    Unauthorized = "unauthorized",
    /// 401: wrong e-mail or password.
    InvalidCredentials = "invalid_credentials",
    /// 401: a refresh token that is unknown, spent or revoked.
    InvalidRefreshToken = "invalid_refresh_token",
    /// 403.
    Forbidden = "forbidden",

    // Resources.
    /// 404.
    NotFound = "not_found",
    /// 409: a unique value another resource already has.
    Conflict = "conflict",
    /// 409: the e-mail belongs to another account.
    EmailTaken = "email_taken",
    /// 409: the last admin cannot be demoted or deleted.
    LastAdmin = "last_admin",
    /// 409: another product or variant has this SKU.
    SkuTaken = "sku_taken",
    /// 409: another category has this slug.
    SlugTaken = "slug_taken",
    /// 409: the category still has products or children.
    CategoryInUse = "category_in_use",
    /// 422: the product names a category that does not exist.
    CategoryNotFound = "category_not_found",
    /// 409: a product has at most this many variants.
    TooManyVariants = "too_many_variants",
    /// 422: a product with options is bought by variant.
    VariantRequired = "variant_required",
    /// 409: another promotion has this code.
    CodeTaken = "code_taken",

    // Carts, stock and checkout.
    /// 409: not that much stock.
    InsufficientStock = "insufficient_stock",
    /// 409: the product or variant is archived or inactive.
    ProductUnavailable = "product_unavailable",
    /// 409: the cart has as many lines as it may.
    CartFull = "cart_full",
    /// 409: nothing to check out.
    CartEmpty = "cart_empty",
    /// 404: no active promotion has this code.
    PromotionNotFound = "promotion_not_found",
    /// 422: the promotion does not apply to this cart (`reason`).
    PromotionNotApplicable = "promotion_not_applicable",
    /// 409: the cart's promotion stopped applying before the order was placed (`reason`).
    PromotionUnavailable = "promotion_unavailable",
    /// 400: checkout needs an `Idempotency-Key`.
    IdempotencyKeyRequired = "idempotency_key_required",
    /// 400: the `Idempotency-Key` is empty, too long or not printable.
    IdempotencyKeyInvalid = "idempotency_key_invalid",
    /// 409: the key was used for another request.
    IdempotencyKeyReused = "idempotency_key_reused",
    /// 409: another checkout of this cart is under way.
    CheckoutInProgress = "checkout_in_progress",
    /// 409: the checkout stopped before the order existed; try again.
    CheckoutAbandoned = "checkout_abandoned",
    /// 409: the order cannot move to that status from its own.
    IllegalTransition = "illegal_transition",
    /// 404, internal: the order has no reservation.
    ReservationNotFound = "reservation_not_found",
    /// 409, internal: the reservation was released (or expired and restocked).
    ReservationReleased = "reservation_released",
    /// 409, internal: the reservation was committed and can no longer be released.
    ReservationCommitted = "reservation_committed",

    // Payments.
    /// 402: the card was declined.
    PaymentFailed = "payment_failed",
    /// 409: nothing left to refund, or the payment never succeeded.
    NotRefundable = "not_refundable",
    /// 400: a webhook whose `Stripe-Signature` does not verify.
    InvalidSignature = "invalid_signature",

    // The server and the services behind it.
    /// 500: nothing more is said (the cause is logged).
    InternalError = "internal_error",
    /// 502: a service behind this one (or Stripe) answered something unusable.
    BadGateway = "bad_gateway",
    /// 502: a service behind this one answered with a code this release does not know.
    UpstreamError = "upstream_error",
    /// 503: try again shortly.
    ServiceUnavailable = "service_unavailable",
    /// 504: a service behind the gateway did not answer in time.
    UpstreamTimeout = "upstream_timeout",
}

impl ErrorCode {
    /// The code a problem document names, `None` for one this release does not know.
    pub fn from_wire(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this release does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownErrorCode(pub String);

impl std::fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown error code `{}`", self.0)
    }
}

impl std::error::Error for UnknownErrorCode {}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        ErrorCode::from_wire(code).ok_or_else(|| UnknownErrorCode(code.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_round_trips_through_serde_and_its_wire_string() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::from(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
        }
    }

    #[test]
    fn wire_strings_are_distinct_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let wire = code.as_str();
            assert!(seen.insert(wire), "{wire} twice");
            assert!(
                wire.starts_with(|c: char| c.is_ascii_lowercase())
                    && wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{wire}"
            );
        }
    }

    #[test]
    fn an_unknown_code_is_none_and_an_error() {
        assert_eq!(ErrorCode::from_wire("out_of_stock"), None);
        assert_eq!(ErrorCode::from_wire("NOT_FOUND"), None);
        assert!("".parse::<ErrorCode>().is_err());
        assert!(serde_json::from_str::<ErrorCode>("\"teapot\"").is_err());
    }
}
