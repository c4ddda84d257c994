//! Local stand-ins for Stripe and an SMTP server, for `souk up` and the tests: the Stripe
//! emulator (`tests/support/stripe_emulator.py`, localstripe with a compatibility layer) and an
//! SMTP sink (`aiosmtpd` storing messages in a Maildir). Both are Python child processes on
//! free loopback ports, killed when their handle is dropped.
//!
//! They need `python3` with `tests/support/requirements.txt` installed (`PYTHON` overrides the
//! interpreter); without it, `start()` fails and says what to install.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

/// The checkout this crate was built from (it lives at `services/common`).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pinned Python requirements of the emulator and the SMTP sink.
pub fn requirements_file() -> PathBuf {
    repo_root().join("tests/support/requirements.txt")
}

/// True when Python and the emulator's and sink's modules are installed.
pub fn python_deps_available() -> bool {
    python_deps_available_in(&python())
}

/// Like [`python_deps_available`], for the interpreter `python` (a virtual environment's).
pub fn python_deps_available_in(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import localstripe, aiohttp, aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Echoes a child's output into ours (prefixed) and keeps a copy for error messages.
#[allow(
    clippy::print_stderr,
    reason = "a child's output shows among the tests' or souk up's"
)]
fn collect(stream: impl Read + Send + 'static, prefix: &'static str) -> Arc<Mutex<String>> {
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

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn failure(what: &str, detail: &str) -> anyhow::Error {
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
    /// Starts the emulator on a free port and waits until it serves.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_in(&python())
    }

    /// Like [`Self::start`], with the interpreter `python` (a virtual environment's).
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

    pub fn port(&self) -> u16 {
        self.port
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

/// An SMTP server on loopback that accepts every message and stores it in a Maildir; killed
/// (and its Maildir removed) on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: PathBuf,
    tls: Option<SinkTls>,
}

/// How a sink speaks TLS, with a certificate for 127.0.0.1 issued by a CA made for it
/// ([`SmtpSink::ca_file`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTls {
    /// STARTTLS offered and required: MAIL FROM before it is refused (530).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl SmtpSink {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(None)
    }

    /// A sink that speaks TLS (needs the `openssl` command to make its certificates).
    pub fn start_tls(tls: SinkTls) -> anyhow::Result<Self> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<SinkTls>) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("souk-smtp-{}", uuid::Uuid::new_v4().simple()));
        // A Maildir: Python's `mailbox.Maildir` only makes these when the directory is new.
        for sub in ["new", "cur", "tmp", "tls"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let tls_args: Vec<std::ffi::OsString> = match tls {
            None => Vec::new(),
            Some(mode) => {
                let (cert, key) = make_certificates(&dir.join("tls"))?;
                let (cert_flag, key_flag) = match mode {
                    // aiosmtpd requires STARTTLS whenever it is given a certificate.
                    SinkTls::StartTls => ("--tlscert", "--tlskey"),
                    SinkTls::Implicit => ("--smtpscert", "--smtpskey"),
                };
                vec![
                    cert_flag.into(),
                    cert.into_os_string(),
                    key_flag.into(),
                    key.into_os_string(),
                ]
            }
        };
        let python = python();
        let mut last_failure = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let mut child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(&tls_args)
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| failure("the SMTP sink", &format!("cannot run {python}: {e}")))?;
            let stderr = collect(child.stderr.take().expect("piped stderr"), "smtp sink");
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Self {
                        child,
                        port,
                        dir,
                        tls,
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    std::thread::sleep(Duration::from_millis(100));
                    last_failure = format!(
                        "exited with {status}; stderr:\n{}",
                        stderr.lock().map(|s| s.clone()).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    kill(&mut child);
                    last_failure = "it did not listen within 30 s".to_owned();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !last_failure
                .to_ascii_lowercase()
                .contains("address already in use")
            {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(failure("the SMTP sink", &last_failure))
    }

    /// `SOUK_SMTP_URL` for this sink.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("smtp://127.0.0.1:{}", self.port),
            Some(SinkTls::StartTls) => format!("smtp://127.0.0.1:{}?tls=starttls", self.port),
            Some(SinkTls::Implicit) => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    /// `smtp://` without TLS to this sink's port (a TLS sink refuses it).
    pub fn plain_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that issued a TLS sink's certificate (`SOUK_SMTP_CA_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    pub fn maildir(&self) -> &Path {
        &self.dir
    }

    /// Every message delivered so far (raw RFC 5322 text), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((modified, e.path()))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .collect()
    }
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it issued (`server.pem`,
/// `server.key`) in `dir`, valid for a day. The server certificate is not a CA: rustls refuses
/// a self-signed CA certificate as a server's.
fn make_certificates(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let path = |name: &str| dir.join(name).into_os_string();
    let openssl = |args: &[std::ffi::OsString]| -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running openssl (install it to test SMTP over TLS)")?;
        if !out.status.success() {
            bail!(
                "openssl {:?} failed: {}",
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let req = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ]
        .iter()
        .chain(["-nodes", "-days", "1"].iter())
        .chain(extra)
        .map(Into::into)
        .collect()
    };
    let mut ca = req(&["-subj", "/CN=Souk test SMTP CA"]);
    ca.extend([
        "-keyout".into(),
        path("ca.key"),
        "-out".into(),
        path("ca.pem"),
    ]);
    openssl(&ca)?;
    let mut server = req(&[
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "extendedKeyUsage=serverAuth",
    ]);
    server.extend([
        "-CA".into(),
        path("ca.pem"),
        "-CAkey".into(),
        path("ca.key"),
        "-keyout".into(),
        path("server.key"),
        "-out".into(),
        path("server.pem"),
    ]);
    openssl(&server)?;
    Ok((dir.join("server.pem"), dir.join("server.key")))
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        kill(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
