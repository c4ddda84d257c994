//! The `Shop` custom resource (`souk.dev/v1alpha1`): Rust types are the source of truth;
//! `crds/shop.yaml` is generated from them (`souk-operator crd`).
//!
//! Validation lives in the schema: `minimum`/`maximum`/`enum`/`pattern` are enforced by every
//! API server; CEL rules (`x-kubernetes-validations`) are enforced from Kubernetes 1.25 on and are
//! re-checked by the operator itself (see [`crate::validate`]) so older servers still get a
//! `Degraded` condition instead of a broken rollout.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "souk.dev";
pub const VERSION: &str = "v1alpha1";

/// A whole Souk platform: six services, their databases, secrets and network.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "souk.dev",
    version = "v1alpha1",
    kind = "Shop",
    plural = "shops",
    namespaced,
    cel,
    validation = Rule::new("size(self.metadata.name) <= 30").message("a Shop name must be at most 30 characters"),
    status = "ShopStatus",
    category = "souk",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.gatewayUrl"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ShopSpec {
    /// Container image repository of the `souk` binary, without tag. Required: the project
    /// publishes no image; build one (`Dockerfile`, or `scripts/image/oci.py` without Docker) and
    /// push it where the cluster pulls from.
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
    /// Souk version to run: the image tag. Changing it runs each service's migration Job;
    /// no service rolls to the new version before all of them succeeded.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    pub version: String,
    /// `RUST_LOG` for every service.
    #[serde(default = "default_log")]
    pub log_level: String,
    /// Per-service settings; every service runs with defaults when omitted.
    #[serde(default)]
    pub services: Services,
    /// Where each service's PostgreSQL database lives.
    pub database: DatabaseSpec,
    /// Stripe credentials for the payment service.
    pub stripe: StripeSpec,
    /// Outgoing mail for the payment service.
    pub smtp: SmtpSpec,
    /// Initial administrator of the user service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSpec>,
    /// Public entry point: an Ingress to the gateway. Without it the gateway is only reachable
    /// inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Migration Jobs.
    #[serde(default)]
    pub migration: MigrationSpec,
    /// OpenTelemetry traces of every service, sent to a collector. Without it no service
    /// exports traces (and none pays for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
}

fn default_log() -> String {
    "info".into()
}

/// Settings of each of the six services.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    #[serde(default)]
    pub user: ServiceSpec,
    #[serde(default)]
    pub product: ServiceSpec,
    #[serde(default)]
    pub cart: ServiceSpec,
    #[serde(default)]
    pub order: ServiceSpec,
    #[serde(default)]
    pub payment: ServiceSpec,
    #[serde(default)]
    pub gateway: ServiceSpec,
}

/// Replicas, resources and autoscaling of one service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Replicas when autoscaling is off.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Container resources; defaults to a small request and a memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// HorizontalPodAutoscaler on CPU; when set, `replicas` is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

fn default_replicas() -> i32 {
    1
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            resources: None,
            autoscaling: None,
        }
    }
}

/// CPU-based horizontal autoscaling.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").reason(Reason::FieldValueInvalid)
)]
pub struct AutoscalingSpec {
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Target average CPU utilisation, percent of the CPU request.
    #[serde(default = "default_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu() -> i32 {
    80
}

/// `external`: a Secret with one PostgreSQL URL per service (keys `user`, `product`, `cart`,
/// `order`, `payment`). `managed`: the operator runs PostgreSQL for the shop (a CloudNativePG
/// `Cluster` when that operator is installed, otherwise a StatefulSet).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.mode != 'external' || has(self.external)").message("database.external is required when mode is external"),
    validation = Rule::new("self.mode != 'managed' || !has(self.external)").message("database.external must be empty when mode is managed")
)]
pub struct DatabaseSpec {
    pub mode: DatabaseMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseMode {
    External,
    Managed,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Secret in the Shop's namespace with keys `user`, `product`, `cart`, `order`, `payment`,
    /// each a `postgres://` URL.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    /// PostgreSQL image for the StatefulSet (ignored under CloudNativePG, which picks its own).
    #[serde(default = "default_pg_image")]
    pub image: String,
    /// Size of the data volume.
    #[serde(default = "default_storage")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?$"))]
    pub storage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// CloudNativePG instances (primary + replicas); the StatefulSet always runs one.
    #[serde(default = "default_instances")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// Keep the data volumes and database passwords when the Shop is deleted.
    #[serde(default)]
    pub retain_on_delete: bool,
}

impl Default for ManagedDatabase {
    fn default() -> Self {
        Self {
            image: default_pg_image(),
            storage: default_storage(),
            storage_class_name: None,
            instances: default_instances(),
            retain_on_delete: false,
        }
    }
}

fn default_pg_image() -> String {
    "postgres:17-alpine".into()
}
fn default_storage() -> String {
    "1Gi".into()
}
fn default_instances() -> i32 {
    1
}

/// A key of a Secret in the Shop's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StripeSpec {
    /// `STRIPE_SECRET_KEY`.
    pub secret_key: SecretKeyRef,
    /// `STRIPE_WEBHOOK_SECRET`.
    pub webhook_secret: SecretKeyRef,
    /// `STRIPE_API_BASE`, e.g. a Stripe emulator; Stripe itself when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// `SOUK_STRIPE_PUBLISHABLE_KEY` (`pk_…`, public by design) for the storefront's card
    /// form; without it the storefront says that payments are not set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub publishable_key: Option<String>,
    /// `SOUK_STRIPE_JS_URL`: where browsers load Stripe.js from (e.g. an emulator's stand-in);
    /// Stripe's own `https://js.stripe.com/v3/` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_url: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSpec {
    /// `SOUK_SMTP_URL`, e.g. `smtp://user:pass@host:587?tls=starttls` (STARTTLS required; `smtps://` for implicit TLS).
    pub url: SecretKeyRef,
    /// `SOUK_MAIL_FROM`.
    #[schemars(length(min = 3))]
    pub from: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    pub email: SecretKeyRef,
    pub password: SecretKeyRef,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Public host name of the shop.
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// IngressClass; the cluster default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// `kubernetes.io/tls` Secret for the host; plain HTTP when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Extra annotations on the Ingress (e.g. for cert-manager).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Networks (`10.0.0.0/8`) or addresses of the proxies in front of the gateway (the
    /// ingress controller's pods). The gateway takes the client's address from the right-most
    /// `X-Forwarded-For` entry outside them. Default: the private ranges pod networks use
    /// (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7); narrow it to the controller's
    /// pod network when other pods could reach the gateway directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub trusted_proxies: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// Retries of a failing migration Job before the upgrade is reported `Degraded`.
    #[serde(default = "default_backoff")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: i32,
    /// Seconds a migration Job may run in all.
    #[serde(default = "default_deadline")]
    #[schemars(range(min = 30))]
    pub active_deadline_seconds: i64,
}

fn default_backoff() -> i32 {
    3
}
fn default_deadline() -> i64 {
    600
}

impl Default for MigrationSpec {
    fn default() -> Self {
        Self {
            backoff_limit: default_backoff(),
            active_deadline_seconds: default_deadline(),
        }
    }
}

/// Where and which traces the services export (the standard `OTEL_*` variables).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.samplerRatio) || (has(self.sampler) && self.sampler.endsWith('traceidratio'))").message("telemetry.samplerRatio needs sampler traceidratio or parentbased_traceidratio").reason(Reason::FieldValueInvalid)
)]
pub struct TelemetrySpec {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: an OpenTelemetry collector's OTLP/HTTP address, e.g.
    /// `http://otel-collector.observability:4318` (`/v1/traces` is appended). Plain `http`
    /// only: the services refuse `https` at start.
    #[schemars(regex(pattern = r"^http://[^\s/?#]+(/\S*)?$"))]
    #[schemars(length(min = 8, max = 2048))]
    pub otlp_endpoint: String,
    /// `OTEL_TRACES_SAMPLER`; parent-based, always on when omitted.
    // Described as the enum itself: optional by `serde(default)`, without the `null` member
    // schemars would add to the enum for an Option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "TraceSampler")]
    pub sampler: Option<TraceSampler>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the share of traces a `traceidratio` sampler keeps (1 when
    /// omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampler_ratio: Option<f64>,
}

/// The samplers of the OpenTelemetry specification that the services' SDK implements.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    Traceidratio,
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    ParentbasedTraceidratio,
}

impl TraceSampler {
    /// The value of `OTEL_TRACES_SAMPLER`.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceSampler::AlwaysOn => "always_on",
            TraceSampler::AlwaysOff => "always_off",
            TraceSampler::Traceidratio => "traceidratio",
            TraceSampler::ParentbasedAlwaysOn => "parentbased_always_on",
            TraceSampler::ParentbasedAlwaysOff => "parentbased_always_off",
            TraceSampler::ParentbasedTraceidratio => "parentbased_traceidratio",
        }
    }

    /// Whether it takes a ratio (`samplerRatio`).
    pub fn takes_ratio(self) -> bool {
        matches!(
            self,
            TraceSampler::Traceidratio | TraceSampler::ParentbasedTraceidratio
        )
    }
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShopStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Per service: ready replicas and the version it runs.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceStatus>,
    /// The version every service runs, once they all agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// URL of the gateway (the Ingress when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    /// `external`, `statefulset` or `cloudnative-pg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub replicas: i32,
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The CRD as YAML, exactly what `crds/shop.yaml` holds.
pub fn crd_yaml() -> String {
    let crd = Shop::crd();
    format!(
        "# Generated from operator/src/crd.rs by `cargo run -p souk-operator -- crd`; do not edit.\n{}",
        serde_yaml::to_string(&crd).expect("CRD serializes")
    )
}
