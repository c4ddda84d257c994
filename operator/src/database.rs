//! Managed PostgreSQL for a shop: one database and one role per service, either in a
//! CloudNativePG `Cluster` (when that CRD is installed) or in a one-instance StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret, SecretKeySelector,
    SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use crate::crd::{DatabaseMode, ManagedDatabase, Shop};
use crate::names::{self, PG_PORT, Svc};
use crate::objects::{meta, shop_name};
use crate::secrets::{self, PG_SUPERUSER_KEY};

pub const CNPG_GROUP: &str = "postgresql.cnpg.io";
pub const CNPG_VERSION: &str = "v1";

/// Where a shop's databases live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbBackend {
    External,
    StatefulSet,
    CloudNativePg,
}

impl DbBackend {
    pub fn choose(shop: &Shop, cnpg_installed: bool) -> DbBackend {
        match shop.spec.database.mode {
            DatabaseMode::External => DbBackend::External,
            DatabaseMode::Managed if cnpg_installed => DbBackend::CloudNativePg,
            DatabaseMode::Managed => DbBackend::StatefulSet,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DbBackend::External => "external",
            DbBackend::StatefulSet => "statefulset",
            DbBackend::CloudNativePg => "cloudnative-pg",
        }
    }
}

pub fn managed(shop: &Shop) -> ManagedDatabase {
    shop.spec.database.managed.clone().unwrap_or_default()
}

/// Host name of the read-write endpoint.
pub fn host(shop: &Shop, backend: DbBackend) -> String {
    let pg = names::postgres(&shop_name(shop));
    match backend {
        DbBackend::CloudNativePg => format!("{pg}-rw"),
        _ => pg,
    }
}

/// `DATABASE_URL` of every service, from the generated passwords.
pub fn urls(
    shop: &Shop,
    backend: DbBackend,
    passwords: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let host = host(shop, backend);
    Svc::BACKENDS
        .iter()
        .map(|svc| {
            let db = names::db_name(*svc);
            let pw = passwords.get(svc.name()).cloned().unwrap_or_default();
            (
                svc.name().to_string(),
                format!("postgres://{db}:{pw}@{host}:{PG_PORT}/{db}"),
            )
        })
        .collect()
}

/// Database passwords outlive the Shop when `retainOnDelete` is set (with the data volumes).
pub fn credentials_secret(shop: &Shop, passwords: &BTreeMap<String, String>) -> Secret {
    let owned = !managed(shop).retain_on_delete;
    secrets::secret(
        shop,
        names::db_credentials(&shop_name(shop)),
        "postgres",
        passwords,
        owned,
    )
}

pub fn urls_secret(shop: &Shop, urls: &BTreeMap<String, String>) -> Secret {
    secrets::secret(
        shop,
        names::database_urls(&shop_name(shop)),
        "postgres",
        urls,
        true,
    )
}

/// Creates one role and one database per service on first start of an empty data directory.
pub const INITDB_SCRIPT: &str = r#"#!/bin/sh
set -eu
for svc in user product cart order payment; do
  pw="$(cat "/souk-credentials/$svc")"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE souk_$svc LOGIN PASSWORD '$pw';
CREATE DATABASE souk_$svc OWNER souk_$svc;
SQL
done
"#;

fn pg_selector(shop: &Shop) -> BTreeMap<String, String> {
    names::selector(&shop_name(shop), "postgres")
}

pub fn statefulset_objects(shop: &Shop) -> (ConfigMap, Service, StatefulSet) {
    let name = shop_name(shop);
    let pg = names::postgres(&name);
    let m = managed(shop);
    let cm = ConfigMap {
        metadata: meta(shop, format!("{pg}-init"), "postgres"),
        data: Some(BTreeMap::from([(
            "10-souk.sh".to_string(),
            INITDB_SCRIPT.to_string(),
        )])),
        ..Default::default()
    };
    let svc = Service {
        metadata: meta(shop, pg.clone(), "postgres"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(pg_selector(shop)),
            ports: Some(vec![ServicePort {
                name: Some("postgres".into()),
                port: PG_PORT,
                target_port: Some(IntOrString::Int(PG_PORT)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pg_ready = Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "pg_isready".into(),
                "-U".into(),
                "postgres".into(),
                "-h".into(),
                "127.0.0.1".into(),
            ]),
        }),
        period_seconds: Some(5),
        ..Default::default()
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(m.image.clone()),
        env: Some(vec![
            EnvVar {
                name: "POSTGRES_PASSWORD".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: names::db_credentials(&name),
                        key: PG_SUPERUSER_KEY.into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            EnvVar {
                name: "PGDATA".into(),
                value: Some("/var/lib/postgresql/data/pgdata".into()),
                ..Default::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: PG_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(pg_ready.clone()),
        liveness_probe: Some(Probe {
            failure_threshold: Some(6),
            period_seconds: Some(10),
            ..pg_ready
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/var/lib/postgresql/data".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "init".into(),
                mount_path: "/docker-entrypoint-initdb.d".into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "credentials".into(),
                mount_path: "/souk-credentials".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let sts = StatefulSet {
        metadata: meta(shop, pg.clone(), "postgres"),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(pg.clone()),
            selector: LabelSelector {
                match_labels: Some(pg_selector(shop)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::labels(&name, "postgres")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        // The official image's postgres user.
                        run_as_user: Some(999),
                        run_as_group: Some(999),
                        fs_group: Some(999),
                        run_as_non_root: Some(true),
                        ..Default::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "init".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: format!("{pg}-init"),
                                default_mode: Some(0o555),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "credentials".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(names::db_credentials(&name)),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    // PVCs are not owned by anything: the Shop's finalizer deletes them.
                    labels: Some(names::labels(&name, "postgres")),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: m.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".into(),
                            Quantity(m.storage.clone()),
                        )])),
                        ..Default::default()
                    }),
                    // The API server's default, written out: see `claim_templates_as_stored`.
                    volume_mode: Some("Filesystem".into()),
                    ..Default::default()
                }),
                status: Some(PersistentVolumeClaimStatus {
                    phase: Some("Pending".into()),
                    ..Default::default()
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    (cm, svc, sts)
}

/// The claim templates of a StatefulSet body as the API server stores them. They form one
/// atomic list, so a template that differs in any way from the stored one (which carries the
/// defaults `volumeMode`, `status.phase` and `metadata.creationTimestamp: null`) makes every
/// server-side apply a write, whose watch event starts the next reconcile.
pub fn claim_templates_as_stored(body: &mut serde_json::Value) {
    if let Some(templates) = body["spec"]["volumeClaimTemplates"].as_array_mut() {
        for t in templates {
            t["metadata"]["creationTimestamp"] = serde_json::Value::Null;
        }
    }
}

/// `kubernetes.io/basic-auth` Secret per role, the form CloudNativePG reads passwords in.
pub fn cnpg_role_secrets(shop: &Shop, passwords: &BTreeMap<String, String>) -> Vec<Secret> {
    let name = shop_name(shop);
    Svc::BACKENDS
        .iter()
        .map(|svc| {
            let mut s = secrets::secret(
                shop,
                names::cnpg_role_secret(&name, *svc),
                "postgres",
                &BTreeMap::new(),
                true,
            );
            s.type_ = Some("kubernetes.io/basic-auth".into());
            s.data = Some(BTreeMap::from([
                (
                    "username".into(),
                    ByteString(names::db_name(*svc).into_bytes()),
                ),
                (
                    "password".into(),
                    ByteString(
                        passwords
                            .get(svc.name())
                            .cloned()
                            .unwrap_or_default()
                            .into_bytes(),
                    ),
                ),
            ]));
            s
        })
        .collect()
}

/// A CloudNativePG `Cluster` whose bootstrap creates the user service's database and whose
/// managed roles are the other services' owners; their databases are `Database` objects.
pub fn cnpg_cluster(shop: &Shop) -> Value {
    let name = shop_name(shop);
    let m = managed(shop);
    let roles: Vec<Value> = Svc::BACKENDS[1..]
        .iter()
        .map(|svc| {
            json!({
                "name": names::db_name(*svc),
                "ensure": "present",
                "login": true,
                "passwordSecret": {"name": names::cnpg_role_secret(&name, *svc)},
            })
        })
        .collect();
    let mut storage = json!({"size": m.storage});
    if let Some(class) = &m.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    json!({
        "apiVersion": format!("{CNPG_GROUP}/{CNPG_VERSION}"),
        "kind": "Cluster",
        "metadata": meta(shop, names::postgres(&name), "postgres"),
        "spec": {
            "instances": m.instances,
            "storage": storage,
            "bootstrap": {"initdb": {
                "database": names::db_name(Svc::User),
                "owner": names::db_name(Svc::User),
                "secret": {"name": names::cnpg_role_secret(&name, Svc::User)},
            }},
            "managed": {"roles": roles},
        },
    })
}

pub fn cnpg_databases(shop: &Shop) -> Vec<Value> {
    let name = shop_name(shop);
    Svc::BACKENDS[1..]
        .iter()
        .map(|svc| {
            json!({
                "apiVersion": format!("{CNPG_GROUP}/{CNPG_VERSION}"),
                "kind": "Database",
                "metadata": meta(shop, format!("{}-{}", names::postgres(&name), svc.name()), "postgres"),
                "spec": {
                    "name": names::db_name(*svc),
                    "owner": names::db_name(*svc),
                    "cluster": {"name": names::postgres(&name)},
                },
            })
        })
        .collect()
}
