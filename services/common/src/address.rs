//! A postal address for shipping, shared by the user service (profile) and the order service
//! (each order keeps a copy).

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub postal_code: String,
    pub country: String,
}

impl ShippingAddress {
    /// Trims every field, upper-cases the country, and lists what is missing or malformed.
    pub fn normalized(mut self, prefix: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (field, value, max) in [
            ("name", &mut self.name, 200),
            ("line1", &mut self.line1, 200),
            ("city", &mut self.city, 100),
            ("postal_code", &mut self.postal_code, 20),
        ] {
            *value = value.trim().to_owned();
            if value.is_empty() || value.chars().count() > max {
                errors.push(FieldError::new(
                    format!("{prefix}.{field}"),
                    format!("must be 1 to {max} characters"),
                ));
            }
        }
        for (field, value) in [("line2", &mut self.line2), ("state", &mut self.state)] {
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
        self.country = self.country.trim().to_ascii_uppercase();
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(FieldError::new(
                format!("{prefix}.country"),
                "must be an ISO 3166-1 alpha-2 code, e.g. \"US\"",
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}
