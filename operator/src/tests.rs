//! Pure tests: the CRD file, the schema's rules, and the desired objects for every spec variant.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::crd::*;
use crate::database::DbBackend;
use crate::desired::{Child, Inputs, desired};
use crate::names::{self, Svc};
use crate::objects::PdbApi;
use crate::rollout::{self, JobState, Stage, plan, plan_gateway};
use crate::status::{self, Observation};
use crate::{secrets, validate};

fn secret_ref(name: &str, key: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: name.into(),
        key: key.into(),
    }
}

/// A minimal valid Shop with an external database.
pub fn base_shop() -> Shop {
    let mut shop = Shop::new(
        "demo",
        ShopSpec {
            image: "registry.example/souk".into(),
            version: "1.2.0".into(),
            log_level: "info".into(),
            services: Services::default(),
            database: DatabaseSpec {
                mode: DatabaseMode::External,
                external: Some(ExternalDatabase {
                    secret_name: "demo-db".into(),
                }),
                managed: None,
            },
            stripe: StripeSpec {
                secret_key: secret_ref("stripe", "secret-key"),
                webhook_secret: secret_ref("stripe", "webhook-secret"),
                api_base: None,
                publishable_key: None,
                js_url: None,
            },
            smtp: SmtpSpec {
                url: secret_ref("smtp", "url"),
                from: "shop@example.com".into(),
            },
            admin: None,
            ingress: None,
            migration: MigrationSpec::default(),
            telemetry: None,
        },
    );
    shop.metadata.namespace = Some("shops".into());
    shop.metadata.uid = Some("0b5f8d3e-0000-4000-8000-000000000001".into());
    shop.metadata.generation = Some(3);
    shop
}

fn managed(shop: &mut Shop) {
    shop.spec.database = DatabaseSpec {
        mode: DatabaseMode::Managed,
        external: None,
        managed: Some(ManagedDatabase::default()),
    };
}

fn autoscale(shop: &mut Shop, min: i32, max: i32) {
    shop.spec.services.gateway.autoscaling = Some(AutoscalingSpec {
        min_replicas: min,
        max_replicas: max,
        target_cpu_utilization_percentage: 70,
    });
}

fn rolled_plans(version: &str) -> BTreeMap<Svc, rollout::ServicePlan> {
    Svc::ALL
        .into_iter()
        .map(|s| (s, plan(version, Some(version), &JobState::Missing)))
        .collect()
}

fn inputs(backend: DbBackend, plans: BTreeMap<Svc, rollout::ServicePlan>) -> Inputs {
    let pw = secrets::db_password_data(&BTreeMap::new());
    Inputs {
        backend,
        pdb_api: PdbApi::V1,
        internal: secrets::internal_data(&BTreeMap::new()),
        jwt: BTreeMap::from([
            (secrets::JWT_PRIVATE_KEY.into(), "priv".into()),
            (secrets::JWT_PUBLIC_KEY.into(), "pub".into()),
        ]),
        db_passwords: (backend != DbBackend::External).then_some(pw),
        plans,
    }
}

fn find<'a>(children: &'a [Child], kind: &str, name: &str) -> Option<&'a Child> {
    children
        .iter()
        .find(|c| c.kind() == kind && c.name() == name)
}

fn parse<K: serde::de::DeserializeOwned>(c: &Child) -> K {
    serde_json::from_value(c.body.clone()).expect("child parses as its type")
}

fn kinds(children: &[Child]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in children {
        *m.entry(c.kind().to_string()).or_default() += 1;
    }
    m
}

fn env_of(d: &Deployment) -> BTreeMap<String, Value> {
    let c = &d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    c.env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name.clone(), serde_json::to_value(&e).unwrap()))
        .collect()
}

// ---------------------------------------------------------------- the CRD file and schema

#[test]
fn crd_files_are_generated_and_fresh() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for file in ["crds/shop.yaml", "helm/souk-operator/files/shop-crd.yaml"] {
        let on_disk = std::fs::read_to_string(format!("{root}/{file}")).unwrap_or_default();
        assert!(
            on_disk == crate::crd::crd_yaml(),
            "{file} is stale: run `cargo run -p souk-operator -- crd | tee crds/shop.yaml > helm/souk-operator/files/shop-crd.yaml`"
        );
    }
}

fn spec_schema() -> Value {
    let crd = serde_json::to_value(Shop::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn schema_bounds_replicas_and_enumerates_database_modes() {
    let s = spec_schema();
    let svc = &s["properties"]["services"]["properties"]["cart"]["properties"];
    assert_eq!(svc["replicas"]["minimum"].as_f64(), Some(0.0));
    let auto = &svc["autoscaling"]["properties"];
    assert_eq!(auto["minReplicas"]["minimum"].as_f64(), Some(1.0));
    let mode = &s["properties"]["database"]["properties"]["mode"]["enum"];
    assert_eq!(mode, &json!(["external", "managed"]));
    // No default image: the project publishes none, so every Shop names its own.
    assert_eq!(
        s["required"],
        json!(["database", "image", "smtp", "stripe", "version"])
    );
}

#[test]
fn cel_refuses_min_above_max() {
    let mut shop = base_shop();
    autoscale(&mut shop, 2, 5);
    assert!(Shop::validate_cel(&shop).is_ok());
    autoscale(&mut shop, 6, 5);
    let err = Shop::validate_cel(&shop).unwrap_err().to_string();
    assert!(
        err.contains("minReplicas must not exceed maxReplicas"),
        "{err}"
    );
}

#[test]
fn cel_refuses_inconsistent_database_and_long_names() {
    let mut shop = base_shop();
    shop.spec.database.external = None;
    let err = Shop::validate_cel(&shop).unwrap_err().to_string();
    assert!(err.contains("database.external is required"), "{err}");

    let mut shop = base_shop();
    shop.spec.database.mode = DatabaseMode::Managed;
    assert!(Shop::validate_cel(&shop).is_err());

    let mut shop = base_shop();
    shop.metadata.name = Some("a".repeat(31));
    assert!(Shop::validate_cel(&shop).is_err());
}

#[test]
fn unknown_database_mode_does_not_deserialize() {
    let mut v = serde_json::to_value(base_shop()).unwrap();
    v["spec"]["database"]["mode"] = json!("sqlite");
    assert!(serde_json::from_value::<Shop>(v).is_err());
}

#[test]
fn operator_side_validation_mirrors_cel() {
    assert!(validate::validate(&base_shop()).is_ok());
    let mut shop = base_shop();
    autoscale(&mut shop, 4, 2);
    let msg = validate::validate(&shop).unwrap_err();
    assert!(msg.contains("gateway.autoscaling"), "{msg}");
    let mut shop = base_shop();
    shop.spec.database.external = None;
    assert!(validate::validate(&shop).is_err());
    let mut shop = base_shop();
    shop.spec.ingress = Some(IngressSpec {
        host: "shop.example.com".into(),
        class_name: None,
        tls_secret_name: None,
        annotations: BTreeMap::new(),
        trusted_proxies: vec!["10.244.0.0/16".into(), "192.0.2.7".into()],
    });
    assert!(validate::validate(&shop).is_ok());
    shop.spec.ingress.as_mut().unwrap().trusted_proxies = vec!["10.244.0.0/33".into()];
    let msg = validate::validate(&shop).unwrap_err();
    assert!(msg.contains("ingress.trustedProxies"), "{msg}");
}

// ---------------------------------------------------------------- desired objects

#[test]
fn external_db_no_autoscaling_no_ingress() {
    let shop = base_shop();
    let c = desired(&shop, &inputs(DbBackend::External, rolled_plans("1.2.0")));
    let k = kinds(&c);
    assert_eq!(k["Deployment"], 6);
    assert_eq!(k["Service"], 6);
    assert_eq!(k["PodDisruptionBudget"], 6);
    assert_eq!(k["NetworkPolicy"], 7, "default deny + one per service");
    assert_eq!(
        k["Secret"], 2,
        "internal + JWT only: the URLs are the user's"
    );
    assert!(!k.contains_key("HorizontalPodAutoscaler"));
    assert!(!k.contains_key("Ingress"));
    assert!(!k.contains_key("StatefulSet"));
    assert!(
        !k.contains_key("Job"),
        "every service already runs the target"
    );

    let d: Deployment = parse(find(&c, "Deployment", "demo-order").unwrap());
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().unwrap();
    let ctr = &pod.containers[0];
    assert_eq!(ctr.image.as_deref(), Some("registry.example/souk:1.2.0"));
    assert_eq!(ctr.args, Some(vec!["serve".into(), "order".into()]));
    let log_format = ctr
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "SOUK_LOG_FORMAT");
    assert_eq!(
        log_format.and_then(|e| e.value.as_deref()),
        Some("json"),
        "pods log JSON for the log collector"
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(probe_path(&ctr.liveness_probe), "/healthz");
    assert_eq!(probe_path(&ctr.readiness_probe), "/readyz");
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let ru = spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(
        ru.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    let env = env_of(&d);
    assert_eq!(env["SOUK_LISTEN_ADDR"]["value"], "0.0.0.0:8080");
    assert_eq!(env["SOUK_OPS_ADDR"]["value"], "0.0.0.0:9090");
    let ports: Vec<_> = ctr
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(ports, [("http".to_owned(), 8080), ("ops".to_owned(), 9090)]);
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(env["SOUK_PRODUCT_URL"]["value"], "http://demo-product:8080");
    assert_eq!(
        env["DATABASE_URL"]["valueFrom"]["secretKeyRef"],
        json!({"name": "demo-db", "key": "order"})
    );
    assert_eq!(
        env["SOUK_INTERNAL_SECRET"]["valueFrom"]["secretKeyRef"]["name"],
        "demo-internal"
    );

    let gw: Deployment = parse(find(&c, "Deployment", "demo-gateway").unwrap());
    assert!(!env_of(&gw).contains_key("DATABASE_URL"));
    assert!(
        !env_of(&gw).contains_key("SOUK_TRUSTED_PROXIES"),
        "no ingress: no proxy to trust"
    );
    assert!(
        !env_of(&gw).contains_key("SOUK_STRIPE_PUBLISHABLE_KEY"),
        "no key: the storefront says payments are not set up"
    );
    let pay: Deployment = parse(find(&c, "Deployment", "demo-payment").unwrap());
    let env = env_of(&pay);
    assert_eq!(
        env["STRIPE_SECRET_KEY"]["valueFrom"]["secretKeyRef"],
        json!({"name": "stripe", "key": "secret-key"})
    );
    assert_eq!(env["SOUK_MAIL_FROM"]["value"], "shop@example.com");
    let user: Deployment = parse(find(&c, "Deployment", "demo-user").unwrap());
    assert_eq!(
        env_of(&user)["SOUK_JWT_PRIVATE_KEY"]["valueFrom"]["secretKeyRef"],
        json!({"name": "demo-jwt", "key": "private.pem"})
    );

    // Every child is owned by the Shop (garbage collection on delete) and labelled for watches.
    for child in &c {
        let owners = &child.body["metadata"]["ownerReferences"];
        assert_eq!(
            owners[0]["kind"],
            "Shop",
            "{} {}",
            child.kind(),
            child.name()
        );
        assert_eq!(owners[0]["controller"], true);
        assert_eq!(
            child.body["metadata"]["labels"][names::MANAGED_BY],
            "souk-operator"
        );
        assert!(child.body["apiVersion"].is_string());
    }
    let pdb = find(&c, "PodDisruptionBudget", "demo-cart").unwrap();
    assert_eq!(pdb.body["apiVersion"], "policy/v1");
    assert_eq!(pdb.body["spec"]["maxUnavailable"], 1);
}

#[test]
fn network_policies_admit_only_callers() {
    let shop = base_shop();
    let c = desired(&shop, &inputs(DbBackend::External, rolled_plans("1.2.0")));
    let np = |n: &str| -> NetworkPolicy { parse(find(&c, "NetworkPolicy", n).unwrap()) };
    let deny = np("demo-default-deny");
    let spec = deny.spec.unwrap();
    // Deny all: policy type Ingress and no rules, as no field (what the API server stores).
    assert_eq!(spec.ingress, None);
    assert_eq!(spec.policy_types, Some(vec!["Ingress".into()]));

    let callers = |n: &str| -> Vec<String> {
        let p = np(n).spec.unwrap();
        let rule = &p.ingress.unwrap()[0];
        rule.from.as_ref().unwrap()[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[0]
            .values
            .clone()
            .unwrap()
    };
    assert_eq!(callers("demo-product"), ["gateway", "cart", "order"]);
    assert_eq!(callers("demo-user"), ["gateway", "order"]);
    assert_eq!(callers("demo-order"), ["gateway", "cart", "payment"]);
    assert_eq!(callers("demo-payment"), ["gateway", "order"]);
    assert_eq!(callers("demo-cart"), ["gateway", "order"]);
    let gw = np("demo-gateway").spec.unwrap();
    let rules = gw.ingress.unwrap();
    assert!(rules[0].from.is_none(), "the gateway is open");
    // The ops port: pods of the cluster (Prometheus), nothing from outside.
    let ops = &rules[1];
    assert_eq!(
        ops.ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090))
    );
    let peer = &ops.from.as_ref().unwrap()[0];
    assert!(peer.namespace_selector.is_some() && peer.ip_block.is_none());
}

#[test]
fn managed_statefulset_autoscaling_ingress_with_tls() {
    let mut shop = base_shop();
    managed(&mut shop);
    autoscale(&mut shop, 2, 8);
    shop.spec.ingress = Some(IngressSpec {
        host: "shop.example.com".into(),
        class_name: Some("nginx".into()),
        tls_secret_name: Some("shop-tls".into()),
        annotations: BTreeMap::new(),
        trusted_proxies: vec!["10.244.0.0/16".into()],
    });
    let c = desired(
        &shop,
        &inputs(DbBackend::StatefulSet, rolled_plans("1.2.0")),
    );
    let k = kinds(&c);
    assert_eq!(k["StatefulSet"], 1);
    assert_eq!(k["ConfigMap"], 1);
    assert_eq!(k["HorizontalPodAutoscaler"], 1);
    assert_eq!(k["NetworkPolicy"], 8, "plus one for PostgreSQL");
    assert_eq!(k["Secret"], 4, "internal, JWT, credentials, URLs");
    assert!(!k.contains_key("Cluster"));

    let urls = find(&c, "Secret", "demo-database-urls").unwrap();
    let order_url = urls.body["data"]["order"].as_str().unwrap();
    let decoded = String::from_utf8(base64_decode(order_url)).unwrap();
    assert!(
        decoded.starts_with("postgres://souk_order:")
            && decoded.ends_with("@demo-postgres:5432/souk_order"),
        "{decoded}"
    );
    let d: Deployment = parse(find(&c, "Deployment", "demo-cart").unwrap());
    assert_eq!(
        env_of(&d)["DATABASE_URL"]["valueFrom"]["secretKeyRef"],
        json!({"name": "demo-database-urls", "key": "cart"})
    );

    let gw: Deployment = parse(find(&c, "Deployment", "demo-gateway").unwrap());
    assert_eq!(gw.spec.unwrap().replicas, None, "the HPA owns replicas");
    let hpa: HorizontalPodAutoscaler =
        parse(find(&c, "HorizontalPodAutoscaler", "demo-gateway").unwrap());
    let hs = hpa.spec.unwrap();
    assert_eq!((hs.min_replicas, hs.max_replicas), (Some(2), 8));
    assert_eq!(hs.target_cpu_utilization_percentage, Some(70));
    assert_eq!(hs.scale_target_ref.name, "demo-gateway");

    let ing: Ingress = parse(find(&c, "Ingress", "demo-gateway").unwrap());
    let is = ing.spec.unwrap();
    assert_eq!(is.ingress_class_name.as_deref(), Some("nginx"));
    let tls = is.tls.unwrap();
    assert_eq!(tls[0].secret_name.as_deref(), Some("shop-tls"));
    assert_eq!(tls[0].hosts, Some(vec!["shop.example.com".to_string()]));
    let backend = is.rules.unwrap()[0].http.as_ref().unwrap().paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(backend.name, "demo-gateway");
    assert_eq!(
        crate::network::gateway_url(&shop),
        "https://shop.example.com"
    );

    let creds = find(&c, "Secret", "demo-db-credentials").unwrap();
    assert_eq!(creds.body["metadata"]["ownerReferences"][0]["kind"], "Shop");
    let pg_np: NetworkPolicy = parse(find(&c, "NetworkPolicy", "demo-postgres").unwrap());
    let from = &pg_np.spec.unwrap().ingress.unwrap()[0];
    let allowed = from.from.as_ref().unwrap()[0]
        .pod_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0]
        .values
        .clone()
        .unwrap();
    assert!(allowed.contains(&"migrate".to_string()) && !allowed.contains(&"gateway".to_string()));
}

#[test]
fn no_telemetry_no_otel_variables() {
    let shop = base_shop();
    let c = desired(&shop, &inputs(DbBackend::External, rolled_plans("1.2.0")));
    for svc in Svc::ALL {
        let d: Deployment = parse(find(&c, "Deployment", &format!("demo-{}", svc.name())).unwrap());
        let otel: Vec<_> = env_of(&d)
            .into_keys()
            .filter(|name| name.starts_with("OTEL_"))
            .collect();
        assert!(otel.is_empty(), "{}: {otel:?}", svc.name());
    }
}

#[test]
fn telemetry_sets_the_otel_variables_of_every_service() {
    let mut shop = base_shop();
    shop.spec.telemetry = Some(TelemetrySpec {
        otlp_endpoint: "http://otel-collector.observability:4318".into(),
        sampler: Some(TraceSampler::ParentbasedTraceidratio),
        sampler_ratio: Some(0.25),
    });
    let c = desired(&shop, &inputs(DbBackend::External, rolled_plans("1.2.0")));
    for svc in Svc::ALL {
        let d: Deployment = parse(find(&c, "Deployment", &format!("demo-{}", svc.name())).unwrap());
        let env = env_of(&d);
        let value = |name: &str| env[name]["value"].as_str().unwrap().to_owned();
        assert_eq!(
            value("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "http://otel-collector.observability:4318"
        );
        assert_eq!(value("OTEL_SERVICE_NAME"), format!("souk-{}", svc.name()));
        assert_eq!(value("OTEL_RESOURCE_ATTRIBUTES"), "service.namespace=demo");
        assert_eq!(value("OTEL_TRACES_SAMPLER"), "parentbased_traceidratio");
        assert_eq!(value("OTEL_TRACES_SAMPLER_ARG"), "0.25");
    }
    // Migration Jobs only migrate: nothing to trace.
    let job = crate::objects::migration_job(&shop, Svc::Order, "1.2.0");
    let job_env = job.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert!(job_env.iter().all(|e| !e.name.starts_with("OTEL_")));

    // Without a sampler the services' default stands: no sampler variables.
    shop.spec.telemetry = Some(TelemetrySpec {
        otlp_endpoint: "http://127.0.0.1:4318".into(),
        sampler: None,
        sampler_ratio: None,
    });
    let d = crate::objects::deployment(&shop, Svc::Gateway, "1.2.0");
    let env = env_of(&d);
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"],
        "http://127.0.0.1:4318"
    );
    assert!(!env.contains_key("OTEL_TRACES_SAMPLER"));
    assert!(!env.contains_key("OTEL_TRACES_SAMPLER_ARG"));
}

#[test]
fn sampler_names_are_the_sdk_values() {
    for sampler in [
        TraceSampler::AlwaysOn,
        TraceSampler::AlwaysOff,
        TraceSampler::Traceidratio,
        TraceSampler::ParentbasedAlwaysOn,
        TraceSampler::ParentbasedAlwaysOff,
        TraceSampler::ParentbasedTraceidratio,
    ] {
        assert_eq!(
            serde_json::to_value(sampler).unwrap(),
            json!(sampler.as_str())
        );
        assert_eq!(
            sampler.takes_ratio(),
            sampler.as_str().ends_with("traceidratio")
        );
    }
}

#[test]
fn telemetry_schema_and_rules() {
    let t = &spec_schema()["properties"]["telemetry"];
    assert_eq!(t["required"], json!(["otlpEndpoint"]));
    assert_eq!(
        t["properties"]["sampler"]["enum"],
        json!([
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio"
        ])
    );
    assert_eq!(
        t["properties"]["samplerRatio"]["maximum"].as_f64(),
        Some(1.0)
    );
    let pattern = t["properties"]["otlpEndpoint"]["pattern"].as_str().unwrap();
    assert!(pattern.starts_with("^http://"), "{pattern}");

    let mut shop = base_shop();
    shop.spec.telemetry = Some(TelemetrySpec {
        otlp_endpoint: "http://collector:4318".into(),
        sampler: Some(TraceSampler::Traceidratio),
        sampler_ratio: Some(0.1),
    });
    assert!(Shop::validate_cel(&shop).is_ok());
    assert!(validate::validate(&shop).is_ok());
    for sampler in [None, Some(TraceSampler::ParentbasedAlwaysOn)] {
        shop.spec.telemetry.as_mut().unwrap().sampler = sampler;
        let err = Shop::validate_cel(&shop).unwrap_err().to_string();
        assert!(err.contains("samplerRatio needs sampler"), "{err}");
        let msg = validate::validate(&shop).unwrap_err();
        assert!(msg.contains("telemetry.samplerRatio"), "{msg}");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let v: k8s_openapi::ByteString = serde_json::from_value(json!(s)).unwrap();
    v.0
}

#[test]
fn ingress_without_tls_and_retained_credentials() {
    let mut shop = base_shop();
    managed(&mut shop);
    shop.spec
        .database
        .managed
        .as_mut()
        .unwrap()
        .retain_on_delete = true;
    shop.spec.ingress = Some(IngressSpec {
        host: "shop.local".into(),
        class_name: None,
        tls_secret_name: None,
        annotations: BTreeMap::from([("a/b".into(), "c".into())]),
        trusted_proxies: vec![],
    });
    shop.spec.stripe.publishable_key = Some("pk_test_123".into());
    shop.spec.stripe.js_url = Some("https://stripe.shop.local/v3/".into());
    let c = desired(
        &shop,
        &inputs(DbBackend::StatefulSet, rolled_plans("1.2.0")),
    );
    let ing: Ingress = parse(find(&c, "Ingress", "demo-gateway").unwrap());
    assert!(ing.spec.unwrap().tls.is_none());
    assert_eq!(ing.metadata.annotations.unwrap()["a/b"], "c");
    let gw: Deployment = parse(find(&c, "Deployment", "demo-gateway").unwrap());
    assert_eq!(
        env_of(&gw)["SOUK_TRUSTED_PROXIES"]["value"],
        "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
    );
    assert_eq!(env_of(&gw)["SOUK_HEADER_READ_TIMEOUT_MS"]["value"], "75000");
    assert_eq!(
        env_of(&gw)["SOUK_STRIPE_PUBLISHABLE_KEY"]["value"],
        "pk_test_123"
    );
    assert_eq!(
        env_of(&gw)["SOUK_STRIPE_JS_URL"]["value"],
        "https://stripe.shop.local/v3/"
    );
    assert_eq!(crate::network::gateway_url(&shop), "http://shop.local");
    let creds = find(&c, "Secret", "demo-db-credentials").unwrap();
    assert!(creds.body["metadata"]["ownerReferences"].is_null());
}

#[test]
fn managed_cloudnative_pg() {
    let mut shop = base_shop();
    managed(&mut shop);
    let c = desired(
        &shop,
        &inputs(DbBackend::CloudNativePg, rolled_plans("1.2.0")),
    );
    let k = kinds(&c);
    assert_eq!(k["Cluster"], 1);
    assert_eq!(k["Database"], 4);
    assert!(!k.contains_key("StatefulSet"));
    assert_eq!(k["NetworkPolicy"], 7, "CNPG pods are left to CNPG");
    let cluster = find(&c, "Cluster", "demo-postgres").unwrap();
    assert_eq!(cluster.resource.api_version, "postgresql.cnpg.io/v1");
    assert_eq!(
        cluster.body["spec"]["bootstrap"]["initdb"]["database"],
        "souk_user"
    );
    assert_eq!(
        cluster.body["spec"]["managed"]["roles"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let role = find(&c, "Secret", "demo-db-payment").unwrap();
    assert_eq!(role.body["type"], "kubernetes.io/basic-auth");
    let urls = find(&c, "Secret", "demo-database-urls").unwrap();
    let url =
        String::from_utf8(base64_decode(urls.body["data"]["user"].as_str().unwrap())).unwrap();
    assert!(url.contains("@demo-postgres-rw:5432/souk_user"), "{url}");
}

#[test]
fn v1beta1_pdbs_for_old_clusters() {
    let shop = base_shop();
    let mut i = inputs(DbBackend::External, rolled_plans("1.2.0"));
    i.pdb_api = PdbApi::V1beta1;
    let c = desired(&shop, &i);
    let pdb = find(&c, "PodDisruptionBudget", "demo-user").unwrap();
    assert_eq!(pdb.resource.api_version, "policy/v1beta1");
    assert_eq!(pdb.body["apiVersion"], "policy/v1beta1");
}

// ---------------------------------------------------------------- upgrade gating

#[test]
fn rollout_is_gated_on_the_migration_job() {
    // First install: no Deployment until the Job succeeds.
    let p = plan("2", None, &JobState::Missing);
    assert_eq!(
        (p.deploy_version, p.migration_job, p.stage),
        (None, true, Stage::Migrating)
    );
    let p = plan("2", None, &JobState::Succeeded);
    assert_eq!(p.deploy_version.as_deref(), Some("2"));
    // Upgrade: the old version keeps serving while the Job runs or after it failed.
    let p = plan("2", Some("1"), &JobState::Running);
    assert_eq!(p.deploy_version.as_deref(), Some("1"));
    let failed = JobState::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    };
    let p = plan("2", Some("1"), &failed);
    assert_eq!(p.deploy_version.as_deref(), Some("1"));
    assert!(
        matches!(p.stage, Stage::MigrationFailed { ref reason, .. } if reason == "BackoffLimitExceeded")
    );
    // Already there: no Job needed.
    let p = plan("2", Some("2"), &JobState::Missing);
    assert_eq!(
        (p.deploy_version.as_deref(), p.migration_job),
        (Some("2"), false)
    );
    // The gateway follows once all backends rolled.
    assert_eq!(
        plan_gateway("2", Some("1"), false)
            .deploy_version
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        plan_gateway("2", Some("1"), true).deploy_version.as_deref(),
        Some("2")
    );
    assert_eq!(plan_gateway("2", None, false).deploy_version, None);
}

#[test]
fn no_service_rolls_before_every_migration_succeeded() {
    let failed = JobState::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    };
    let backends = |product: JobState| -> BTreeMap<Svc, (Option<String>, JobState)> {
        Svc::BACKENDS
            .into_iter()
            .map(|s| {
                let job = if s == Svc::Product {
                    product.clone()
                } else {
                    JobState::Succeeded
                };
                (s, (Some("1".to_string()), job))
            })
            .collect()
    };
    let deployed = |plans: &BTreeMap<Svc, rollout::ServicePlan>| -> Vec<Option<String>> {
        Svc::ALL
            .iter()
            .map(|s| plans[s].deploy_version.clone())
            .collect()
    };
    let at = |v: &str| vec![Some(v.to_string()); Svc::ALL.len()];

    // Four Jobs succeeded, product's still runs: everything stays at 1, gateway included.
    let plans = rollout::plan_shop("2", &backends(JobState::Running), Some("1"));
    assert_eq!(deployed(&plans), at("1"));
    assert_eq!(plans[&Svc::User].stage, Stage::Migrated);
    assert_eq!(plans[&Svc::Product].stage, Stage::Migrating);
    assert_eq!(plans[&Svc::Gateway].stage, Stage::Migrated);
    assert!(Svc::BACKENDS.iter().all(|s| plans[s].migration_job));
    assert!(!plans[&Svc::Gateway].migration_job);

    // Product's failed: the whole Shop keeps serving 1 (no mix of 1 and 2).
    let plans = rollout::plan_shop("2", &backends(failed), Some("1"));
    assert_eq!(deployed(&plans), at("1"));
    assert!(matches!(
        plans[&Svc::Product].stage,
        Stage::MigrationFailed { .. }
    ));
    assert_eq!(plans[&Svc::Order].stage, Stage::Migrated);

    // All succeeded: every service, the gateway too, moves to 2.
    let plans = rollout::plan_shop("2", &backends(JobState::Succeeded), Some("1"));
    assert_eq!(deployed(&plans), at("2"));
    assert!(plans.values().all(|p| p.stage == Stage::Rolled));

    // First install: no Deployment at all until every migration succeeded.
    let mut first = backends(JobState::Running);
    first.values_mut().for_each(|b| b.0 = None);
    let plans = rollout::plan_shop("1", &first, None);
    assert_eq!(deployed(&plans), vec![None; Svc::ALL.len()]);

    // A service already at the target (its Job pruned) stays there while another migrates.
    let mut partly = backends(JobState::Running);
    partly.insert(Svc::Cart, (Some("2".into()), JobState::Missing));
    let plans = rollout::plan_shop("2", &partly, Some("1"));
    assert_eq!(plans[&Svc::Cart].deploy_version.as_deref(), Some("2"));
    assert_eq!(plans[&Svc::User].deploy_version.as_deref(), Some("1"));
}

#[test]
fn migration_job_per_service_and_version() {
    let shop = base_shop();
    let mut plans = rolled_plans("1.1.0");
    plans.insert(Svc::Order, plan("1.2.0", Some("1.1.0"), &JobState::Running));
    let c = desired(&shop, &inputs(DbBackend::External, plans));
    let jobs: Vec<&Child> = c.iter().filter(|c| c.kind() == "Job").collect();
    assert_eq!(jobs.len(), 1);
    let job: Job = parse(jobs[0]);
    assert_eq!(
        job.metadata.name.unwrap(),
        names::migration_job("demo", Svc::Order, "1.2.0")
    );
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(3));
    let ctr = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(ctr.args, Some(vec!["migrate".into(), "order".into()]));
    assert_eq!(ctr.image.as_deref(), Some("registry.example/souk:1.2.0"));
    let d: Deployment = parse(find(&c, "Deployment", "demo-order").unwrap());
    let img = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(
        img.as_deref(),
        Some("registry.example/souk:1.1.0"),
        "old version keeps serving"
    );
    assert_ne!(
        names::migration_job("demo", Svc::Order, "1.2.0"),
        names::migration_job("demo", Svc::Order, "1.2.1")
    );
    assert!(names::migration_job(&"x".repeat(30), Svc::Payment, "v").len() <= 63);
}

#[test]
fn job_state_reads_job_conditions() {
    let job = |t: &str, reason: &str| Job {
        status: Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: t.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some("m".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(rollout::job_state(None), JobState::Missing);
    assert_eq!(rollout::job_state(Some(&Job::default())), JobState::Running);
    assert_eq!(
        rollout::job_state(Some(&job("Complete", ""))),
        JobState::Succeeded
    );
    assert_eq!(
        rollout::job_state(Some(&job("Failed", "DeadlineExceeded"))),
        JobState::Failed {
            reason: "DeadlineExceeded".into(),
            message: "m".into()
        }
    );
}

// ---------------------------------------------------------------- status

fn ready_deployment(version: &str, replicas: i32, ready: i32) -> Deployment {
    let shop = base_shop();
    let mut d = crate::objects::deployment(&shop, Svc::User, version);
    d.metadata.generation = Some(1);
    d.spec = Some(DeploymentSpec {
        replicas: Some(replicas),
        ..d.spec.unwrap()
    });
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        ..Default::default()
    });
    d
}

fn cond<'a>(s: &'a ShopStatus, t: &str) -> (&'a str, &'a str, &'a str) {
    let c = status::find(Some(s), t).unwrap();
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn status_while_migrating_then_ready() {
    let shop = base_shop();
    let mut obs = Observation {
        stages: Svc::ALL.iter().map(|s| (*s, Stage::Migrating)).collect(),
        ..Default::default()
    };
    let st = status::compute(&shop, None, &obs);
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(cond(&st, "Ready").0, "False");
    assert_eq!(cond(&st, "Ready").1, "Migrating");
    assert_eq!(cond(&st, "Progressing").0, "True");
    assert_eq!(cond(&st, "Progressing").1, "Migrating");
    assert_eq!(cond(&st, "Degraded").0, "False");

    obs.stages = Svc::ALL.iter().map(|s| (*s, Stage::Rolled)).collect();
    obs.deployments = Svc::ALL
        .iter()
        .map(|s| (*s, ready_deployment("1.2.0", 2, 2)))
        .collect();
    obs.gateway_url = Some("http://x".into());
    let st2 = status::compute(&shop, Some(&st), &obs);
    assert_eq!(cond(&st2, "Ready").0, "True");
    assert_eq!(cond(&st2, "Progressing").1, "Stable");
    assert_eq!(st2.version.as_deref(), Some("1.2.0"));
    assert_eq!(st2.services["cart"].ready_replicas, 2);
    assert_eq!(st2.gateway_url.as_deref(), Some("http://x"));
    // Degraded did not change: its transition time is carried over.
    assert_eq!(
        status::find(Some(&st2), "Degraded")
            .unwrap()
            .last_transition_time,
        status::find(Some(&st), "Degraded")
            .unwrap()
            .last_transition_time
    );
}

#[test]
fn status_failed_migration_is_degraded_and_old_version_serves() {
    let mut shop = base_shop();
    shop.spec.version = "2.0.0".into();
    // Four migrations succeeded, payment's failed: every service still runs 1.2.0.
    let failed = JobState::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    };
    let backends = Svc::BACKENDS
        .into_iter()
        .map(|s| {
            let job = if s == Svc::Payment {
                failed.clone()
            } else {
                JobState::Succeeded
            };
            (s, (Some("1.2.0".to_string()), job))
        })
        .collect();
    let plans = rollout::plan_shop("2.0.0", &backends, Some("1.2.0"));
    let obs = Observation {
        stages: plans.iter().map(|(s, p)| (*s, p.stage.clone())).collect(),
        deployments: Svc::ALL
            .iter()
            .map(|s| (*s, ready_deployment("1.2.0", 1, 1)))
            .collect(),
        ..Default::default()
    };
    let prev = ShopStatus {
        version: Some("1.2.0".into()),
        ..Default::default()
    };
    let st = status::compute(&shop, Some(&prev), &obs);
    let (s, reason, msg) = cond(&st, "Degraded");
    assert_eq!((s, reason), ("True", "MigrationFailed"));
    assert!(
        msg.contains("payment") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    assert_eq!(st.version.as_deref(), Some("1.2.0"));
    assert_eq!(cond(&st, "Ready").0, "True", "the old version still serves");
    // Halted, not waiting: the gateway has nothing to migrate and must not count as Migrating.
    let (s, reason, _) = cond(&st, "Progressing");
    assert_eq!((s, reason), ("False", "MigrationFailed"));
}

#[test]
fn status_invalid_spec() {
    let shop = base_shop();
    let obs = Observation {
        invalid_spec: Some("bad".into()),
        ..Default::default()
    };
    let st = status::compute(&shop, None, &obs);
    assert_eq!(cond(&st, "Degraded"), ("True", "InvalidSpec", "bad"));
    assert!(st.conditions.iter().all(|c| !c.message.is_empty()));
    assert_eq!(cond(&st, "Ready").0, "False");
}

#[test]
fn status_not_ready_while_pods_start() {
    let shop = base_shop();
    let obs = Observation {
        stages: Svc::ALL.iter().map(|s| (*s, Stage::Rolled)).collect(),
        deployments: Svc::ALL
            .iter()
            .map(|s| (*s, ready_deployment("1.2.0", 2, 1)))
            .collect(),
        ..Default::default()
    };
    let st = status::compute(&shop, None, &obs);
    assert_eq!(cond(&st, "Ready").1, "ServicesNotReady");
    assert_eq!(cond(&st, "Progressing").1, "RollingOut");
}

// ---------------------------------------------------------------- secrets

#[test]
fn secrets_are_kept_once_made() {
    let first = secrets::internal_data(&BTreeMap::new());
    assert_eq!(first[secrets::INTERNAL_KEY].len(), 64, "32 bytes, hex");
    assert_eq!(secrets::internal_data(&first), first);

    let jwt = secrets::jwt_data(&BTreeMap::new());
    use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
    ed25519_dalek::SigningKey::from_pkcs8_pem(&jwt[secrets::JWT_PRIVATE_KEY]).unwrap();
    ed25519_dalek::VerifyingKey::from_public_key_pem(&jwt[secrets::JWT_PUBLIC_KEY]).unwrap();
    assert_eq!(secrets::jwt_data(&jwt), jwt);

    let mut pw = secrets::db_password_data(&BTreeMap::new());
    assert_eq!(pw.len(), 6);
    pw.remove("cart");
    let again = secrets::db_password_data(&pw);
    assert_eq!(again["user"], pw["user"], "existing passwords are kept");
    assert_eq!(again["cart"].len(), 48, "only the missing one is generated");
}

#[test]
fn backoff_grows_and_caps() {
    use crate::reconcile::backoff;
    let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn reconcile_metrics_render_for_prometheus() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    ::metrics::with_local_recorder(&recorder, || {
        crate::metrics::reconciled(true, std::time::Duration::from_millis(20));
        crate::metrics::reconciled(false, std::time::Duration::from_millis(5));
        crate::metrics::failed("api");
        crate::metrics::leader(true);
    });
    let text = handle.render();
    assert!(
        text.contains(r#"souk_operator_reconciles_total{result="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"souk_operator_reconciles_total{result="error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"souk_operator_reconcile_failures_total{error="api"} 1"#),
        "{text}"
    );
    assert!(text.contains("souk_operator_leader 1"), "{text}");
    assert!(
        text.contains("souk_operator_reconcile_duration_seconds"),
        "{text}"
    );
}
