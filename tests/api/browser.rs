//! A real headless Chromium driven over WebDriver (chromedriver + fantoccini), for the
//! storefront's tests. Chromium and chromedriver come from Debian (`chromium`,
//! `chromium-driver`; `scripts/test` installs them); without them these tests fail, saying so.
//!
//! Network: the browser may only reach loopback. Every host name but 127.0.0.1 resolves to
//! nothing and any other traffic goes to a proxy that does not exist, so Chromium's background
//! services (updates, safe browsing, ...) cannot leave the machine even where a switch to turn
//! one off is missing.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(20);

fn binary(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    pub base: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a fresh headless Chromium session.
    pub async fn start(base: &str) -> Browser {
        let chromedriver = binary("SOUK_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = binary("SOUK_CHROMIUM", "/usr/bin/chromium");
        for path in [&chromedriver, &chromium] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the storefront's browser tests need Debian's `chromium` and \
                 `chromium-driver` (apt-get install -y chromium chromium-driver; scripts/test does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(artifacts_dir().join("chromedriver.log"))
            .expect("chromedriver log file");
        // Its own process group, which Chromium's processes inherit: ending the group ends
        // the browser too, even when a failed test never closed its session.
        let driver = Command::new(&chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {chromedriver}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            client: connect(&url, &chromium).await,
            driver,
            base: base.trim_end_matches('/').to_owned(),
        };
        browser
            .client
            .set_window_size(1280, 900)
            .await
            .expect("window size");
        browser.driver_alive();
        browser
    }

    fn driver_alive(&mut self) {
        if let Ok(Some(status)) = self.driver.try_wait() {
            panic!("chromedriver exited: {status}");
        }
    }

    /// Opens a page of the storefront (`#/...`).
    pub async fn open(&self, hash: &str) {
        self.client
            .goto(&format!("{}/{hash}", self.base))
            .await
            .expect("navigate");
    }

    /// Waits for the element; panics naming it after `WAIT`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {WAIT:?}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the link with exactly this text.
    pub async fn click_link(&self, text: &str) {
        let link = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?} within {WAIT:?}: {e}"));
        link.click()
            .await
            .unwrap_or_else(|e| panic!("click {text:?}: {e}"));
    }

    /// Types into the (cleared) input.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("clear input");
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Waits until the element's text contains `needle`; returns the text.
    pub async fn text_contains(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot("failure").await;
                let html = self
                    .eval("return document.querySelector('main').outerHTML;")
                    .await;
                panic!(
                    "{css} never contained {needle:?} within {WAIT:?}; last text: {last:?}; \
                     screenshot {}; main: {html}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's main heading, once it reads `needle`.
    pub async fn heading(&self, needle: &str) -> String {
        self.text_contains("main h1", needle).await
    }

    /// Waits until the JavaScript expression is true in the page.
    pub async fn until(&self, expression: &str) {
        let script = format!("return Boolean({expression});");
        souk_testkit::eventually(
            &format!("{expression} true in the page"),
            WAIT,
            async || self.eval(&script).await,
            |value| *value == Value::Bool(true),
        )
        .await;
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Saves a PNG of the window under `$CARGO_TARGET_DIR/souk-screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Browser console entries since the last call (chromedriver's log endpoint).
    pub async fn console(&self) -> Vec<Value> {
        let out = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        out.as_array().cloned().unwrap_or_default()
    }

    /// Fails on any console error or warning (CSP violations, failed loads, exceptions), but
    /// for the API answers the test provoked: Chromium logs every 4xx a fetch gets, and
    /// `expected` names those (e.g. "/api/v1/checkout - Failed to load resource: the server
    /// responded with a status of 402").
    pub async fn assert_clean_console(&self, expected: &[&str]) {
        let bad: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
            .filter(|e| {
                let message = e["message"].as_str().unwrap_or_default();
                !(e["source"] == "network" && expected.iter().any(|x| message.contains(x)))
            })
            .collect();
        assert!(bad.is_empty(), "browser console has errors: {bad:#?}");
    }

    pub async fn quit(self) {
        let client = self.client.clone();
        let _ = client.close().await;
        // Drop ends chromedriver and whatever is left of the browser.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)).
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

async fn connect(webdriver: &str, chromium: &str) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
                "--disable-client-side-phishing-detection", "--metrics-recording-only",
                "--disable-crash-reporter", "--disable-breakpad",
                "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--proxy-server=http://127.0.0.1:9",
            ],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let caps = caps.as_object().expect("object").clone();
    // chromedriver needs a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(webdriver)
            .await;
        match attempt {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver at {webdriver}: {e}"),
        }
    }
}

/// Screenshots and logs: `$CARGO_TARGET_DIR/souk-screenshots/` (the test binary lives in
/// `<target>/debug/deps/`, so that directory is found without the variable too).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        })
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("souk-screenshots");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// chromedriver's `POST /session/{id}/se/log` with `{"type": "browser"}`: the console.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}
