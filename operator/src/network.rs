//! Ingress to the gateway and the NetworkPolicies: only the gateway is reachable from outside;
//! every other service admits only the gateway and the services that call it.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::Shop;
use crate::names::{self, HTTP_PORT, INSTANCE, OPS_PORT, PG_PORT, Svc};
use crate::objects::{meta, shop_name};

pub fn ingress(shop: &Shop) -> Option<Ingress> {
    let spec = shop.spec.ingress.as_ref()?;
    let name = shop_name(shop);
    let mut m = meta(shop, names::svc_object(&name, Svc::Gateway), "gateway");
    if !spec.annotations.is_empty() {
        m.annotations = Some(spec.annotations.clone());
    }
    Some(Ingress {
        metadata: m,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls: spec.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::svc_object(&name, Svc::Gateway),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    number: None,
                                }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Where the gateway answers: the Ingress host, or the in-cluster Service.
pub fn gateway_url(shop: &Shop) -> String {
    match &shop.spec.ingress {
        Some(i) if i.tls_secret_name.is_some() => format!("https://{}", i.host),
        Some(i) => format!("http://{}", i.host),
        None => format!(
            "http://{}.{}.svc:{HTTP_PORT}",
            names::svc_object(&shop_name(shop), Svc::Gateway),
            shop.metadata.namespace.as_deref().unwrap_or("default")
        ),
    }
}

fn tcp(port: i32) -> Vec<NetworkPolicyPort> {
    vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }]
}

fn components_of(shop: &str, components: Vec<String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(INSTANCE.to_string(), shop.to_string())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: names::COMPONENT.into(),
                operator: "In".into(),
                values: Some(components),
            }]),
        }),
        ..Default::default()
    }
}

fn policy(
    shop: &Shop,
    name: String,
    component: &str,
    selected: BTreeMap<String, String>,
    rules: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(shop, name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selected),
                ..Default::default()
            }),
            // No rules: no `ingress` field at all. The API server stores an empty list as an
            // absent field, so applying `ingress: []` would change the object on every
            // reconcile (and its watch event would start the next one).
            ingress: (!rules.is_empty()).then_some(rules),
            policy_types: Some(vec!["Ingress".into()]),
            ..Default::default()
        }),
    }
}

/// Default deny for every pod of the shop, then one allow-list per service (and one for the
/// StatefulSet PostgreSQL: only the services with a database and their migration Jobs).
/// CloudNativePG instances are left to CloudNativePG, whose operator must reach them.
pub fn network_policies(shop: &Shop, statefulset_db: bool) -> Vec<NetworkPolicy> {
    let name = shop_name(shop);
    let mut out = vec![policy(
        shop,
        format!("{name}-default-deny"),
        "network",
        BTreeMap::from([(INSTANCE.to_string(), name.clone())]),
        vec![],
    )];
    for svc in Svc::ALL {
        let rule = if svc == Svc::Gateway {
            // From anywhere: the Ingress controller, wherever it runs.
            NetworkPolicyIngressRule {
                from: None,
                ports: Some(tcp(HTTP_PORT)),
            }
        } else {
            NetworkPolicyIngressRule {
                from: Some(vec![components_of(
                    &name,
                    svc.callers().iter().map(|c| c.name().to_string()).collect(),
                )]),
                ports: Some(tcp(HTTP_PORT)),
            }
        };
        // The ops port (metrics) from any pod in the cluster, e.g. Prometheus; the Ingress
        // only ever routes to the API port.
        let ops = NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                ..Default::default()
            }]),
            ports: Some(tcp(OPS_PORT)),
        };
        out.push(policy(
            shop,
            names::svc_object(&name, svc),
            svc.name(),
            names::selector(&name, svc.name()),
            vec![rule, ops],
        ));
    }
    if statefulset_db {
        let mut clients: Vec<String> = Svc::BACKENDS.iter().map(|s| s.name().to_string()).collect();
        clients.push("migrate".into());
        out.push(policy(
            shop,
            names::postgres(&name),
            "postgres",
            names::selector(&name, "postgres"),
            vec![NetworkPolicyIngressRule {
                from: Some(vec![components_of(&name, clients)]),
                ports: Some(tcp(PG_PORT)),
            }],
        ));
    }
    out
}
