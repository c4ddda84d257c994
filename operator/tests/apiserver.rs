//! Controller tests against a real API server; see `common` for how they run.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use souk_operator::crd::Shop;
use souk_operator::leader::LeaderElector;
use souk_operator::names::{self, Svc};
use souk_operator::reconcile;

#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn create_gate_drift_upgrade_and_delete() {
    let client = client().await;
    let ns = namespace(&client, "life").await;
    user_secrets(&client, &ns, true).await;
    let _ctl = start_controller(&client, &ns);
    let body = shop_json(
        "demo",
        "1.0.0",
        json!({"mode": "external", "external": {"secretName": "shop-db"}}),
        json!({
            "services": {"gateway": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}},
            "ingress": {"host": "shop.example.com", "tlsSecretName": "shop-tls"}
        }),
    );
    create_shop(&client, &ns, &body).await.unwrap();

    // Create: secrets, Services and one migration Job per service; no Deployment before the
    // migrations succeed.
    let want_jobs = migration_jobs("demo", "1.0.0");
    wait("five migration Jobs", || async {
        let have = job_names(&client, &ns).await;
        want_jobs.iter().all(|j| have.contains(j)).then_some(())
    })
    .await;
    let s = shop(&client, &ns, "demo").await.unwrap();
    assert!(s.finalizers().contains(&names::FINALIZER.to_string()));
    assert!(
        deployments(&client, &ns).await.is_empty(),
        "no Deployment before migrations"
    );
    let (st, reason, _) = wait("Progressing/Migrating", || async {
        condition(&client, &ns, "demo", "Progressing")
            .await
            .filter(|c| c.1 == "Migrating")
    })
    .await;
    assert_eq!((st.as_str(), reason.as_str()), ("True", "Migrating"));
    let jwt = secret_data(&client, &ns, "demo-jwt")
        .await
        .expect("JWT secret");
    assert!(secret_data(&client, &ns, "demo-internal").await.is_some());
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for svc in Svc::ALL {
        assert!(
            services
                .get_opt(&names::svc_object("demo", svc))
                .await
                .unwrap()
                .is_some()
        );
    }

    for j in &want_jobs {
        finish_job(&client, &ns, j, true).await;
    }
    let ds = wait("six Deployments at 1.0.0", || async {
        let ds = deployments(&client, &ns).await;
        (ds.len() == 6 && ds.values().all(|d| image_of(d).ends_with(":1.0.0"))).then_some(ds)
    })
    .await;
    assert_eq!(ds["demo-gateway"].spec.as_ref().unwrap().replicas, Some(1));
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns)
        .get("demo-gateway")
        .await
        .unwrap();
    assert_eq!(hpa.spec.unwrap().max_replicas, 3);
    let ing = Api::<Ingress>::namespaced(client.clone(), &ns)
        .get("demo-gateway")
        .await
        .unwrap();
    assert_eq!(
        ing.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
        Some("shop-tls")
    );
    let nps = Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(nps.items.len(), 7);
    let pdb_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget"),
        "poddisruptionbudgets",
    );
    let pdbs = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &pdb_ar)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(pdbs.items.len(), 6, "policy/v1beta1 on a v1.20 server");

    // Status: Ready once every pod is.
    wait("Ready=True at 1.0.0", || async {
        for svc in Svc::ALL {
            pods_ready(&client, &ns, svc.name()).await;
        }
        let s = shop(&client, &ns, "demo").await?.status?;
        let ready = s
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && s.version.as_deref() == Some("1.0.0")).then_some(())
    })
    .await;
    let s = shop(&client, &ns, "demo").await.unwrap();
    let st = s.status.unwrap();
    assert_eq!(st.observed_generation, s.metadata.generation);
    assert_eq!(st.gateway_url.as_deref(), Some("https://shop.example.com"));
    assert_eq!(st.services["cart"].ready_replicas, 1);
    assert_eq!(st.database.as_deref(), Some("external"));

    // Events on the Shop.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Shop"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.contains(&"MigrationStarted".into()), "{reasons:?}");
    assert!(reasons.contains(&"Ready".into()), "{reasons:?}");

    // Drift: a deleted Service and an edited Deployment are repaired.
    let old_uid = services.get("demo-product").await.unwrap().uid();
    services
        .delete("demo-product", &DeleteParams::default())
        .await
        .unwrap();
    wait("the product Service back", || async {
        let s = services.get_opt("demo-product").await.ok()??;
        (s.uid() != old_uid).then_some(())
    })
    .await;
    let dapi: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    dapi.patch(
        "demo-cart",
        &PatchParams::apply("someone-else"),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    wait("cart back to 1 replica", || async {
        let d = dapi.get("demo-cart").await.ok()?;
        (d.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    let npapi: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    npapi
        .delete("demo-user", &DeleteParams::default())
        .await
        .unwrap();
    wait("the user NetworkPolicy back", || async {
        npapi.get_opt("demo-user").await.ok()?.map(|_| ())
    })
    .await;
    assert_eq!(
        secret_data(&client, &ns, "demo-jwt").await.unwrap(),
        jwt,
        "never regenerated"
    );

    // Upgrade gated on all migration Jobs; a failed one leaves the whole old version serving.
    patch_shop(&client, &ns, "demo", json!({"spec": {"version": "2.0.0"}})).await;
    let jobs2 = migration_jobs("demo", "2.0.0");
    wait("migration Jobs for 2.0.0", || async {
        let have = job_names(&client, &ns).await;
        jobs2.iter().all(|j| have.contains(j)).then_some(())
    })
    .await;
    assert!(
        deployments(&client, &ns)
            .await
            .values()
            .all(|d| image_of(d).ends_with(":1.0.0")),
        "nothing rolls before its migration succeeded"
    );
    let payment_job = names::migration_job("demo", Svc::Payment, "2.0.0");
    for j in &jobs2 {
        finish_job(&client, &ns, j, j != &payment_job).await;
    }
    let (_, _, msg) = wait("Degraded=True MigrationFailed", || async {
        condition(&client, &ns, "demo", "Degraded")
            .await
            .filter(|c| c.0 == "True" && c.1 == "MigrationFailed")
    })
    .await;
    assert!(
        msg.contains("payment") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    // Halted, not waiting for anything: no longer Progressing.
    wait("Progressing=False MigrationFailed", || async {
        condition(&client, &ns, "demo", "Progressing")
            .await
            .filter(|c| c.0 == "False" && c.1 == "MigrationFailed")
    })
    .await;
    // The four that migrated wait for payment's: nothing moved, the gateway neither.
    let ds = deployments(&client, &ns).await;
    assert_eq!(ds.len(), 6);
    for (name, d) in &ds {
        assert!(
            image_of(d).ends_with(":1.0.0"),
            "{name} keeps serving 1.0.0"
        );
    }
    wait("1.0.0 migration Jobs pruned", || async {
        let have = job_names(&client, &ns).await;
        migration_jobs("demo", "1.0.0")
            .iter()
            .all(|j| !have.contains(j))
            .then_some(())
    })
    .await;

    // A fixed release rolls everything and clears Degraded.
    patch_shop(&client, &ns, "demo", json!({"spec": {"version": "2.0.1"}})).await;
    for j in migration_jobs("demo", "2.0.1") {
        finish_job(&client, &ns, &j, true).await;
    }
    wait("all six at 2.0.1", || async {
        let ds = deployments(&client, &ns).await;
        ds.values()
            .all(|d| image_of(d).ends_with(":2.0.1"))
            .then_some(())
    })
    .await;
    wait("Degraded=False", || async {
        condition(&client, &ns, "demo", "Degraded")
            .await
            .filter(|c| c.0 == "False")
    })
    .await;

    // Delete: the finalizer runs, then garbage collection removes the children.
    Api::<Shop>::namespaced(client.clone(), &ns)
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    wait("the Shop gone", || async {
        shop(&client, &ns, "demo").await.is_none().then_some(())
    })
    .await;
    wait_for(
        "children garbage-collected",
        Duration::from_secs(120),
        || async {
            let ds = deployments(&client, &ns).await;
            let svcs = services.list(&ListParams::default()).await.ok()?;
            (ds.is_empty() && svcs.items.is_empty()).then_some(())
        },
    )
    .await;
    delete_namespace(&client, &ns).await;
}

fn cnpg_crd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.postgresql.cnpg.io")},
        "spec": {
            "group": "postgresql.cnpg.io",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

async fn set_cnpg_crds(client: &Client, installed: bool) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (kind, plural) in [("Cluster", "clusters"), ("Database", "databases")] {
        let name = format!("{plural}.postgresql.cnpg.io");
        if installed {
            let crd: CustomResourceDefinition =
                serde_json::from_value(cnpg_crd(kind, plural)).unwrap();
            match api.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => panic!("{e}"),
            }
        } else {
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
        wait("CNPG CRD state", || async {
            let c = api.get_opt(&name).await.ok()?;
            let established = c.as_ref().is_some_and(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            });
            (if installed { established } else { c.is_none() }).then_some(())
        })
        .await;
    }
    wait("CNPG discovery", || async {
        (reconcile::cnpg_installed(client).await == installed).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn managed_database_statefulset_then_cloudnative_pg() {
    let client = client().await;
    let _cnpg = CNPG_STATE.lock().await;
    set_cnpg_crds(&client, false).await;

    // StatefulSet PostgreSQL.
    let ns = namespace(&client, "pg").await;
    user_secrets(&client, &ns, false).await;
    let ctl = start_controller(&client, &ns);
    create_shop(
        &client,
        &ns,
        &shop_json("db", "1.0.0", json!({"mode": "managed"}), json!({})),
    )
    .await
    .unwrap();
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    wait("the PostgreSQL StatefulSet", || async {
        sts_api.get_opt("db-postgres").await.ok()?.map(|_| ())
    })
    .await;
    let creds = wait("credentials", || {
        secret_data(&client, &ns, "db-db-credentials")
    })
    .await;
    let urls = wait("URLs", || secret_data(&client, &ns, "db-database-urls")).await;
    let user_url = String::from_utf8(urls["user"].clone()).unwrap();
    assert!(
        user_url.contains("@db-postgres:5432/souk_user"),
        "{user_url}"
    );
    assert_eq!(creds.len(), 6);

    // Deleted URLs Secret: recreated from the kept passwords; a spec change regenerates nothing.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .delete("db-database-urls", &DeleteParams::default())
        .await
        .unwrap();
    let again = wait("URLs back", || {
        secret_data(&client, &ns, "db-database-urls")
    })
    .await;
    assert_eq!(again, urls);
    patch_shop(
        &client,
        &ns,
        "db",
        json!({"spec": {"services": {"cart": {"replicas": 2}}}}),
    )
    .await;
    wait("cart Service still there after the change", || async {
        let s = shop(&client, &ns, "db").await?.status?;
        (s.observed_generation == Some(2)).then_some(())
    })
    .await;
    assert_eq!(
        secret_data(&client, &ns, "db-db-credentials")
            .await
            .unwrap(),
        creds
    );

    // The StatefulSet controller makes the volume claim from the template; it is owned by
    // nothing, so the Shop's finalizer must delete it.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let pvc = wait("the data volume claim", || async {
        pvcs.get_opt("data-db-postgres-0").await.ok()?
    })
    .await;
    assert!(pvc.metadata.owner_references.unwrap_or_default().is_empty());
    Api::<Shop>::namespaced(client.clone(), &ns)
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    wait("Shop gone and its volume claim deleted", || async {
        let gone = shop(&client, &ns, "db").await.is_none();
        let pvc = pvcs.get_opt("data-db-postgres-0").await.ok()?;
        let deleting = pvc.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
        (gone && deleting).then_some(())
    })
    .await;
    // The claim stays "Terminating" while the pod uses it, as in any cluster; it goes once
    // garbage collection removed the StatefulSet and its pod.
    wait_for(
        "the volume claim gone",
        Duration::from_secs(120),
        || async {
            pvcs.get_opt("data-db-postgres-0")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    drop(ctl);
    delete_namespace(&client, &ns).await;

    // CloudNativePG installed: a Cluster and Databases instead of a StatefulSet.
    set_cnpg_crds(&client, true).await;
    let ns = namespace(&client, "cnpg").await;
    user_secrets(&client, &ns, false).await;
    let _ctl = start_controller(&client, &ns);
    create_shop(
        &client,
        &ns,
        &shop_json(
            "db",
            "1.0.0",
            json!({"mode": "managed", "managed": {"instances": 3}}),
            json!({}),
        ),
    )
    .await
    .unwrap();
    let cluster_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"),
        "clusters",
    );
    let db_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Database"),
        "databases",
    );
    let clusters = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &cluster_ar);
    let cluster = wait("a CNPG Cluster", || async {
        clusters.get_opt("db-postgres").await.ok()?
    })
    .await;
    assert_eq!(cluster.data["spec"]["instances"], 3);
    let dbs = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &db_ar);
    wait("four CNPG Databases", || async {
        (dbs.list(&ListParams::default()).await.ok()?.items.len() == 4).then_some(())
    })
    .await;
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert!(sts_api.get_opt("db-postgres").await.unwrap().is_none());
    let urls = secret_data(&client, &ns, "db-database-urls").await.unwrap();
    assert!(
        String::from_utf8(urls["order"].clone())
            .unwrap()
            .contains("@db-postgres-rw:5432/souk_order")
    );
    wait("status.database", || async {
        let s = shop(&client, &ns, "db").await?.status?;
        (s.database.as_deref() == Some("cloudnative-pg")).then_some(())
    })
    .await;
    Api::<Shop>::namespaced(client.clone(), &ns)
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    wait("Shop gone", || async {
        shop(&client, &ns, "db").await.is_none().then_some(())
    })
    .await;
    delete_namespace(&client, &ns).await;
    set_cnpg_crds(&client, false).await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn schema_refuses_invalid_specs() {
    let client = client().await;
    let ns = namespace(&client, "schema").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &shop_resource());
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let ext = json!({"mode": "external", "external": {"secretName": "x"}});
    let try_create = |body: Value| {
        let api = api.clone();
        let dry = dry.clone();
        async move {
            let obj: DynamicObject = serde_json::from_value(body).unwrap();
            api.create(&dry, &obj).await
        }
    };
    try_create(shop_json("ok", "1.0.0", ext.clone(), json!({})))
        .await
        .expect("valid spec accepted");

    let refused = [
        (
            "negative replicas",
            shop_json(
                "a",
                "1",
                ext.clone(),
                json!({"services": {"cart": {"replicas": -1}}}),
            ),
        ),
        (
            "unknown database mode",
            shop_json("b", "1", json!({"mode": "sqlite"}), json!({})),
        ),
        (
            "zero minReplicas",
            shop_json(
                "c",
                "1",
                ext.clone(),
                json!({"services": {"cart": {"autoscaling": {"minReplicas": 0, "maxReplicas": 2}}}}),
            ),
        ),
        (
            "bad version tag",
            shop_json("d", "1.0/../x", ext.clone(), json!({})),
        ),
        ("missing stripe", {
            let mut v = shop_json("e", "1", ext.clone(), json!({}));
            v["spec"].as_object_mut().unwrap().remove("stripe");
            v
        }),
    ];
    for (what, body) in refused {
        match try_create(body).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{what}: {e:?}"),
            other => panic!("{what} was not refused: {other:?}"),
        }
    }

    // min > max is a CEL rule: v1.20 does not enforce CEL (newer servers do, and the offline
    // test covers the rule), so the operator refuses it itself and reports Degraded.
    user_secrets(&client, &ns, true).await;
    let _ctl = start_controller(&client, &ns);
    create_shop(
        &client,
        &ns,
        &shop_json(
            "minmax",
            "1.0.0",
            json!({"mode": "external", "external": {"secretName": "shop-db"}}),
            json!({"services": {"cart": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}}),
        ),
    )
    .await
    .unwrap();
    let (_, _, msg) = wait("Degraded/InvalidSpec", || async {
        condition(&client, &ns, "minmax", "Degraded")
            .await
            .filter(|c| c.0 == "True" && c.1 == "InvalidSpec")
    })
    .await;
    assert!(
        msg.contains("minReplicas (5) must not exceed maxReplicas (2)"),
        "{msg}"
    );
    assert!(
        job_names(&client, &ns).await.is_empty(),
        "an invalid spec rolls nothing out"
    );
    Api::<Shop>::namespaced(client.clone(), &ns)
        .delete("minmax", &DeleteParams::default())
        .await
        .unwrap();
    wait("Shop gone", || async {
        shop(&client, &ns, "minmax").await.is_none().then_some(())
    })
    .await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn leader_election_has_one_holder() {
    let client = client().await;
    let ns = namespace(&client, "lease").await;
    let d = Duration::from_secs(2);
    let a = LeaderElector::new(client.clone(), &ns, "souk-operator", "a", d);
    let b = LeaderElector::new(client.clone(), &ns, "souk-operator", "b", d);
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap(), "held by a");
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    a.step_down().await.unwrap();
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "b takes over at once"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());
    // b stops renewing: after the lease duration a takes over.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "expired lease taken"
    );
    delete_namespace(&client, &ns).await;
}

/// Serialises the tests that depend on whether CloudNativePG's CRDs are installed.
static CNPG_STATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A client acting as the ServiceAccount `namespace/name`.
async fn impersonating(sa: &str) -> (Client, String) {
    let (sa_ns, sa_name) = sa
        .split_once('/')
        .expect("a ServiceAccount is namespace/name");
    let mut cfg = kube::Config::infer().await.unwrap();
    cfg.auth_info.impersonate = Some(format!("system:serviceaccount:{sa_ns}:{sa_name}"));
    cfg.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{sa_ns}"),
        "system:authenticated".into(),
    ]);
    (Client::try_from(cfg).unwrap(), sa_ns.to_owned())
}

fn forbidden<T>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(e)) if e.code == 403)
}

/// The chart's default (no `clusterWide`), applied by ci.sh in `souk-default`: Secrets and
/// Deployments there, in no other namespace.
#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn the_default_chart_grants_nothing_outside_its_namespace() {
    let admin = client().await;
    let sa = std::env::var("SOUK_OPERATOR_SCOPED_SA").expect(
        "SOUK_OPERATOR_SCOPED_SA (the default chart's ServiceAccount, applied by ci.sh) is not set",
    );
    let (operator, own) = impersonating(&sa).await;
    let lp = ListParams::default();
    assert!(
        Api::<Secret>::namespaced(operator.clone(), &own)
            .list(&lp)
            .await
            .is_ok()
    );
    assert!(
        Api::<Deployment>::namespaced(operator.clone(), &own)
            .list(&lp)
            .await
            .is_ok()
    );
    assert!(
        Api::<Shop>::namespaced(operator.clone(), &own)
            .list(&lp)
            .await
            .is_ok()
    );
    let other = namespace(&admin, "elsewhere").await;
    assert!(forbidden(
        Api::<Secret>::namespaced(operator.clone(), &other)
            .list(&lp)
            .await
    ));
    assert!(forbidden(
        Api::<Deployment>::namespaced(operator.clone(), &other)
            .list(&lp)
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::all(operator.clone()).list(&lp).await
    ));
    assert!(forbidden(
        Api::<Shop>::all(operator.clone()).list(&lp).await
    ));
    delete_namespace(&admin, &other).await;
}

/// The operator running as the chart's ServiceAccount (its RBAC applied by ci.sh from
/// `helm template --set clusterWide=true`), impersonated: every verb the reconcile needs must be
/// granted.
#[tokio::test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG); CI runs it with --include-ignored"]
async fn operator_works_with_the_charts_rbac() {
    let admin = client().await;
    let sa = std::env::var("SOUK_OPERATOR_SA")
        .expect("SOUK_OPERATOR_SA (the chart's ServiceAccount, applied by ci.sh) is not set");
    let _cnpg = CNPG_STATE.lock().await;
    let (operator, sa_ns) = impersonating(&sa).await;
    let sa_ns = sa_ns.as_str();

    // Leader election in the operator's namespace.
    let elector = LeaderElector::new(
        operator.clone(),
        sa_ns,
        "souk-operator",
        "rbac-test",
        Duration::from_secs(15),
    );
    assert!(
        elector.try_acquire_or_renew().await.unwrap(),
        "Lease permissions"
    );
    elector.step_down().await.unwrap();
    // And nothing beyond its grants: no Pods.
    let pods: Api<Pod> = Api::namespaced(operator.clone(), sa_ns);
    assert!(
        matches!(pods.list(&ListParams::default()).await, Err(kube::Error::Api(e)) if e.code == 403)
    );

    let ns = namespace(&admin, "rbac").await;
    user_secrets(&admin, &ns, false).await;
    let _ctl = start_controller(&operator, &ns);
    let body = shop_json(
        "rb",
        "1.0.0",
        json!({"mode": "managed"}),
        json!({
            "services": {"gateway": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}},
            "ingress": {"host": "rb.example.com"}
        }),
    );
    create_shop(&admin, &ns, &body).await.unwrap();
    for j in migration_jobs("rb", "1.0.0") {
        finish_job(&admin, &ns, &j, true).await;
    }
    wait("six Deployments applied as the ServiceAccount", || async {
        (deployments(&admin, &ns).await.len() == 6).then_some(())
    })
    .await;
    wait("status written as the ServiceAccount", || async {
        let s = shop(&admin, &ns, "rb").await?.status?;
        (s.database.as_deref() == Some("statefulset")).then_some(())
    })
    .await;
    // Pruning (delete verbs): autoscaling and ingress off, a new version (old Jobs go).
    patch_shop(
        &admin,
        &ns,
        "rb",
        json!({"spec": {"version": "1.1.0", "ingress": null, "services": {"gateway": {"autoscaling": null}}}}),
    )
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(admin.clone(), &ns);
    let ings: Api<Ingress> = Api::namespaced(admin.clone(), &ns);
    wait("HPA, Ingress and old Jobs pruned", || async {
        let hpa = hpas.get_opt("rb-gateway").await.ok()?;
        let ing = ings.get_opt("rb-gateway").await.ok()?;
        let jobs = job_names(&admin, &ns).await;
        let old_gone = migration_jobs("rb", "1.0.0")
            .iter()
            .all(|j| !jobs.contains(j));
        (hpa.is_none() && ing.is_none() && old_gone).then_some(())
    })
    .await;
    // Deletion: the finalizer (PVC list/delete) runs as the ServiceAccount.
    Api::<Shop>::namespaced(admin.clone(), &ns)
        .delete("rb", &DeleteParams::default())
        .await
        .unwrap();
    wait("Shop gone", || async {
        shop(&admin, &ns, "rb").await.is_none().then_some(())
    })
    .await;
    delete_namespace(&admin, &ns).await;
}
