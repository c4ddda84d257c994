//! An SMTP sink for tests: `aiosmtpd` storing every message in a Maildir, a Python child process
//! on a free loopback port run like the Stripe emulator (`souk::local_stripe::emulator`), with
//! TLS when a test asks for it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use souk::local_stripe::emulator::{collect, failure, free_port, kill, python};

/// How long the sink may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// An SMTP server on loopback that accepts every message and stores it in a Maildir; killed
/// (and its Maildir removed) on drop.
pub struct SmtpSink {
    child: std::process::Child,
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
