//! Upgrade gating, as a pure decision: no Deployment moves to a new version before every
//! migration Job of that version has succeeded; until then (and for good when one fails) the
//! whole Shop keeps serving the version it ran.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;

use crate::names::{self, Svc};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Missing,
    Running,
    Succeeded,
    Failed { reason: String, message: String },
}

/// What the Job controller says about a Job.
pub fn job_state(job: Option<&Job>) -> JobState {
    let Some(job) = job else {
        return JobState::Missing;
    };
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for c in &conditions {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return JobState::Succeeded,
            "Failed" => {
                return JobState::Failed {
                    reason: c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    message: c.message.clone().unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    JobState::Running
}

/// The version a Deployment's pods run (from its pod template's version label).
pub fn deployed_version(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .labels
        .as_ref()?
        .get(names::VERSION_LABEL)
        .cloned()
}

/// Where one service stands in its rollout to the target version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The Deployment runs (or is being rolled to) the target version.
    Rolled,
    /// The target version's migration Job has not finished yet.
    Migrating,
    /// Its migration Job succeeded (the gateway: it has none); the old version serves until
    /// every other service's has.
    Migrated,
    /// The target version's migration Job failed; the old version keeps serving.
    MigrationFailed { reason: String, message: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePlan {
    /// Version the Deployment should run; `None`: make no Deployment yet (first install,
    /// migrations still running).
    pub deploy_version: Option<String>,
    /// Whether the target version's migration Job must exist.
    pub migration_job: bool,
    pub stage: Stage,
}

/// One service's plan on its own; [`plan_shop`] holds it back until every service migrated.
pub fn plan(target: &str, current: Option<&str>, job: &JobState) -> ServicePlan {
    if current == Some(target) {
        return ServicePlan {
            deploy_version: Some(target.into()),
            migration_job: false,
            stage: Stage::Rolled,
        };
    }
    let keep = current.map(str::to_string);
    match job {
        JobState::Succeeded => ServicePlan {
            deploy_version: Some(target.into()),
            migration_job: true,
            stage: Stage::Rolled,
        },
        JobState::Failed { reason, message } => ServicePlan {
            deploy_version: keep,
            migration_job: true,
            stage: Stage::MigrationFailed {
                reason: reason.clone(),
                message: message.clone(),
            },
        },
        JobState::Missing | JobState::Running => ServicePlan {
            deploy_version: keep,
            migration_job: true,
            stage: Stage::Migrating,
        },
    }
}

/// The plan of every service. Each service with a database gets its migration Job (they run
/// side by side), but none moves to the target before all of them succeeded: a failed
/// migration leaves the whole Shop on the version it ran, not on a mix of versions that were
/// never released together. `backends` holds, per service with a database, its deployed
/// version and the state of its Job for the target; `gateway` the gateway's deployed version.
pub fn plan_shop(
    target: &str,
    backends: &BTreeMap<Svc, (Option<String>, JobState)>,
    gateway: Option<&str>,
) -> BTreeMap<Svc, ServicePlan> {
    let mut plans: BTreeMap<Svc, ServicePlan> = backends
        .iter()
        .map(|(svc, (current, job))| (*svc, plan(target, current.as_deref(), job)))
        .collect();
    let migrated = plans.values().all(|p| p.stage == Stage::Rolled);
    if !migrated {
        for (svc, p) in plans.iter_mut() {
            let current = backends[svc].0.as_deref();
            if p.stage == Stage::Rolled && current != Some(target) {
                p.deploy_version = current.map(str::to_string);
                p.stage = Stage::Migrated;
            }
        }
    }
    plans.insert(Svc::Gateway, plan_gateway(target, gateway, migrated));
    plans
}

/// The gateway has no database and no migration; it calls every other service, so it moves
/// to the target version once all of them do (every migration succeeded).
pub fn plan_gateway(target: &str, current: Option<&str>, backends_rolled: bool) -> ServicePlan {
    if backends_rolled || current == Some(target) {
        ServicePlan {
            deploy_version: Some(target.into()),
            migration_job: false,
            stage: Stage::Rolled,
        }
    } else {
        // Nothing of its own to wait for: "Migrating" would keep the Shop `Progressing` (and
        // requeued every 15 s) for good after another service's migration failed.
        ServicePlan {
            deploy_version: current.map(str::to_string),
            migration_job: false,
            stage: Stage::Migrated,
        }
    }
}
