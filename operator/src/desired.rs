//! Everything a Shop should have, as one pure function of the Shop and a few observed facts
//! (which database backend and PDB API the cluster offers, the existing secret data, and each
//! service's rollout plan).

use std::collections::BTreeMap;

use kube::Resource;
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde_json::Value;

use crate::crd::Shop;
use crate::database::{self, CNPG_GROUP, CNPG_VERSION, DbBackend};
use crate::names::Svc;
use crate::network;
use crate::objects::{self, PdbApi};
use crate::rollout::ServicePlan;
use crate::secrets;

/// One object to apply: its API resource and its full body.
#[derive(Clone, Debug)]
pub struct Child {
    pub resource: ApiResource,
    pub body: Value,
}

impl Child {
    pub fn typed<K>(obj: &K) -> Child
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut body = serde_json::to_value(obj).expect("object serializes");
        body["apiVersion"] = Value::String(resource.api_version.clone());
        body["kind"] = Value::String(resource.kind.clone());
        Child { resource, body }
    }

    pub fn dynamic(group: &str, version: &str, kind: &str, plural: &str, body: Value) -> Child {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Child {
            resource: ApiResource::from_gvk_with_plural(&gvk, plural),
            body,
        }
    }

    pub fn kind(&self) -> &str {
        &self.resource.kind
    }

    pub fn name(&self) -> &str {
        self.body["metadata"]["name"].as_str().unwrap_or_default()
    }
}

pub fn pdb_child(body: Value, api: PdbApi) -> Child {
    let version = match api {
        PdbApi::V1 => "v1",
        PdbApi::V1beta1 => "v1beta1",
    };
    Child::dynamic(
        "policy",
        version,
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        body,
    )
}

/// Facts the reconciler gathered before building the desired state.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub backend: DbBackend,
    pub pdb_api: PdbApi,
    /// Data of the internal-secret and JWT Secrets (existing keys kept, missing ones generated).
    pub internal: BTreeMap<String, String>,
    pub jwt: BTreeMap<String, String>,
    /// Passwords of the managed database (managed mode only).
    pub db_passwords: Option<BTreeMap<String, String>>,
    pub plans: BTreeMap<Svc, ServicePlan>,
}

/// The desired children, in apply order: secrets and database first, then migration Jobs,
/// then the workloads and the network around them.
pub fn desired(shop: &Shop, inputs: &Inputs) -> Vec<Child> {
    let mut out = vec![
        Child::typed(&secrets::internal_secret(shop, &inputs.internal)),
        Child::typed(&secrets::jwt_secret(shop, &inputs.jwt)),
    ];
    if let Some(pw) = &inputs.db_passwords {
        out.push(Child::typed(&database::credentials_secret(shop, pw)));
        let urls = database::urls(shop, inputs.backend, pw);
        out.push(Child::typed(&database::urls_secret(shop, &urls)));
        match inputs.backend {
            DbBackend::StatefulSet => {
                let (cm, svc, sts) = database::statefulset_objects(shop);
                out.push(Child::typed(&cm));
                out.push(Child::typed(&svc));
                let mut sts = Child::typed(&sts);
                database::claim_templates_as_stored(&mut sts.body);
                out.push(sts);
            }
            DbBackend::CloudNativePg => {
                for s in database::cnpg_role_secrets(shop, pw) {
                    out.push(Child::typed(&s));
                }
                out.push(Child::dynamic(
                    CNPG_GROUP,
                    CNPG_VERSION,
                    "Cluster",
                    "clusters",
                    database::cnpg_cluster(shop),
                ));
                for db in database::cnpg_databases(shop) {
                    out.push(Child::dynamic(
                        CNPG_GROUP,
                        CNPG_VERSION,
                        "Database",
                        "databases",
                        db,
                    ));
                }
            }
            DbBackend::External => {}
        }
    }
    for svc in Svc::ALL {
        let Some(plan) = inputs.plans.get(&svc) else {
            continue;
        };
        if plan.migration_job {
            out.push(Child::typed(&objects::migration_job(
                shop,
                svc,
                &shop.spec.version,
            )));
        }
        out.push(Child::typed(&objects::service(shop, svc)));
        if let Some(v) = &plan.deploy_version {
            out.push(Child::typed(&objects::deployment(shop, svc, v)));
        }
        if let Some(h) = objects::hpa(shop, svc) {
            out.push(Child::typed(&h));
        }
        out.push(pdb_child(
            objects::pdb(shop, svc, inputs.pdb_api),
            inputs.pdb_api,
        ));
    }
    if let Some(i) = network::ingress(shop) {
        out.push(Child::typed(&i));
    }
    for np in network::network_policies(shop, inputs.backend == DbBackend::StatefulSet) {
        out.push(Child::typed(&np));
    }
    out
}
