//! Upgrade gating, as a pure decision per service: a service's Deployment moves to a new
//! version only after that version's migration Job has succeeded; until then (and for good when
//! the Job fails) the old version keeps serving.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;

use crate::names;

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

/// The gateway has no database and no migration; it calls every other service, so it moves
/// to the target version once all of them have (on first install: once they all exist).
pub fn plan_gateway(target: &str, current: Option<&str>, backends_rolled: bool) -> ServicePlan {
    if backends_rolled || current == Some(target) {
        ServicePlan {
            deploy_version: Some(target.into()),
            migration_job: false,
            stage: Stage::Rolled,
        }
    } else {
        ServicePlan {
            deploy_version: current.map(str::to_string),
            migration_job: false,
            stage: Stage::Migrating,
        }
    }
}
