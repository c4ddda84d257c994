use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use souk_operator::{crd, leader::LeaderElector, metrics, reconcile};

#[derive(Parser)]
#[command(
    name = "souk-operator",
    about = "Reconciles Shop resources into running Souk platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Shop CustomResourceDefinition (what crds/shop.yaml holds).
    Crd,
    /// Run the controller (the default).
    Run(RunArgs),
}

#[derive(Parser)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "SOUK_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (all namespaces when empty).
    #[arg(long, env = "SOUK_OPERATOR_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Turn leader election off (only with a single replica).
    #[arg(long, env = "SOUK_OPERATOR_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "souk-system")]
    lease_namespace: String,
    #[arg(long, default_value = "souk-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

// One thread is plenty for an I/O-bound controller, and it is the runtime the tests use.
#[tokio::main(flavor = "current_thread")]
#[allow(
    clippy::print_stdout,
    reason = "`souk-operator crd` prints the CRD to apply"
)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            print!("{}", crd::crd_yaml());
            Ok(())
        }
        Some(Command::Run(args)) => run(args).await,
        None => run(RunArgs::parse_from(["souk-operator"])).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let handle = metrics::install()?;
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(metrics::serve(args.metrics_addr, handle, ready.clone()));

    let client = kube::Client::try_default().await?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("souk-operator-{}", souk_operator::secrets::random_hex(4)));
    ready.store(true, Ordering::Relaxed);

    let lost = if args.no_leader_election {
        None
    } else {
        let elector = LeaderElector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            Duration::from_secs(15),
        );
        tracing::info!(identity, "waiting for the leader lease");
        metrics::leader(false);
        elector.acquire(Duration::from_secs(2)).await;
        metrics::leader(true);
        tracing::info!(identity, "leading");
        Some(elector)
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    let controller = reconcile::run(
        client,
        args.watch_namespace.clone(),
        Some(identity),
        async {
            let _ = stop_rx.await;
        },
    );
    tokio::pin!(controller);
    let keep = async {
        match &lost {
            Some(e) => e.keep(Duration::from_secs(5)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(keep);
    let mut lost_lease = false;
    tokio::select! {
        _ = &mut controller => {}
        _ = &mut keep => {
            tracing::error!("lost the leader lease; stopping");
            lost_lease = true;
            if let Some(tx) = stop_tx.take() { let _ = tx.send(()); }
            controller.await;
        }
        _ = shutdown_signal() => {
            if let Some(tx) = stop_tx.take() { let _ = tx.send(()); }
            controller.await;
        }
    }
    if let Some(e) = &lost {
        if !lost_lease {
            let _ = tokio::time::timeout(Duration::from_secs(3), e.step_down()).await;
        }
        metrics::leader(false);
    }
    if lost_lease {
        std::process::exit(1);
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
