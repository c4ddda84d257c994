//! Payments for `souk up`: Stripe named by the environment, else the local emulator (its
//! Python packages installed into a private virtual environment when missing), else none, in
//! which case checkout answers 503 and the rest of the shop runs.

#![allow(
    clippy::print_stdout,
    reason = "`souk up` tells its user where payments go"
)]

pub mod emulator;

use souk_contract::env;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::bail;
use souk_common::settings;

use self::emulator::StripeEmulator;

use crate::platform::{LOCAL_STRIPE_SECRET_KEY, LOCAL_STRIPE_WEBHOOK_SECRET, StripeSettings};

/// Where payments go, and the emulator to keep alive (None when Stripe is elsewhere).
pub struct Payments {
    pub stripe: Option<StripeSettings>,
    pub emulator: Option<StripeEmulator>,
}

/// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`, `STRIPE_API_BASE`: any of them means Stripe
/// (or an emulator) run elsewhere. Stripe itself needs both secrets; an emulator at
/// `STRIPE_API_BASE` defaults to the local ones.
pub fn from_env() -> anyhow::Result<Option<StripeSettings>> {
    let key = settings::optional(env::STRIPE_SECRET_KEY)?;
    let webhook = settings::optional(env::STRIPE_WEBHOOK_SECRET)?;
    let base = match settings::optional(env::STRIPE_API_BASE)? {
        Some(_) => Some(settings::base_url(env::STRIPE_API_BASE)? + "/"),
        None => None,
    };
    if key.is_none() && webhook.is_none() && base.is_none() {
        return Ok(None);
    }
    if base.is_none() && (key.is_none() || webhook.is_none()) {
        bail!(
            "configuration: Stripe itself needs both STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET \
             (the signing secret of the webhook endpoint /api/v1/payments/webhook)"
        );
    }
    Ok(Some(StripeSettings {
        secret_key: key.unwrap_or_else(|| LOCAL_STRIPE_SECRET_KEY.to_owned()),
        webhook_secret: webhook.unwrap_or_else(|| LOCAL_STRIPE_WEBHOOK_SECRET.to_owned()),
        api_base: base,
    }))
}

pub fn start(state_dir: &Path) -> anyhow::Result<Payments> {
    if let Some(stripe) = from_env()? {
        let at = stripe.api_base.as_deref().unwrap_or("api.stripe.com");
        println!("payments: Stripe at {at} (from STRIPE_* variables; no emulator started)");
        return Ok(Payments {
            stripe: Some(stripe),
            emulator: None,
        });
    }
    let Some(python) = emulator_python(state_dir) else {
        return Ok(Payments {
            stripe: None,
            emulator: None,
        });
    };
    let emulator = StripeEmulator::start_in(&python)?;
    Ok(Payments {
        stripe: Some(StripeSettings::local(emulator.url())),
        emulator: Some(emulator),
    })
}

fn quiet(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An interpreter with the emulator's packages: the system's, else a private virtual
/// environment under the state directory, made and filled (once) here.
fn emulator_python(state_dir: &Path) -> Option<String> {
    let system = emulator::python();
    if emulator::python_deps_available_in(&system) {
        return Some(system);
    }
    let venv = state_dir.join("python");
    let venv_python = venv.join("bin").join("python3").display().to_string();
    if emulator::python_deps_available_in(&venv_python) {
        return Some(venv_python);
    }
    if !quiet(Command::new(&system).arg("--version")) {
        println!(
            "payments unavailable: Python 3 ({system}) was not found, and the local Stripe \
             emulator needs it; install python3, or set STRIPE_SECRET_KEY and \
             STRIPE_WEBHOOK_SECRET to use Stripe (checkout answers 503 meanwhile)"
        );
        return None;
    }
    println!(
        "payments: installing the Stripe emulator's Python packages into {} (once)...",
        venv.display()
    );
    if !quiet(Command::new(&system).arg("-m").arg("venv").arg(&venv)) {
        println!(
            "payments unavailable: `{system} -m venv` failed (on Debian: apt install python3-venv); \
             checkout answers 503"
        );
        return None;
    }
    let installed = Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
        ])
        .arg(emulator::requirements_file())
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed || !emulator::python_deps_available_in(&venv_python) {
        println!(
            "payments unavailable: installing {} failed (see above); checkout answers 503",
            emulator::requirements_file().display()
        );
        return None;
    }
    println!("payments: Python packages installed");
    Some(venv_python)
}
