//! The schema's CEL rules, checked again by the operator: API servers before 1.25 (like the
//! v1.20 one the tests run against) do not enforce `x-kubernetes-validations`, so a spec that
//! slipped through is reported `Degraded`/`InvalidSpec` instead of being rolled out.

use crate::crd::{DatabaseMode, Shop};
use crate::names::Svc;
use crate::objects::{service_spec, shop_name};

/// Longest Shop name: every child name (`<shop>-migrate-payment-12345678`) must stay within the
/// 63 characters of a label value.
pub const MAX_NAME: usize = 30;

pub fn validate(shop: &Shop) -> Result<(), String> {
    let mut problems = vec![];
    let name = shop_name(shop);
    if name.len() > MAX_NAME {
        problems.push(format!(
            "metadata.name must be at most {MAX_NAME} characters"
        ));
    }
    for svc in Svc::ALL {
        if let Some(a) = &service_spec(shop, svc).autoscaling
            && a.min_replicas > a.max_replicas
        {
            problems.push(format!(
                "services.{}.autoscaling: minReplicas ({}) must not exceed maxReplicas ({})",
                svc.name(),
                a.min_replicas,
                a.max_replicas
            ));
        }
    }
    if let Some(ingress) = &shop.spec.ingress {
        for net in &ingress.trusted_proxies {
            if net.parse::<ipnet::IpNet>().is_err() && net.parse::<std::net::IpAddr>().is_err() {
                problems.push(format!(
                    "ingress.trustedProxies: {net:?} is not a network (10.0.0.0/8) or an address"
                ));
            }
        }
    }
    if let Some(t) = &shop.spec.telemetry
        && t.sampler_ratio.is_some()
        && !t.sampler.is_some_and(|s| s.takes_ratio())
    {
        problems.push(
            "telemetry.samplerRatio needs sampler traceidratio or parentbased_traceidratio".into(),
        );
    }
    let db = &shop.spec.database;
    match db.mode {
        DatabaseMode::External if db.external.is_none() => {
            problems.push("database.external is required when mode is external".into())
        }
        DatabaseMode::Managed if db.external.is_some() => {
            problems.push("database.external must be empty when mode is managed".into())
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
