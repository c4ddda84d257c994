//! The six services, who calls whom, and how every object is named and labelled.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "souk-operator";
/// Finalizer the operator puts on every Shop.
pub const FINALIZER: &str = "souk.dev/cleanup";
/// Port every Souk service listens on inside its pod.
pub const HTTP_PORT: i32 = 8080;
/// Port of every service's ops listener (`/metrics`, detailed `/readyz`): never routed from
/// outside the cluster.
pub const OPS_PORT: i32 = 9090;
pub const PG_PORT: i32 = 5432;

/// A Souk service (all run by the same `souk` binary): the contract's one list.
pub use souk_contract::Service as Svc;

/// `<shop>-<service>`: Deployment, Service, HPA, PDB and NetworkPolicy of one service.
pub fn svc_object(shop: &str, svc: Svc) -> String {
    format!("{shop}-{}", svc.name())
}

/// Migration Job of one service at one version: a new name per version, so each upgrade runs
/// its own Job and a finished Job is never mutated.
pub fn migration_job(shop: &str, svc: Svc, version: &str) -> String {
    format!("{shop}-migrate-{}-{}", svc.name(), short_hash(version))
}

pub fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

pub fn internal_secret(shop: &str) -> String {
    format!("{shop}-internal")
}
pub fn jwt_secret(shop: &str) -> String {
    format!("{shop}-jwt")
}
pub fn db_credentials(shop: &str) -> String {
    format!("{shop}-db-credentials")
}
pub fn database_urls(shop: &str) -> String {
    format!("{shop}-database-urls")
}
pub fn postgres(shop: &str) -> String {
    format!("{shop}-postgres")
}
pub fn cnpg_role_secret(shop: &str, svc: Svc) -> String {
    format!("{shop}-db-{}", svc.name())
}
/// Database and role of one service inside the managed PostgreSQL (`order` and `user` are SQL
/// keywords, hence the prefix).
pub fn db_name(svc: Svc) -> String {
    format!("souk_{}", svc.name())
}

pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const SERVICE_LABEL: &str = "souk.dev/service";

/// Labels that select one component's pods (stable: never include the version).
pub fn selector(shop: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "souk".to_string()),
        (INSTANCE.to_string(), shop.to_string()),
        (COMPONENT.to_string(), component.to_string()),
    ])
}

/// Labels on every object the operator makes.
pub fn labels(shop: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = selector(shop, component);
    l.insert(MANAGED_BY.into(), MANAGER.into());
    l.insert("app.kubernetes.io/part-of".into(), "souk".into());
    l
}

/// Label selector of everything the operator makes, for watches.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}
