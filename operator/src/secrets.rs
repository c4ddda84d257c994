//! Secrets the operator generates. Each is made once and never regenerated: a reconcile reads
//! the existing Secret and keeps every key it already has, generating only missing keys.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::RngCore;
use rand::rngs::OsRng;

use crate::crd::Shop;
use crate::names::{self, Svc};
use crate::objects::meta;

pub const INTERNAL_KEY: &str = "secret";
pub const JWT_PRIVATE_KEY: &str = "private.pem";
pub const JWT_PUBLIC_KEY: &str = "public.pem";
pub const PG_SUPERUSER_KEY: &str = "postgres";

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Ed25519 key pair as PKCS#8 / SPKI PEM (what `SOUK_JWT_PRIVATE_KEY` expects).
pub fn ed25519_pem_pair() -> (String, String) {
    let key = SigningKey::generate(&mut OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("ed25519 key encodes")
        .to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("ed25519 key encodes");
    (private, public)
}

/// The string data of an existing Secret (empty when there is none).
pub fn existing_data(secret: Option<&Secret>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(s) = secret {
        for (k, v) in s.data.iter().flatten() {
            if let Ok(v) = String::from_utf8(v.0.clone()) {
                out.insert(k.clone(), v);
            }
        }
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Keep what exists; generate only what is missing.
pub fn keep_or_generate(
    existing: &BTreeMap<String, String>,
    keys: &[&str],
    mut generate: impl FnMut(&str) -> String,
) -> BTreeMap<String, String> {
    keys.iter()
        .map(|k| {
            let v = existing
                .get(*k)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| generate(k));
            (k.to_string(), v)
        })
        .collect()
}

/// Internal HMAC secret shared by the services (32 random bytes, hex).
pub fn internal_data(existing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    keep_or_generate(existing, &[INTERNAL_KEY], |_| random_hex(32))
}

/// JWT signing key pair of the user service; both halves are kept or replaced together.
pub fn jwt_data(existing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    if existing.contains_key(JWT_PRIVATE_KEY) && existing.contains_key(JWT_PUBLIC_KEY) {
        return keep_or_generate(
            existing,
            &[JWT_PRIVATE_KEY, JWT_PUBLIC_KEY],
            |_| unreachable!(),
        );
    }
    let (private, public) = ed25519_pem_pair();
    BTreeMap::from([
        (JWT_PRIVATE_KEY.to_string(), private),
        (JWT_PUBLIC_KEY.to_string(), public),
    ])
}

/// PostgreSQL passwords of the managed database: the superuser and one role per service.
pub fn db_password_data(existing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut keys = vec![PG_SUPERUSER_KEY];
    keys.extend(Svc::BACKENDS.iter().map(|s| s.name()));
    keep_or_generate(existing, &keys, |_| random_hex(24))
}

/// An Opaque Secret owned by the Shop (or not owned, for data that must outlive it).
pub fn secret(
    shop: &Shop,
    name: String,
    component: &str,
    data: &BTreeMap<String, String>,
    owned: bool,
) -> Secret {
    let mut m = meta(shop, name, component);
    if !owned {
        m.owner_references = None;
    }
    Secret {
        metadata: m,
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

pub fn internal_secret(shop: &Shop, data: &BTreeMap<String, String>) -> Secret {
    secret(
        shop,
        names::internal_secret(&shop_name(shop)),
        "internal",
        data,
        true,
    )
}

pub fn jwt_secret(shop: &Shop, data: &BTreeMap<String, String>) -> Secret {
    secret(
        shop,
        names::jwt_secret(&shop_name(shop)),
        "user",
        data,
        true,
    )
}

fn shop_name(shop: &Shop) -> String {
    shop.metadata.name.clone().unwrap_or_default()
}
