//! The controller: observe, build the desired state (pure, see [`crate::desired`]), apply it
//! with server-side apply under one field manager, prune what is no longer wanted, write status.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::crd::{SecretKeyRef, Shop, ShopStatus};
use crate::database::{self, CNPG_GROUP, CNPG_VERSION, DbBackend};
use crate::desired::{self, Child, Inputs};
use crate::metrics;
use crate::names::{self, FINALIZER, MANAGER, Svc};
use crate::network;
use crate::objects::{self, PdbApi};
use crate::rollout;
use crate::secrets;
use crate::status::{self, DEGRADED, Observation, READY};
use crate::validate;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("Shop has no namespace")]
    NoNamespace,
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace => "spec",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub pdb_api: PdbApi,
    pub recorder: Recorder,
    /// Consecutive failures per Shop, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, pdb_api: PdbApi, instance: Option<String>) -> Self {
        Self {
            client: client.clone(),
            pdb_api,
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: MANAGER.into(),
                    instance,
                },
            ),
            failures: Mutex::default(),
        }
    }
}

fn key(shop: &Shop) -> String {
    format!(
        "{}/{}",
        shop.namespace().unwrap_or_default(),
        shop.name_any()
    )
}

/// Requeue delay after `n` consecutive failures: 5 s, 10 s, 20 s … at most 5 minutes.
pub fn backoff(n: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << n.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

pub fn error_policy(shop: Arc<Shop>, err: &Error, ctx: Arc<Context>) -> Action {
    let n = {
        let mut f = ctx.failures.lock().expect("lock");
        let n = f.entry(key(&shop)).or_insert(0);
        *n += 1;
        *n
    };
    metrics::failed(err.kind());
    let delay = backoff(n);
    tracing::warn!(shop = %key(&shop), error = %err, attempt = n, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// One pass over a Shop; its span names the Shop in every log line of the pass.
#[tracing::instrument(skip_all, fields(shop = %key(&shop)))]
pub async fn reconcile(shop: Arc<Shop>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = shop.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Shop> = Api::namespaced(ctx.client.clone(), &ns);
    let k = key(&shop);
    let result = finalizer(&api, FINALIZER, shop, |event| async {
        match event {
            Finalizer::Apply(s) => apply(s, &ctx).await,
            Finalizer::Cleanup(s) => cleanup(s, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    metrics::reconciled(result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.failures.lock().expect("lock").remove(&k);
    }
    result
}

/// Whether the CloudNativePG `Cluster` and `Database` kinds are served.
pub async fn cnpg_installed(client: &Client) -> bool {
    match client
        .list_api_group_resources(&format!("{CNPG_GROUP}/{CNPG_VERSION}"))
        .await
    {
        Ok(list) => {
            let kinds: BTreeSet<&str> = list.resources.iter().map(|r| r.kind.as_str()).collect();
            kinds.contains("Cluster") && kinds.contains("Database")
        }
        Err(_) => false,
    }
}

/// `policy/v1` PodDisruptionBudgets when served (Kubernetes ≥ 1.21), else `policy/v1beta1`.
pub async fn pdb_api(client: &Client) -> PdbApi {
    match client.list_api_group_resources("policy/v1").await {
        Ok(list)
            if list
                .resources
                .iter()
                .any(|r| r.kind == "PodDisruptionBudget") =>
        {
            PdbApi::V1
        }
        _ => PdbApi::V1beta1,
    }
}

async fn apply_child(client: &Client, ns: &str, child: &Child) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &child.resource);
    api.patch(
        child.name(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&child.body),
    )
    .await?;
    Ok(())
}

async fn delete_if_exists<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Secret keys the spec refers to that do not exist (reported as `Degraded`/`SecretMissing`).
async fn missing_secret_keys(client: &Client, ns: &str, shop: &Shop) -> Result<Vec<String>, Error> {
    let mut refs: Vec<SecretKeyRef> = vec![
        shop.spec.stripe.secret_key.clone(),
        shop.spec.stripe.webhook_secret.clone(),
        shop.spec.smtp.url.clone(),
    ];
    if let Some(a) = &shop.spec.admin {
        refs.push(a.email.clone());
        refs.push(a.password.clone());
    }
    if let Some(ext) = &shop.spec.database.external
        && DbBackend::choose(shop, false) == DbBackend::External
    {
        for svc in Svc::BACKENDS {
            refs.push(SecretKeyRef {
                name: ext.secret_name.clone(),
                key: svc.name().into(),
            });
        }
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut cache: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut missing = vec![];
    for r in refs {
        if !cache.contains_key(&r.name) {
            cache.insert(r.name.clone(), api.get_opt(&r.name).await?);
        }
        let has = cache[&r.name]
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .is_some_and(|d| d.contains_key(&r.key));
        if !has {
            missing.push(format!("{}/{}", r.name, r.key));
        }
    }
    Ok(missing)
}

async fn publish(ctx: &Context, shop: &Shop, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &shop.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing event");
    }
}

/// Events for what changed between two statuses.
async fn publish_transitions(
    ctx: &Context,
    shop: &Shop,
    old: Option<&ShopStatus>,
    new: &ShopStatus,
) {
    let was = |t| status::find(old, t).map(|c| (c.status.clone(), c.reason.clone()));
    let now = |t| status::find(Some(new), t);
    if let Some(d) = now(DEGRADED)
        && d.status == "True"
        && was(DEGRADED) != Some((d.status.clone(), d.reason.clone()))
    {
        publish(ctx, shop, EventType::Warning, &d.reason, d.message.clone()).await;
    }
    if let Some(r) = now(READY)
        && r.status == "True"
        && was(READY).map(|w| w.0) != Some("True".into())
    {
        publish(ctx, shop, EventType::Normal, "Ready", r.message.clone()).await;
    }
    if new.version.is_some() && old.and_then(|o| o.version.clone()) != new.version {
        let v = new.version.clone().unwrap_or_default();
        publish(
            ctx,
            shop,
            EventType::Normal,
            "VersionRunning",
            format!("all services run {v}"),
        )
        .await;
    }
}

async fn write_status(ctx: &Context, shop: &Shop, status: ShopStatus) -> Result<(), Error> {
    if shop.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<Shop> = Api::namespaced(ctx.client.clone(), &shop.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": Shop::api_version(&()),
        "kind": Shop::kind(&()),
        "status": status,
    });
    api.patch_status(
        &shop.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    publish_transitions(ctx, shop, shop.status.as_ref(), &status).await;
    Ok(())
}

async fn apply(shop: Arc<Shop>, ctx: &Context) -> Result<Action, Error> {
    let client = &ctx.client;
    let ns = shop.namespace().ok_or(Error::NoNamespace)?;
    let name = shop.name_any();

    if let Err(msg) = validate::validate(&shop) {
        let obs = Observation {
            invalid_spec: Some(msg),
            ..Default::default()
        };
        let st = status::compute(&shop, shop.status.as_ref(), &obs);
        write_status(ctx, &shop, st).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    let backend = DbBackend::choose(&shop, cnpg_installed(client).await);
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let existing = |n: String| {
        let api = secrets_api.clone();
        async move {
            api.get_opt(&n)
                .await
                .map(|s| secrets::existing_data(s.as_ref()))
        }
    };
    let internal = secrets::internal_data(&existing(names::internal_secret(&name)).await?);
    let jwt = secrets::jwt_data(&existing(names::jwt_secret(&name)).await?);
    let db_passwords = if backend == DbBackend::External {
        None
    } else {
        Some(secrets::db_password_data(
            &existing(names::db_credentials(&name)).await?,
        ))
    };
    let missing_secrets = missing_secret_keys(client, &ns, &shop).await?;

    // Observe Deployments and migration Jobs.
    let selector = format!("{}={name},{}", names::INSTANCE, names::managed_selector());
    let lp = ListParams::default().labels(&selector);
    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let job_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let mut deployments = BTreeMap::new();
    for d in deploy_api.list(&lp).await? {
        let component = d
            .labels()
            .get(names::COMPONENT)
            .cloned()
            .unwrap_or_default();
        if let Some(svc) = Svc::from_name(&component) {
            deployments.insert(svc, d);
        }
    }
    let jobs: BTreeMap<String, Job> = job_api
        .list(&lp)
        .await?
        .into_iter()
        .map(|j| (j.name_any(), j))
        .collect();

    let target = shop.spec.version.clone();
    let mut backends = BTreeMap::new();
    for svc in Svc::BACKENDS {
        let current = deployments.get(&svc).and_then(rollout::deployed_version);
        let job_state = rollout::job_state(jobs.get(&names::migration_job(&name, svc, &target)));
        backends.insert(svc, (current, job_state));
    }
    let gateway_current = deployments
        .get(&Svc::Gateway)
        .and_then(rollout::deployed_version);
    let plans = rollout::plan_shop(&target, &backends, gateway_current.as_deref());

    let inputs = Inputs {
        backend,
        pdb_api: ctx.pdb_api,
        internal,
        jwt,
        db_passwords,
        plans: plans.clone(),
    };
    for child in desired::desired(&shop, &inputs) {
        // A Job's pod template is immutable: a migration Job is created once per version and
        // left alone afterwards.
        if child.kind() == "Job" && jobs.contains_key(child.name()) {
            continue;
        }
        if child.kind() == "Job" {
            publish(
                ctx,
                &shop,
                EventType::Normal,
                "MigrationStarted",
                format!("created Job {}", child.name()),
            )
            .await;
        }
        apply_child(client, &ns, &child).await?;
    }
    prune(ctx, &shop, &ns, &jobs, &target).await?;

    let obs = Observation {
        invalid_spec: None,
        missing_secrets,
        stages: plans.iter().map(|(s, p)| (*s, p.stage.clone())).collect(),
        deployments,
        gateway_url: Some(network::gateway_url(&shop)),
        database: Some(backend.as_str().into()),
    };
    let st = status::compute(&shop, shop.status.as_ref(), &obs);
    let settled = status::find(Some(&st), status::PROGRESSING).is_some_and(|c| c.status == "False");
    write_status(ctx, &shop, st).await?;
    Ok(Action::requeue(if settled {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(15)
    }))
}

/// Remove children the spec no longer asks for: HPAs when autoscaling is turned off, the
/// Ingress when it is removed, migration Jobs of other versions.
async fn prune(
    ctx: &Context,
    shop: &Shop,
    ns: &str,
    jobs: &BTreeMap<String, Job>,
    target: &str,
) -> Result<(), Error> {
    let name = shop.name_any();
    let hpa_api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
    for svc in Svc::ALL {
        if objects::hpa(shop, svc).is_none() {
            delete_if_exists(&hpa_api, &names::svc_object(&name, svc)).await?;
        }
    }
    if shop.spec.ingress.is_none() {
        let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), ns);
        delete_if_exists(&api, &names::svc_object(&name, Svc::Gateway)).await?;
    }
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    for (job_name, job) in jobs {
        let version = job.labels().get(names::VERSION_LABEL).map(String::as_str);
        if version.is_some_and(|v| v != target) {
            delete_if_exists(&job_api, job_name).await?;
        }
    }
    Ok(())
}

/// Deleting a Shop: children go with their owner references; the StatefulSet's volume claims
/// are owned by nothing, so the finalizer deletes them (unless `retainOnDelete`).
async fn cleanup(shop: Arc<Shop>, ctx: &Context) -> Result<Action, Error> {
    let ns = shop.namespace().ok_or(Error::NoNamespace)?;
    let name = shop.name_any();
    let managed = shop.spec.database.mode == crate::crd::DatabaseMode::Managed;
    if managed && !database::managed(&shop).retain_on_delete {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = format!(
            "{}={name},{}=postgres,{}",
            names::INSTANCE,
            names::COMPONENT,
            names::managed_selector()
        );
        let lp = ListParams::default().labels(&selector);
        for pvc in api.list(&lp).await? {
            delete_if_exists(&api, &pvc.name_any()).await?;
        }
        publish(
            ctx,
            &shop,
            EventType::Normal,
            "Cleanup",
            "deleted the database volumes".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Run the controller until `shutdown` resolves. `namespace` limits it to one namespace.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    instance: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let pdb_api = pdb_api(&client).await;
    let ctx = Arc::new(Context::new(client.clone(), pdb_api, instance));
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let wc = watcher::Config::default().labels(&names::managed_selector());
    let pdb_resource = desired::pdb_child(serde_json::Value::Null, pdb_api).resource;
    let pdbs: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &pdb_resource),
        None => Api::all_with(client.clone(), &pdb_resource),
    };
    Controller::new(api::<Shop>(&client, &namespace), watcher::Config::default())
        .owns(api::<Deployment>(&client, &namespace), wc.clone())
        .owns(api::<Job>(&client, &namespace), wc.clone())
        .owns(api::<Service>(&client, &namespace), wc.clone())
        .owns(api::<Secret>(&client, &namespace), wc.clone())
        .owns(api::<ConfigMap>(&client, &namespace), wc.clone())
        .owns(api::<StatefulSet>(&client, &namespace), wc.clone())
        .owns(
            api::<HorizontalPodAutoscaler>(&client, &namespace),
            wc.clone(),
        )
        .owns(api::<Ingress>(&client, &namespace), wc.clone())
        .owns(api::<NetworkPolicy>(&client, &namespace), wc.clone())
        .owns_with(pdbs, pdb_resource.clone(), wc.clone())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(shop = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}
