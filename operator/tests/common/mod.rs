//! Helpers of the tests against a real API server (kube-apiserver + kube-controller-manager
//! v1.20 on loopback, see tests/support/control-plane.sh). No kubelet runs: the tests play its
//! part by writing pod status, which drives the real Job and Deployment controllers.
//!
//! These tests need `KUBECONFIG` and are `#[ignore]`d for a plain `cargo test`; CI runs them
//! with `--include-ignored` after starting the control plane. Without `KUBECONFIG` they fail.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};
use souk_operator::crd::Shop;
use souk_operator::names::{self, Svc};
use souk_operator::reconcile;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A client for the test API server (from `KUBECONFIG`), with the Shop CRD installed.
pub async fn client() -> Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run `eval $(operator/tests/support/control-plane.sh start)` first"
    );
    let client = Client::try_default().await.expect("client from KUBECONFIG");
    install_crd(&client).await;
    client
}

pub async fn install_crd(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Shop::crd();
    // A plain create: a v1.20 server drops the CEL rules (it does not know them) where
    // server-side apply would refuse the whole CRD.
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating the CRD: {e}"),
    }
    wait("CRD established", || async {
        let c = api.get(&crd.name_any()).await.ok()?;
        c.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

pub async fn wait<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for(what, TIMEOUT, &mut f).await
}

pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", souk_operator::secrets::random_hex(3));
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
    name
}

pub async fn delete_namespace(client: &Client, ns: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(ns, &DeleteParams::background()).await;
}

/// Runs a controller limited to one namespace until dropped.
pub struct Controller(
    Option<tokio::sync::oneshot::Sender<()>>,
    tokio::task::JoinHandle<()>,
);

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
        self.1.abort();
    }
}

pub fn start_controller(client: &Client, ns: &str) -> Controller {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(reconcile::run(
        client.clone(),
        Some(ns.to_string()),
        Some(format!("test-{ns}")),
        async {
            let _ = rx.await;
        },
    ));
    Controller(Some(tx), handle)
}

pub async fn create_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    api.create(&PostParams::default(), &s).await.unwrap();
}

pub async fn user_secrets(client: &Client, ns: &str, with_db: bool) {
    create_secret(
        client,
        ns,
        "stripe",
        &[("secret-key", "sk_test_x"), ("webhook-secret", "whsec_x")],
    )
    .await;
    create_secret(client, ns, "smtp", &[("url", "smtp://u:p@mail:587")]).await;
    if with_db {
        let urls: Vec<(&str, &str)> = Svc::BACKENDS
            .iter()
            .map(|s| (s.name(), "postgres://x:y@db:5432/x"))
            .collect();
        create_secret(client, ns, "shop-db", &urls).await;
    }
}

pub fn shop_json(name: &str, version: &str, database: Value, extra: Value) -> Value {
    let mut v = json!({
        "apiVersion": "souk.dev/v1alpha1",
        "kind": "Shop",
        "metadata": {"name": name},
        "spec": {
            "image": "registry.example/souk",
            "version": version,
            "database": database,
            "stripe": {
                "secretKey": {"name": "stripe", "key": "secret-key"},
                "webhookSecret": {"name": "stripe", "key": "webhook-secret"}
            },
            "smtp": {"url": {"name": "smtp", "key": "url"}, "from": "shop@example.com"},
            "migration": {"backoffLimit": 0}
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    v
}

pub fn shop_resource() -> ApiResource {
    ApiResource::erase::<Shop>(&())
}

pub async fn create_shop(client: &Client, ns: &str, body: &Value) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &shop_resource());
    let obj: DynamicObject = serde_json::from_value(body.clone()).unwrap();
    api.create(&PostParams::default(), &obj).await.map(|_| ())
}

pub async fn shop(client: &Client, ns: &str, name: &str) -> Option<Shop> {
    Api::<Shop>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

pub async fn condition(
    client: &Client,
    ns: &str,
    name: &str,
    t: &str,
) -> Option<(String, String, String)> {
    let s = shop(client, ns, name).await?;
    let c = s.status?.conditions.into_iter().find(|c| c.type_ == t)?;
    Some((c.status, c.reason, c.message))
}

pub fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

pub async fn deployments(client: &Client, ns: &str) -> BTreeMap<String, Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name_any(), d))
        .collect()
}

/// Play the kubelet for a Job: its pod runs to completion (or fails).
pub async fn finish_job(client: &Client, ns: &str, job: &str, success: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("job-name={job}"));
    let list = wait(&format!("a pod of Job {job}"), || async {
        let l = pods.list(&lp).await.ok()?;
        (!l.items.is_empty()).then_some(l.items)
    })
    .await;
    let now = "2026-01-01T00:00:00Z";
    for p in list {
        let (phase, code, reason) = if success {
            ("Succeeded", 0, "Completed")
        } else {
            ("Failed", 1, "Error")
        };
        let status = json!({"status": {
            "phase": phase,
            "containerStatuses": [{
                "name": "migrate", "ready": false, "restartCount": 0,
                "image": "x", "imageID": "",
                "state": {"terminated": {"exitCode": code, "reason": reason,
                                         "startedAt": now, "finishedAt": now}}
            }]
        }});
        pods.patch_status(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    }
}

/// Play the kubelet for a component's pods: running and ready.
pub async fn pods_ready(client: &Client, ns: &str, component: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{}={component}", names::COMPONENT));
    let now = "2026-01-01T00:00:00Z";
    let mut n = 0;
    for p in pods.list(&lp).await.unwrap() {
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now}
            ],
            "containerStatuses": [{
                "name": component, "ready": true, "restartCount": 0, "started": true,
                "image": "x", "imageID": "", "state": {"running": {"startedAt": now}}
            }]
        }});
        pods.patch_status(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
        n += 1;
    }
    n
}

pub async fn patch_shop(client: &Client, ns: &str, name: &str, patch: Value) {
    Api::<Shop>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

pub async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> Option<BTreeMap<String, Vec<u8>>> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?;
    Some(s.data?.into_iter().map(|(k, v)| (k, v.0)).collect())
}

pub async fn job_names(client: &Client, ns: &str) -> Vec<String> {
    Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .map(|j| j.name_any())
        .collect()
}

pub fn migration_jobs(shop: &str, version: &str) -> Vec<String> {
    Svc::BACKENDS
        .iter()
        .map(|s| names::migration_job(shop, *s, version))
        .collect()
}
