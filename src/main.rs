//! `souk`: run the platform locally, run one service, migrate, or make an admin.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line talks to its user"
)]

use souk_contract::env;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use souk::platform::{PlatformOptions, RunningPlatform};
use souk::{SERVICES, local_db, migrator};
use souk_common::{db, server, settings, telemetry};

#[derive(Parser)]
#[command(name = "souk", version, about = "Souk e-commerce platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start all six services locally; prints the gateway's URL once everything is ready.
    Up {
        /// Fill an empty shop with a demo catalog, a demo shopper and (without
        /// SOUK_ADMIN_EMAIL/SOUK_ADMIN_PASSWORD) a demo admin.
        #[arg(long)]
        demo: bool,
    },
    /// Run one service (what a container runs), configured from the environment.
    Serve { service: String },
    /// Run one service's database migrations against DATABASE_URL.
    Migrate { service: String },
    /// GET a URL and exit 0 on a 2xx answer: a health check for images without a shell
    /// (the chart's `helm test`, a container HEALTHCHECK).
    Probe {
        url: String,
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// Print the public API's OpenAPI document (what the gateway serves at /openapi.json).
    Openapi,
    /// Administer accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account with this password (DATABASE_URL: the user service's database).
    /// An existing account is never promoted by this: see `promote`.
    Create {
        #[arg(long)]
        email: String,
        /// Falls back to SOUK_ADMIN_PASSWORD so the password need not appear in shell history.
        #[arg(long, env = env::ADMIN_PASSWORD, hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "Admin")]
        name: String,
    },
    /// Make an existing account an admin; it keeps its own password.
    Promote {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Traces for what serves (`souk up` is one process, so one service name); the one-shot
    // commands only log.
    let traced = match &cli.command {
        Command::Up { .. } => Some("souk".to_owned()),
        Command::Serve { service } => Some(format!("souk-{service}")),
        _ => None,
    };
    let _telemetry = match traced {
        Some(service_name) => match telemetry::init(&service_name) {
            Ok(telemetry) => Some(telemetry),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            telemetry::init_logs(telemetry::DEFAULT_FILTER);
            None
        }
    };
    let result = match cli.command {
        Command::Up { demo } => up(demo).await,
        Command::Serve { service } => serve(&service).await,
        Command::Migrate { service } => migrate(&service).await,
        Command::Probe { url, timeout_secs } => probe(&url, timeout_secs).await,
        Command::Openapi => print_openapi(),
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    password,
                    name,
                },
        } => admin_create(&email, &password, &name).await,
        Command::Admin {
            command: AdminCommand::Promote { email },
        } => admin_promote(&email).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_service(service: &str) -> anyhow::Result<()> {
    if SERVICES.contains(&service) {
        Ok(())
    } else {
        anyhow::bail!(
            "unknown service {service:?}; one of: {}",
            SERVICES.join(", ")
        )
    }
}

async fn serve(service: &str) -> anyhow::Result<()> {
    check_service(service)?;
    let addr = settings::listen_addr()?;
    let app = match service {
        "user" => souk_user::app(souk_user::Config::from_env()?).await?,
        "product" => souk_product::app(souk_product::Config::from_env()?).await?,
        "cart" => souk_cart::app(souk_cart::Config::from_env()?).await?,
        "order" => souk_order::app(souk_order::Config::from_env()?).await?,
        "payment" => souk_payment::app(souk_payment::Config::from_env()?).await?,
        _ => {
            let openapi = souk_gateway::OpenApiJson::new(souk::openapi::DOCUMENT);
            souk_gateway::app(souk_gateway::Config::from_env(openapi)?).await?
        }
    };
    let ops_addr = settings::ops_addr()?;
    let limits = server::ConnectionLimits::from_env()?;
    let drain = settings::shutdown_drain()?;
    let listener = server::bind(addr).await?;
    let ops = server::bind(ops_addr).await?;
    tracing::info!(service, %addr, %ops_addr, "listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        server::termination_signal(drain).await;
        let _ = stop.send(true);
    });
    let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let (main, ops) = tokio::join!(
        server::serve(listener, app.clone(), &limits, signal(stopped.clone())),
        server::serve_ops(ops, app, &limits, signal(stopped)),
    );
    main.and(ops)
}

async fn migrate(service: &str) -> anyhow::Result<()> {
    check_service(service)?;
    let Some(m) = migrator(service) else {
        println!("{service}: no database, nothing to migrate");
        return Ok(());
    };
    let url = settings::required(env::DATABASE_URL)?;
    // A Job may start before its PostgreSQL accepts connections: wait for it, with backoff.
    db::retrying("creating the database", db::DATABASE_PATIENCE, || {
        db::create_if_missing(&url)
    })
    .await?;
    let pool = db::retrying("connecting", db::DATABASE_PATIENCE, || db::connect(&url, 1)).await?;
    db::migrate(&pool, m).await?;
    println!("{service}: migrations applied");
    Ok(())
}

async fn probe(url: &str, timeout_secs: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .build()?;
    let res = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = res.status();
    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
    println!("GET {url}: {status}");
    Ok(())
}

async fn admin_create(email: &str, password: &str, name: &str) -> anyhow::Result<()> {
    let url = settings::required(env::DATABASE_URL)?;
    let pool = db::connect(&url, 1).await?;
    match souk_user::ensure_admin(&pool, email, password, name).await? {
        souk_user::AdminSeeding::Created(id) => println!("admin {email} ({id}) created"),
        souk_user::AdminSeeding::AlreadyAdmin(id) => {
            println!("admin {email} ({id}) exists already; its password is unchanged")
        }
        souk_user::AdminSeeding::NotPromoted(id) => anyhow::bail!(
            "{email} ({id}) is an existing customer account and was not promoted; \
             if it is yours, run `souk admin promote --email {email}`"
        ),
    }
    Ok(())
}

async fn admin_promote(email: &str) -> anyhow::Result<()> {
    let url = settings::required(env::DATABASE_URL)?;
    let pool = db::connect(&url, 1).await?;
    let id = souk_user::promote_admin(&pool, email).await?;
    println!("{email} ({id}) is now an admin");
    Ok(())
}

/// Local state (`.souk/`): a private PostgreSQL if needed, the JWT key, mail files.
fn state_dir() -> anyhow::Result<PathBuf> {
    let dir = settings::optional("SOUK_STATE_DIR")?
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".souk"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(std::fs::canonicalize(&dir)?)
}

/// The local signing key, made once so tokens survive a restart of `souk up`.
fn local_jwt_key(dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(pem) = settings::optional(env::JWT_PRIVATE_KEY)? {
        return Ok(pem);
    }
    let path = dir.join("jwt-ed25519.pem");
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return Ok(pem);
    }
    let pem = souk_user::tokens::generate_private_key_pem();
    std::fs::write(&path, &pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(pem)
}

async fn up(demo: bool) -> anyhow::Result<()> {
    let dir = state_dir()?;
    // Payments: Stripe from STRIPE_*, else the local emulator (alive as long as this process).
    let payments = souk::local_stripe::start(&dir)?;
    let gateway_addr: SocketAddr = settings::parsed(
        "SOUK_GATEWAY_ADDR",
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    )?;
    let gateway_ops_addr: SocketAddr =
        settings::parsed(env::OPS_ADDR, SocketAddr::from(([127, 0, 0, 1], 9090)))?;
    let admin = match (
        settings::optional(env::ADMIN_EMAIL)?,
        settings::optional(env::ADMIN_PASSWORD)?,
    ) {
        (Some(email), Some(password)) => Some(souk_user::AdminSeed { email, password }),
        _ if demo => Some(souk_user::AdminSeed {
            email: souk::demo::DEMO_ADMIN.0.to_owned(),
            password: souk::demo::DEMO_ADMIN.1.to_owned(),
        }),
        _ => None,
    };
    let demo_admin = admin
        .as_ref()
        .map(|a| (a.email.clone(), a.password.clone()));
    let opts = PlatformOptions {
        server_url: local_db::server_url(&dir).await?,
        database_prefix: settings::optional("SOUK_DATABASE_PREFIX")?
            .unwrap_or_else(|| "souk".to_owned()),
        gateway_addr,
        gateway_ops_addr,
        internal_secret: uuid::Uuid::new_v4().simple().to_string()
            + &uuid::Uuid::new_v4().simple().to_string(),
        jwt_private_key_pem: local_jwt_key(&dir)?,
        admin,
        stripe: payments.stripe.clone(),
        smtp_url: settings::optional(env::SMTP_URL)?,
        smtp_ca_file: settings::optional("SOUK_SMTP_CA_FILE")?.map(PathBuf::from),
        mail_dir: settings::optional("SOUK_MAIL_DIR")?
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("mail")),
    };
    let mail = match &opts.smtp_url {
        Some(url) => format!("e-mails go to {url}"),
        None => format!("e-mails are written to {}", opts.mail_dir.display()),
    };
    let platform = RunningPlatform::start(opts, |_| {}).await?;
    let webhook = format!("{}/api/v1/payments/webhook", platform.gateway_url);
    match (&payments.emulator, &payments.stripe) {
        (Some(emulator), _) => {
            emulator
                .register_webhook(&webhook, souk::platform::LOCAL_STRIPE_WEBHOOK_SECRET)
                .await
                .context("registering the webhook with the Stripe emulator")?;
            println!("payments: Stripe emulator on {}", emulator.url());
        }
        (None, Some(_)) => println!(
            "payments: point the Stripe webhook endpoint at {webhook} (events {})",
            souk_contract::stripe::WEBHOOK_EVENTS.join(", ")
        ),
        (None, None) => {}
    }
    println!("{mail}");
    if demo && let Some((email, password)) = &demo_admin {
        match souk::demo::seed(&platform.gateway_url, (email, password)).await? {
            souk::demo::Seeded::AlreadyStocked => {
                println!("demo: the catalog has products already; nothing added")
            }
            souk::demo::Seeded::Catalog {
                categories,
                products,
            } => println!("demo: added {categories} categories and {products} products"),
        }
        let (shopper, shopper_password) = souk::demo::DEMO_SHOPPER;
        // The demo admin's password is public anyway; one set in SOUK_ADMIN_PASSWORD is not shown.
        let admin = if email == souk::demo::DEMO_ADMIN.0 {
            format!("{email} / {password}")
        } else {
            email.clone()
        };
        println!("demo: shopper {shopper} / {shopper_password}; admin {admin}");
    }
    println!(
        "metrics of all services: {}/metrics",
        platform.ops_urls["gateway"]
    );
    // Tests and scripts wait for the "gateway listening" line: it stays last.
    println!("storefront: open {}/ in a browser", platform.gateway_url);
    println!("gateway listening on {}", platform.gateway_url);
    platform.run_until(server::shutdown_signal()).await
}

#[allow(clippy::print_stdout, reason = "the document is this command's output")]
fn print_openapi() -> anyhow::Result<()> {
    print!("{}", souk::openapi::document_json());
    Ok(())
}
