//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas are safe:
//! only the holder reconciles; the other waits and takes over when the lease expires.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, Error};

#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            lease_duration,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn spec(&self, now: Timestamp, prev: Option<&LeaseSpec>) -> LeaseSpec {
        let ours = prev.and_then(|p| p.holder_identity.as_deref()) == Some(self.identity.as_str());
        let transitions = prev.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            acquire_time: if ours {
                prev.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || prev.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..Default::default()
        }
    }

    /// Acquire the lease if it is free or expired, renew it if it is ours. `Ok(true)` while
    /// this identity holds it. Concurrent attempts are settled by the API server's optimistic
    /// concurrency (a stale `resourceVersion` loses with 409).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, None)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let duration =
                    SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15).into());
                let expired = spec
                    .renew_time
                    .as_ref()
                    .is_none_or(|t| t.0 + duration < now);
                if holder != self.identity && !holder.is_empty() && !expired {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(now, Some(&spec)));
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Give the lease up (on shutdown) so a standby takes over at once.
    pub async fn step_down(&self) -> Result<(), Error> {
        if let Some(mut lease) = self.api.get_opt(&self.name).await? {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await?;
            }
        }
        Ok(())
    }

    /// Wait until this identity holds the lease, retrying every `retry`.
    pub async fn acquire(&self, retry: Duration) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renew every `renew` until a renewal fails for longer than the lease duration (or the lease
    /// was taken): then leadership is lost and this returns.
    pub async fn keep(&self, renew: Duration) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(renew).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the leader lease");
                    if last_ok.elapsed() > self.lease_duration {
                        return;
                    }
                }
            }
        }
    }
}
