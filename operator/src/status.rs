//! The Shop's status as a pure function of what was observed: conditions `Ready`,
//! `Progressing` and `Degraded` with reasons, per-service replicas, the running version.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{ServiceStatus, Shop, ShopStatus};
use crate::names::Svc;
use crate::rollout::{Stage, deployed_version};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What the reconciler saw, reduced to what the status needs.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub invalid_spec: Option<String>,
    pub missing_secrets: Vec<String>,
    pub stages: BTreeMap<Svc, Stage>,
    pub deployments: BTreeMap<Svc, Deployment>,
    pub gateway_url: Option<String>,
    pub database: Option<String>,
}

/// Replicas, readiness and version of one Deployment; `complete` once the rollout is done.
pub fn service_status(d: &Deployment) -> (ServiceStatus, bool) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let complete = observed && updated >= desired && ready >= desired && total == updated;
    (
        ServiceStatus {
            replicas: desired,
            ready_replicas: ready,
            version: deployed_version(d),
        },
        complete,
    )
}

fn condition(type_: &str, ok: bool, reason: &str, message: String, generation: i64) -> Condition {
    // Never empty: server-side apply on v1.20 turns "" into null and the schema refuses it.
    let message = if message.is_empty() {
        reason.to_string()
    } else {
        message
    };
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Keep `lastTransitionTime` when a condition's status did not change.
fn carry_transition(mut c: Condition, prev: Option<&ShopStatus>) -> Condition {
    if let Some(p) = prev
        .into_iter()
        .flat_map(|p| p.conditions.iter())
        .find(|p| p.type_ == c.type_)
        && p.status == c.status
    {
        c.last_transition_time = p.last_transition_time.clone();
    }
    c
}

pub fn compute(shop: &Shop, prev: Option<&ShopStatus>, obs: &Observation) -> ShopStatus {
    let generation = shop.metadata.generation.unwrap_or(0);
    let target = &shop.spec.version;

    let mut services = BTreeMap::new();
    let mut all_complete = true;
    let mut versions = std::collections::BTreeSet::new();
    for svc in Svc::ALL {
        match obs.deployments.get(&svc) {
            Some(d) => {
                let (s, complete) = service_status(d);
                all_complete &= complete;
                versions.insert(s.version.clone());
                services.insert(svc.name().to_string(), s);
            }
            None => {
                all_complete = false;
                versions.insert(None);
            }
        }
    }
    let running = match (versions.len(), versions.iter().next()) {
        (1, Some(Some(v))) if all_complete => Some(v.clone()),
        _ => prev.and_then(|p| p.version.clone()),
    };

    let failed: Vec<String> = obs
        .stages
        .iter()
        .filter_map(|(svc, st)| match st {
            Stage::MigrationFailed { reason, message } => Some(format!(
                "migration of {} to {target} failed: {reason}: {message}",
                svc.name()
            )),
            _ => None,
        })
        .collect();
    let migrating: Vec<&str> = obs
        .stages
        .iter()
        .filter(|(_, st)| **st == Stage::Migrating)
        .map(|(svc, _)| svc.name())
        .collect();

    let (degraded, d_reason, d_msg) = if let Some(msg) = &obs.invalid_spec {
        (true, "InvalidSpec", msg.clone())
    } else if !failed.is_empty() {
        (true, "MigrationFailed", failed.join("; "))
    } else if !obs.missing_secrets.is_empty() {
        (
            true,
            "SecretMissing",
            format!("missing Secret keys: {}", obs.missing_secrets.join(", ")),
        )
    } else {
        (false, "AsExpected", "no failures".to_string())
    };

    let at_target = running.as_deref() == Some(target.as_str());
    let (progressing, p_reason, p_msg) = if obs.invalid_spec.is_some() {
        (false, "InvalidSpec", String::new())
    } else if !migrating.is_empty() {
        (
            true,
            "Migrating",
            format!(
                "waiting for migration Jobs of {} at {target}",
                migrating.join(", ")
            ),
        )
    } else if !all_complete || (!at_target && failed.is_empty()) {
        (true, "RollingOut", format!("rolling out {target}"))
    } else if !failed.is_empty() {
        (
            false,
            "MigrationFailed",
            "upgrade halted; the previous version keeps serving".into(),
        )
    } else {
        (false, "Stable", format!("all services run {target}"))
    };

    let ready_ok = all_complete && running.is_some() && obs.invalid_spec.is_none();
    let (r_reason, r_msg) = if ready_ok {
        (
            "AllServicesReady",
            format!(
                "all services ready at {}",
                running.clone().unwrap_or_default()
            ),
        )
    } else if obs.invalid_spec.is_some() {
        ("InvalidSpec", d_msg.clone())
    } else if !migrating.is_empty() && running.is_none() {
        ("Migrating", p_msg.clone())
    } else {
        let waiting: Vec<&str> = Svc::ALL
            .iter()
            .filter(|s| obs.deployments.get(s).is_none_or(|d| !service_status(d).1))
            .map(|s| s.name())
            .collect();
        (
            "ServicesNotReady",
            format!("not ready: {}", waiting.join(", ")),
        )
    };

    let conditions = vec![
        condition(READY, ready_ok, r_reason, r_msg, generation),
        condition(PROGRESSING, progressing, p_reason, p_msg, generation),
        condition(DEGRADED, degraded, d_reason, d_msg, generation),
    ]
    .into_iter()
    .map(|c| carry_transition(c, prev))
    .collect();

    ShopStatus {
        observed_generation: Some(generation),
        conditions,
        services,
        version: running,
        gateway_url: obs.gateway_url.clone(),
        database: obs.database.clone(),
    }
}

pub fn find<'a>(status: Option<&'a ShopStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}
