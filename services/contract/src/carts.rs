//! The cart service's internal endpoints, for the order service's checkout: claim a cart for an
//! order (one checkout per cart at a time), give it back, and subtract what an order bought.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET` a user's cart as the shopper sees it (`items` with at least `CartItem`'s fields).
pub fn cart(user_id: Uuid) -> String {
    format!("/internal/carts/{user_id}")
}

/// `POST` `ClaimRequest` -> `Claim`; 409 `cart_empty` for an empty cart.
pub fn claims(user_id: Uuid) -> String {
    format!("/internal/carts/{user_id}/claims")
}

/// `DELETE`: gives the cart back if this order still holds it (204 either way).
pub fn claim(user_id: Uuid, order_id: Uuid) -> String {
    format!("/internal/carts/{user_id}/claims/{order_id}")
}

/// `POST` `Ordered` -> 204: the order was paid; its lines leave the cart, once per order id.
pub fn ordered(user_id: Uuid) -> String {
    format!("/internal/carts/{user_id}/ordered")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub order_id: Uuid,
}

/// A cart line to buy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct CartItem {
    pub product_id: Uuid,
    /// The line's key. Absent from lines stored before variants: the product was then its own
    /// one variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<Uuid>,
    pub quantity: i32,
}

impl CartItem {
    pub fn variant(&self) -> Uuid {
        self.variant_id.unwrap_or(self.product_id)
    }
}

/// `order_id` holds the cart; `items` are its lines when that is the caller's order (empty
/// when another order holds it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub order_id: Uuid,
    pub items: Vec<CartItem>,
    /// The promotion code the shopper applied to the cart, which the order redeems or refuses.
    #[serde(default)]
    pub promotion_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ordered {
    pub order_id: Uuid,
    pub items: Vec<CartItem>,
}
