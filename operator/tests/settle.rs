//! The operator settles: once a Shop is Ready and nothing changes, a reconcile writes nothing
//! that changes any object, so no watch event starts the next one and reconciles fall to the
//! requeue interval. Its own test binary, so the process-wide reconcile counter is this
//! test's alone.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use souk_operator::metrics;
use souk_operator::names::{self, Svc};

/// Every kind the operator writes (PodDisruptionBudgets as `policy/v1beta1` on v1.20), and the
/// Shop itself (its status).
const KINDS: [(&str, &str, &str, &str); 11] = [
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("batch", "v1", "Job", "jobs"),
    (
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    (
        "policy",
        "v1beta1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    ("souk.dev", "v1alpha1", "Shop", "shops"),
];

/// `Kind/name` → the object as stored, for everything in the namespace.
async fn objects(client: &Client, ns: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (group, version, kind, plural) in KINDS {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar);
        for o in api.list(&ListParams::default()).await.unwrap() {
            out.insert(
                format!("{kind}/{}", o.name_any()),
                serde_json::to_value(o).unwrap(),
            );
        }
    }
    out
}

/// What moved between two versions of an object: the paths of the leaves that differ.
fn changes(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                changes(&format!("{path}.{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                changes(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

/// What the operator wrote: the generation, and the times of its own managed-fields entries
/// (server-side apply updates an entry's time only when the apply changed the object). Other
/// controllers' writes (status of Deployments, HPAs, StatefulSets) are theirs, not a reconcile's.
fn written_by_operator(o: &Value) -> Value {
    let mine: Vec<&Value> = o["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["manager"] == names::MANAGER)
        .collect();
    json!({"generation": o["metadata"]["generation"], "managedFields": mine})
}

/// Reconciles so far (all results), from the operator's Prometheus metrics.
fn reconciles(handle: &metrics_exporter_prometheus::PrometheusHandle) -> f64 {
    handle
        .render()
        .lines()
        .filter(|l| l.starts_with(metrics::RECONCILES))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn a_stable_shop_is_left_alone() {
    let handle = metrics::install().unwrap();
    let client = client().await;
    let ns = namespace(&client, "settle").await;
    user_secrets(&client, &ns, false).await;
    let _ctl = start_controller(&client, &ns);
    // Every kind of child: managed database (StatefulSet, its NetworkPolicy), autoscaling
    // (HPA; at its minimum already, so without metrics it scales nothing), an Ingress,
    // PodDisruptionBudgets.
    let body = shop_json(
        "calm",
        "1.0.0",
        json!({"mode": "managed"}),
        json!({
            "services": {"gateway": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}},
            "ingress": {"host": "calm.example.com", "tlsSecretName": "calm-tls"}
        }),
    );
    create_shop(&client, &ns, &body).await.unwrap();
    for j in migration_jobs("calm", "1.0.0") {
        finish_job(&client, &ns, &j, true).await;
    }
    wait("Ready=True", || async {
        for svc in Svc::ALL {
            pods_ready(&client, &ns, svc.name()).await;
        }
        let c = condition(&client, &ns, "calm", "Ready").await?;
        (c.0 == "True").then_some(())
    })
    .await;
    // Let the last status writes and the controllers' own first updates land (the HPA
    // controller's first sync is 15 s after creation).
    tokio::time::sleep(Duration::from_secs(5)).await;

    let window = Duration::from_secs(20);
    let before = objects(&client, &ns).await;
    let count_before = reconciles(&handle);
    tokio::time::sleep(window).await;
    let after = objects(&client, &ns).await;
    let count = reconciles(&handle) - count_before;

    let mut moved = vec![];
    for (k, b) in &before {
        let a = after.get(k).unwrap_or(&Value::Null);
        if written_by_operator(a) != written_by_operator(b) {
            let mut diff = vec![];
            changes(k, b, a, &mut diff);
            diff.retain(|d| !d.contains(".resourceVersion"));
            moved.push(format!("{k} rewritten: {diff:#?}"));
        }
    }
    assert!(
        moved.is_empty(),
        "the operator changed objects of a stable Shop: {moved:#?}"
    );
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "objects came or went"
    );
    assert!(before.keys().any(|k| k.starts_with("NetworkPolicy/")));
    // Settled: the requeue interval is minutes, so at most one reconcile in the window.
    assert!(
        count <= 1.0,
        "{count} reconciles in {window:?} of a stable Shop"
    );
    delete_namespace(&client, &ns).await;
}
