//! The local Stripe emulator of `souk up` (`tests/support/stripe_emulator.py`, localstripe with
//! a compatibility layer): a Python child process on a free loopback port, killed when its handle
//! is dropped. The process plumbing here (interpreter, output, start-up failures) is shared with
//! the test kit's SMTP sink (`souk-testkit`), which runs the same way.
//!
//! It needs `python3` with `tests/support/requirements.txt` installed (`PYTHON` overrides the
//! interpreter); without it, `start_in()` fails and says what to install.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use souk_contract::stripe::WEBHOOK_EVENTS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to run when a Python dependency is missing.
pub const INSTALL_HINT: &str = "pip install -r tests/support/requirements.txt";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Python interpreter to use: `PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The checkout this crate was built from (the workspace's root crate).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned Python requirements of the emulator and the SMTP sink.
pub fn requirements_file() -> PathBuf {
    repo_root().join("tests/support/requirements.txt")
}

/// True when the interpreter `python` has the emulator's and the SMTP sink's modules.
pub fn python_deps_available_in(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import localstripe, aiohttp, aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port nothing listens on right now (another process may take it before the child
/// binds it: callers retry on "address already in use").
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Echoes a child's output into ours (prefixed) and keeps a copy for error messages.
#[allow(
    clippy::print_stderr,
    reason = "a child's output shows among the tests' or souk up's"
)]
pub fn collect(stream: impl Read + Send + 'static, prefix: &'static str) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let copy = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("[{prefix}] {line}");
            if let Ok(mut text) = copy.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
    text
}

/// Kills and reaps a child.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The error of a child that did not start: `detail`, and what to install when that is the cause.
pub fn failure(what: &str, detail: &str) -> anyhow::Error {
    let hint = if detail.contains("No module named") || detail.contains("missing Python dependency")
    {
        format!("\nInstall the Python dependencies with: {INSTALL_HINT}")
    } else {
        format!("\n(If Python dependencies are missing: {INSTALL_HINT})")
    };
    anyhow::anyhow!("{what} did not start: {detail}{hint}")
}

/// The Stripe emulator; killed on drop.
pub struct StripeEmulator {
    child: Child,
    port: u16,
}

impl StripeEmulator {
    /// Starts the emulator with the interpreter `python` (the system's, or a virtual
    /// environment's) on a free port and waits until it serves.
    pub fn start_in(python: &str) -> anyhow::Result<Self> {
        let script = repo_root().join("tests/support/stripe_emulator.py");
        let python = python.to_owned();
        let mut last_failure = String::new();
        // Another process may take the port between our probe and the emulator's bind: retry.
        for _ in 0..3 {
            let port = free_port()?;
            let started = Instant::now();
            let mut child = Command::new(&python)
                .arg(&script)
                .arg("--port")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    failure("the Stripe emulator", &format!("cannot run {python}: {e}"))
                })?;
            let stderr = collect(
                child.stderr.take().expect("piped stderr"),
                "stripe emulator",
            );
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let expected = format!("stripe emulator listening on http://127.0.0.1:{port}");
            match rx.recv_timeout(READY_TIMEOUT) {
                Ok(line) if line == expected => {
                    tracing::info!(port, elapsed = ?started.elapsed(), "Stripe emulator ready");
                    return Ok(Self { child, port });
                }
                outcome => {
                    kill(&mut child);
                    std::thread::sleep(Duration::from_millis(100)); // let stderr drain
                    let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                    last_failure = match outcome {
                        Ok(line) => format!("unexpected first line {line:?}; stderr:\n{stderr}"),
                        Err(_) => format!("no ready line; stderr:\n{stderr}"),
                    };
                    if !last_failure.contains("cannot listen")
                        && !last_failure.contains("address already in use")
                    {
                        break;
                    }
                }
            }
        }
        Err(failure("the Stripe emulator", &last_failure))
    }

    /// The API base for async-stripe (`STRIPE_API_BASE`), with the trailing `/` it needs.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Sends Souk's webhook events to `url`, signed with `secret` (only those: the emulator
    /// also emits others that the Stripe client cannot parse).
    pub async fn register_webhook(&self, url: &str, secret: &str) -> anyhow::Result<()> {
        let mut form = vec![("url", url), ("secret", secret)];
        form.extend(WEBHOOK_EVENTS.iter().map(|e| ("events[]", *e)));
        let status = post_form(self.port, "/_config/webhooks/souk", &form).await?;
        if status != 200 {
            bail!("the Stripe emulator refused the webhook registration (HTTP {status})");
        }
        Ok(())
    }
}

impl Drop for StripeEmulator {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A minimal HTTP/1.1 form POST (the emulator's `/_config` API is not Stripe's).
async fn post_form(port: u16, path: &str, form: &[(&str, &str)]) -> anyhow::Result<u16> {
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status in the emulator's answer")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
