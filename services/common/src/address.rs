//! Checks a shipping address (souk-contract's type) as the user service (profile) and the order
//! service (each order keeps a copy) take it.

pub use souk_contract::users::ShippingAddress;

use crate::error::FieldError;

/// Trims every field, upper-cases the country, and lists what is missing or malformed (fields
/// named under `prefix`).
pub fn normalized(
    mut address: ShippingAddress,
    prefix: &str,
) -> Result<ShippingAddress, Vec<FieldError>> {
    let mut errors = Vec::new();
    for (field, value, max) in [
        ("name", &mut address.name, 200),
        ("line1", &mut address.line1, 200),
        ("city", &mut address.city, 100),
        ("postal_code", &mut address.postal_code, 20),
    ] {
        *value = value.trim().to_owned();
        if value.is_empty() || value.chars().count() > max {
            errors.push(FieldError::new(
                format!("{prefix}.{field}"),
                format!("must be 1 to {max} characters"),
            ));
        }
    }
    for (field, value) in [("line2", &mut address.line2), ("state", &mut address.state)] {
        *value = value
            .take()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            errors.push(FieldError::new(
                format!("{prefix}.{field}"),
                "must be at most 200 characters",
            ));
        }
    }
    address.country = address.country.trim().to_ascii_uppercase();
    if address.country.len() != 2 || !address.country.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            format!("{prefix}.country"),
            "must be an ISO 3166-1 alpha-2 code, e.g. \"US\"",
        ));
    }
    if errors.is_empty() {
        Ok(address)
    } else {
        Err(errors)
    }
}
