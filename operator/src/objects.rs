//! Pure builders of each service's workload objects: Deployment, migration Job, Service, HPA,
//! PodDisruptionBudget. Nothing here talks to the API server.

use souk_contract::env;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v1::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec as CoreServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde_json::{Value, json};

use crate::crd::{SecretKeyRef, ServiceSpec, Shop, TelemetrySpec};
use crate::names::{self, HTTP_PORT, OPS_PORT, Svc};
use crate::secrets;

/// Metadata of a child: namespace, labels and a controller owner reference to the Shop.
pub fn meta(shop: &Shop, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: shop.metadata.namespace.clone(),
        labels: Some(names::labels(&shop_name(shop), component)),
        owner_references: shop.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

pub fn shop_name(shop: &Shop) -> String {
    shop.metadata.name.clone().unwrap_or_default()
}

pub fn service_spec(shop: &Shop, svc: Svc) -> &ServiceSpec {
    let s = &shop.spec.services;
    match svc {
        Svc::User => &s.user,
        Svc::Product => &s.product,
        Svc::Cart => &s.cart,
        Svc::Order => &s.order,
        Svc::Payment => &s.payment,
        Svc::Gateway => &s.gateway,
    }
}

pub fn image(shop: &Shop, version: &str) -> String {
    format!("{}:{}", shop.spec.image, version)
}

/// Name of the Secret holding each service's `DATABASE_URL` (key = service name).
pub fn database_urls_secret(shop: &Shop) -> String {
    match &shop.spec.database.external {
        Some(ext) if shop.spec.database.mode == crate::crd::DatabaseMode::External => {
            ext.secret_name.clone()
        }
        _ => names::database_urls(&shop_name(shop)),
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_ref(name: &str, r: &SecretKeyRef) -> EnvVar {
    env_secret(name, &r.name, &r.key)
}

/// The environment contract of one service (see the platform contract in docs/kubernetes.md).
pub fn service_env(shop: &Shop, svc: Svc) -> Vec<EnvVar> {
    let name = shop_name(shop);
    let mut e = vec![
        env(env::LISTEN_ADDR, format!("0.0.0.0:{HTTP_PORT}")),
        env(env::OPS_ADDR, format!("0.0.0.0:{OPS_PORT}")),
        env("RUST_LOG", shop.spec.log_level.clone()),
        // One JSON object per line for the cluster's log collector, whatever the terminal.
        env(env::LOG_FORMAT, "json"),
        env_secret(
            env::INTERNAL_SECRET,
            &names::internal_secret(&name),
            secrets::INTERNAL_KEY,
        ),
    ];
    for other in Svc::ALL {
        if let Some(var) = other.url_env() {
            e.push(env(
                var,
                format!("http://{}:{HTTP_PORT}", names::svc_object(&name, other)),
            ));
        }
    }
    if svc.has_db() {
        e.push(env_secret(
            env::DATABASE_URL,
            &database_urls_secret(shop),
            svc.name(),
        ));
    }
    match svc {
        Svc::User => {
            e.push(env_secret(
                env::JWT_PRIVATE_KEY,
                &names::jwt_secret(&name),
                secrets::JWT_PRIVATE_KEY,
            ));
            if let Some(admin) = &shop.spec.admin {
                e.push(env_ref(env::ADMIN_EMAIL, &admin.email));
                e.push(env_ref(env::ADMIN_PASSWORD, &admin.password));
            }
        }
        Svc::Payment => {
            let s = &shop.spec.stripe;
            e.push(env_ref(env::STRIPE_SECRET_KEY, &s.secret_key));
            e.push(env_ref(env::STRIPE_WEBHOOK_SECRET, &s.webhook_secret));
            if let Some(base) = &s.api_base {
                e.push(env(env::STRIPE_API_BASE, base.clone()));
            }
            e.push(env_ref(env::SMTP_URL, &shop.spec.smtp.url));
            e.push(env(env::MAIL_FROM, shop.spec.smtp.from.clone()));
        }
        Svc::Gateway => {
            let s = &shop.spec.stripe;
            if let Some(key) = &s.publishable_key {
                e.push(env(env::STRIPE_PUBLISHABLE_KEY, key.clone()));
            }
            if let Some(url) = &s.js_url {
                e.push(env(env::STRIPE_JS_URL, url.clone()));
            }
            if let Some(ingress) = &shop.spec.ingress {
                e.push(env(
                    env::TRUSTED_PROXIES,
                    trusted_proxies(ingress).join(","),
                ));
                // The ingress controller reads clients' requests itself (with its own
                // timeouts) and keeps idle connections to the gateway for up to 60 s
                // (ingress-nginx's default); the gateway's idle limit must outlast that, or a
                // request races the close and gets 502.
                e.push(env(env::HEADER_READ_TIMEOUT_MS, "75000"));
            }
        }
        _ => {}
    }
    if let Some(telemetry) = &shop.spec.telemetry {
        e.extend(telemetry_env(telemetry, &name, svc));
    }
    e
}

/// The OpenTelemetry variables of a traced service: where to send spans, which to keep, and
/// the names its spans go by (`souk-<service>`, as `souk serve` names them, in the Shop's
/// `service.namespace`, so that two Shops sending to one collector stay apart).
fn telemetry_env(telemetry: &TelemetrySpec, shop: &str, svc: Svc) -> Vec<EnvVar> {
    let mut e = vec![
        env(env::OTLP_ENDPOINT, telemetry.otlp_endpoint.clone()),
        env(env::OTEL_SERVICE_NAME, format!("souk-{}", svc.name())),
        env(
            env::OTEL_RESOURCE_ATTRIBUTES,
            format!("service.namespace={shop}"),
        ),
    ];
    if let Some(sampler) = telemetry.sampler {
        e.push(env(env::TRACES_SAMPLER, sampler.as_str()));
    }
    if let Some(ratio) = telemetry.sampler_ratio {
        e.push(env(env::TRACES_SAMPLER_ARG, ratio.to_string()));
    }
    e
}

/// Where pod networks live unless the Shop says otherwise (`ingress.trustedProxies`).
pub const DEFAULT_TRUSTED_PROXIES: [&str; 4] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

fn trusted_proxies(ingress: &crate::crd::IngressSpec) -> Vec<String> {
    if ingress.trusted_proxies.is_empty() {
        DEFAULT_TRUSTED_PROXIES.map(String::from).to_vec()
    } else {
        ingress.trusted_proxies.clone()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("50m".into())),
            ("memory".into(), Quantity("64Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".into(),
            Quantity("256Mi".into()),
        )])),
        ..Default::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Non-root, no service-account token, RuntimeDefault seccomp, a writable /tmp only.
fn pod_spec(containers: Vec<Container>, restart: Option<&str>) -> PodSpec {
    PodSpec {
        containers,
        restart_policy: restart.map(Into::into),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volumes: Some(vec![Volume {
            name: "tmp".into(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn tmp_mount() -> Vec<VolumeMount> {
    vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }]
}

fn http_probe(path: &str, period: i32, failure: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// `souk serve <service>` at `version`, probed on `/healthz` and `/readyz`, rolled one pod at a
/// time with no loss of capacity. Replicas are left to the HPA when autoscaling is on.
pub fn deployment(shop: &Shop, svc: Svc, version: &str) -> Deployment {
    let name = shop_name(shop);
    let spec = service_spec(shop, svc);
    let mut pod_labels = names::labels(&name, svc.name());
    pod_labels.insert(names::VERSION_LABEL.into(), version.into());
    let mut m = meta(shop, names::svc_object(&name, svc), svc.name());
    if let Some(l) = m.labels.as_mut() {
        l.insert(names::VERSION_LABEL.into(), version.into());
    }
    let container = Container {
        name: svc.name().into(),
        image: Some(image(shop, version)),
        args: Some(vec!["serve".into(), svc.name().into()]),
        env: Some(service_env(shop, svc)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("ops".into()),
                container_port: OPS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(container_security()),
        volume_mounts: Some(tmp_mount()),
        ..Default::default()
    };
    Deployment {
        metadata: m,
        spec: Some(DeploymentSpec {
            replicas: spec.autoscaling.is_none().then_some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(names::selector(&name, svc.name())),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/scrape".into(), "true".into()),
                        ("prometheus.io/port".into(), OPS_PORT.to_string()),
                        ("prometheus.io/path".into(), "/metrics".into()),
                    ])),
                    ..Default::default()
                }),
                spec: Some(pod_spec(vec![container], None)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `souk migrate <service>` at `version`. Its success gates the service's rollout.
pub fn migration_job(shop: &Shop, svc: Svc, version: &str) -> Job {
    let name = shop_name(shop);
    let mut labels = names::labels(&name, "migrate");
    labels.insert(names::SERVICE_LABEL.into(), svc.name().into());
    labels.insert(names::VERSION_LABEL.into(), version.into());
    let mut m = meta(shop, names::migration_job(&name, svc, version), "migrate");
    m.labels = Some(labels.clone());
    let container = Container {
        name: "migrate".into(),
        image: Some(image(shop, version)),
        args: Some(vec!["migrate".into(), svc.name().into()]),
        env: Some(vec![
            env("RUST_LOG", shop.spec.log_level.clone()),
            env(env::LOG_FORMAT, "json"),
            env_secret(env::DATABASE_URL, &database_urls_secret(shop), svc.name()),
        ]),
        resources: Some(default_resources()),
        security_context: Some(container_security()),
        volume_mounts: Some(tmp_mount()),
        ..Default::default()
    };
    Job {
        metadata: m,
        spec: Some(JobSpec {
            backoff_limit: Some(shop.spec.migration.backoff_limit),
            active_deadline_seconds: Some(shop.spec.migration.active_deadline_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(vec![container], Some("Never"))),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn service(shop: &Shop, svc: Svc) -> Service {
    let name = shop_name(shop);
    Service {
        metadata: meta(shop, names::svc_object(&name, svc), svc.name()),
        spec: Some(CoreServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::selector(&name, svc.name())),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// autoscaling/v1 (CPU only, which is all the spec offers) is served by every Kubernetes
/// version this operator supports, from 1.20 to today.
pub fn hpa(shop: &Shop, svc: Svc) -> Option<HorizontalPodAutoscaler> {
    let a = service_spec(shop, svc).autoscaling.as_ref()?;
    let name = shop_name(shop);
    Some(HorizontalPodAutoscaler {
        metadata: meta(shop, names::svc_object(&name, svc), svc.name()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: names::svc_object(&name, svc),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            target_cpu_utilization_percentage: Some(a.target_cpu_utilization_percentage),
        }),
        ..Default::default()
    })
}

/// PodDisruptionBudget API served by the cluster: `policy/v1` from Kubernetes 1.21,
/// `policy/v1beta1` before (chosen once at start-up by discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PdbApi {
    V1,
    V1beta1,
}

impl PdbApi {
    pub fn api_version(self) -> &'static str {
        match self {
            PdbApi::V1 => "policy/v1",
            PdbApi::V1beta1 => "policy/v1beta1",
        }
    }
}

/// At most one pod of a service down at a time during voluntary disruptions (drains).
pub fn pdb(shop: &Shop, svc: Svc, api: PdbApi) -> Value {
    let name = shop_name(shop);
    json!({
        "apiVersion": api.api_version(),
        "kind": "PodDisruptionBudget",
        "metadata": meta(shop, names::svc_object(&name, svc), svc.name()),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names::selector(&name, svc.name())},
        },
    })
}
