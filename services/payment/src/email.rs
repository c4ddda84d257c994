//! Order confirmation e-mails: queued in the `email_outbox` table (one per order, ever) and
//! sent by a background sender that retries with backoff until the SMTP server accepts.
//!
//! Several replicas may run the sender: each claims due rows with `FOR UPDATE SKIP LOCKED` and
//! keeps them locked while sending, so no two replicas send the same message. A message is
//! marked sent in the same transaction; only a crash between the SMTP server's acceptance and
//! that commit could send it again (each message carries a Message-ID derived from the order,
//! so mail clients can still tell it is the same message).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use souk_common::{ApiError, ApiResult, FieldError, Json};
use souk_contract::payments::{self, OrderConfirmation, Queued};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::AppState;

pub const KIND_ORDER_CONFIRMATION: &str = "order_confirmation";
/// Messages claimed per round.
const BATCH: i64 = 10;
/// Longest wait between two attempts at one message.
const MAX_BACKOFF_SECS: i64 = 300;
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long claimed messages stay with the sender that claimed them: longer than a batch can
/// take to send (`BATCH` x `SMTP_TIMEOUT` at worst).
const CLAIM_LEASE: Duration = Duration::from_secs(BATCH as u64 * SMTP_TIMEOUT.as_secs() + 30);

pub fn router() -> Router<AppState> {
    Router::new().route(payments::ORDER_CONFIRMATION, post(enqueue))
}

/// Where messages go: an SMTP server, or `.eml` files in a directory.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// An SMTP transport from `SOUK_SMTP_URL`:
/// - `smtp://[user:password@]host[:port]`: plain SMTP (port 25), for a server on loopback or a
///   relay beside the service;
/// - `smtp://[user:password@]host[:port]?tls=starttls`: STARTTLS is required (port 587);
/// - `smtps://[user:password@]host[:port]`: implicit TLS (port 465).
///
/// TLS is rustls (ring); the server's certificate must chain to a Mozilla root (webpki-roots) or
/// to `extra_ca_pem` (`SOUK_SMTP_CA_FILE`: a private relay's CA) and name `host`.
pub fn smtp_transport(
    raw: &str,
    extra_ca_pem: Option<&[u8]>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let bad = |why: &str| {
        format!(
            "{why}; expected smtp://host:port, smtp://host:port?tls=starttls or smtps://host:port"
        )
    };
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
    let starttls = match url.query() {
        None => false,
        Some("tls=starttls") if url.scheme() == "smtp" => true,
        Some(q) => return Err(bad(&format!("unsupported query `{q}`"))),
    };
    let (tls, default_port) = match (url.scheme(), starttls) {
        ("smtp", false) => (None, 25),
        ("smtp", true) => (Some(Tls::Required as fn(TlsParameters) -> Tls), 587),
        ("smtps", _) => (Some(Tls::Wrapper as fn(TlsParameters) -> Tls), 465),
        (other, _) => return Err(bad(&format!("unsupported scheme `{other}`"))),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        // rustls wants the bare address as the server name, without the URL's brackets.
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("no host")),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(url.port().unwrap_or(default_port))
        .timeout(Some(SMTP_TIMEOUT));
    if let Some(tls) = tls {
        let mut params =
            TlsParameters::builder(host).certificate_store(CertificateStore::WebpkiRoots);
        if let Some(pem) = extra_ca_pem {
            params = params.add_root_certificate(ca_certificate(pem)?);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        builder = builder.tls(tls(params));
    }
    if !url.username().is_empty() {
        let decode = |s: &str| {
            // Percent-decoding only: a '+' in a password stays a '+'.
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            decode(url.username()),
            decode(url.password().unwrap_or_default()),
        ));
    }
    Ok(builder.build())
}

/// The CA certificates of a PEM file (`SOUK_SMTP_CA_FILE`): read and checked at startup.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Building a TLS configuration is what parses the certificates' DER.
    TlsParameters::builder("localhost".to_owned())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(ca_certificate(&pem)?)
        .build_rustls()
        .map_err(|e| format!("bad CA certificate: {e}"))?;
    Ok(pem)
}

fn ca_certificate(pem: &[u8]) -> Result<Certificate, String> {
    // lettre accepts a PEM without certificates (trusting nothing extra): refuse it instead.
    if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the CA file".to_owned());
    }
    Certificate::from_pem(pem).map_err(|e| format!("bad CA certificate: {e}"))
}

impl Mailer {
    /// `smtp_ca_pem`: the contents of `SOUK_SMTP_CA_FILE`, trusted besides the public roots.
    pub fn new(
        smtp_url: Option<&str>,
        smtp_ca_pem: Option<&[u8]>,
        mail_dir: &Path,
    ) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => Ok(Self::Smtp(
                smtp_transport(url, smtp_ca_pem)
                    .map_err(|e| anyhow::anyhow!("configuration: SOUK_SMTP_URL: {e}"))?,
            )),
            None => {
                std::fs::create_dir_all(mail_dir).map_err(|e| {
                    anyhow::anyhow!("configuration: SOUK_MAIL_DIR {}: {e}", mail_dir.display())
                })?;
                Ok(Self::File(AsyncFileTransport::new(mail_dir)))
            }
        }
    }

    async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Self::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
            Self::File(t) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }
}

/// Wakes the sender; stops it when the last app holding it is dropped.
#[derive(Clone)]
pub struct OutboxHandle {
    wake: Arc<Notify>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl OutboxHandle {
    pub fn spawn(db: PgPool, mailer: Mailer, from: Mailbox, poll: Duration) -> Self {
        let wake = Arc::new(Notify::new());
        let sender = Sender { db, mailer, from };
        let task = tokio::spawn(sender.run(wake.clone(), poll));
        Self {
            wake,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

struct Sender {
    db: PgPool,
    mailer: Mailer,
    from: Mailbox,
}

impl Sender {
    async fn run(self, wake: Arc<Notify>, poll: Duration) {
        loop {
            match self.send_due().await {
                // A full batch: there may be more waiting.
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "e-mail outbox: round failed"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Claims due messages, sends them, and records each outcome as soon as it is known (no
    /// transaction is held while sending): a crash re-sends at most the message in flight.
    /// Returns how many were claimed.
    async fn send_due(&self) -> Result<usize, sqlx::Error> {
        // The claim is a lease: another replica (or this one after a crash) takes the messages
        // again only once it has run out.
        let due: Vec<(Uuid, Uuid, String, String, String, String, i32)> = sqlx::query_as(
            "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $2)
             WHERE id IN (
               SELECT id FROM email_outbox
               WHERE sent_at IS NULL AND next_attempt_at <= now()
               ORDER BY next_attempt_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
             RETURNING id, order_id, recipient, recipient_name, subject, body, attempts",
        )
        .bind(BATCH)
        .bind(CLAIM_LEASE.as_secs_f64())
        .fetch_all(&self.db)
        .await?;
        for (id, order_id, to, name, subject, body, attempts) in &due {
            let outcome = match build_message(&self.from, order_id, to, name, subject, body) {
                Ok(message) => self.mailer.send(message).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE email_outbox SET sent_at = now(), attempts = attempts + 1,
                                last_error = NULL
                         WHERE id = $1",
                    )
                    .bind(id)
                    .execute(&self.db)
                    .await?;
                    tracing::info!(%order_id, "order confirmation sent");
                    metrics::counter!("souk_emails_sent_total").increment(1);
                }
                Err(error) => {
                    let delay = backoff_secs(attempts + 1);
                    tracing::warn!(%order_id, %error, attempts = attempts + 1, retry_in_secs = delay,
                        "order confirmation not accepted, will retry");
                    metrics::counter!("souk_email_send_failures_total").increment(1);
                    sqlx::query(
                        "UPDATE email_outbox SET attempts = attempts + 1, last_error = $2,
                                next_attempt_at = now() + make_interval(secs => $3)
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(&error)
                    .bind(delay as f64)
                    .execute(&self.db)
                    .await?;
                }
            }
        }
        Ok(due.len())
    }
}

/// 2, 4, 8, ... seconds, at most [`MAX_BACKOFF_SECS`].
fn backoff_secs(attempts: i32) -> i64 {
    2i64.saturating_pow(attempts.clamp(1, 20) as u32)
        .min(MAX_BACKOFF_SECS)
}

fn build_message(
    from: &Mailbox,
    order_id: &Uuid,
    to: &str,
    name: &str,
    subject: &str,
    body: &str,
) -> Result<Message, String> {
    let to = Mailbox::new(
        (!name.is_empty()).then(|| name.to_owned()),
        to.parse().map_err(|e| format!("recipient address: {e}"))?,
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<order-{order_id}@souk.local>")))
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .map_err(|e| e.to_string())
}

/// What the payment service refuses to queue (the order service treats this as final).
fn validate(req: &OrderConfirmation) -> ApiResult<()> {
    let mut errors = Vec::new();
    if req.to.len() > 254 || req.to.parse::<lettre::Address>().is_err() {
        errors.push(FieldError::new("to", "must be an e-mail address"));
    }
    if req.name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be at most 200 characters"));
    }
    if req.items.is_empty() {
        errors.push(FieldError::new("items", "must list at least one line"));
    }
    for (i, line) in req.items.iter().enumerate() {
        if line.quantity < 1 {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                "must be at least 1",
            ));
        }
        if line.unit_price_cents < 0 || line.line_total_cents < 0 {
            errors.push(FieldError::new(
                format!("items[{i}]"),
                "amounts must not be negative",
            ));
        }
    }
    if req.subtotal_cents < 0 || req.total_cents < 0 {
        errors.push(FieldError::new("total_cents", "must not be negative"));
    }
    if req.currency.len() != 3 || !req.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        errors.push(FieldError::new(
            "currency",
            "must be a lowercase ISO 4217 code",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Queues an order's confirmation: 202 the first time, 200 when it was already queued (or
/// sent). The sender is woken at once.
#[tracing::instrument(skip_all)]
async fn enqueue(
    State(state): State<AppState>,
    Json(req): Json<OrderConfirmation>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    validate(&req)?;
    let subject = subject(req.order_id);
    let body = render_body(&req);
    let inserted = sqlx::query(
        "INSERT INTO email_outbox (id, order_id, kind, recipient, recipient_name, subject, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (order_id, kind) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(req.order_id)
    .bind(KIND_ORDER_CONFIRMATION)
    .bind(req.to.trim())
    .bind(req.name.trim())
    .bind(&subject)
    .bind(&body)
    .execute(&state.db)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        state.outbox.wake();
        return Ok((
            StatusCode::ACCEPTED,
            Json(Queued {
                order_id: req.order_id,
                status: "queued".to_owned(),
            }),
        ));
    }
    let sent: bool = sqlx::query_scalar(
        "SELECT sent_at IS NOT NULL FROM email_outbox WHERE order_id = $1 AND kind = $2",
    )
    .bind(req.order_id)
    .bind(KIND_ORDER_CONFIRMATION)
    .fetch_one(&state.db)
    .await?;
    Ok((
        StatusCode::OK,
        Json(Queued {
            order_id: req.order_id,
            status: if sent { "sent" } else { "queued" }.to_owned(),
        }),
    ))
}

/// The order id as shoppers see it: its last 8 hex digits, upper-case (UUID v7's first
/// digits are a timestamp, the same for orders made in the same minute).
pub fn short_id(order_id: Uuid) -> String {
    let simple = order_id.simple().to_string();
    simple[simple.len() - 8..].to_ascii_uppercase()
}

pub fn subject(order_id: Uuid) -> String {
    format!("Your Souk order {} is confirmed", short_id(order_id))
}

/// Currencies without minor units (Stripe's list).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// `$12.34` for dollars, `12.34 EUR` for other currencies, `500 JPY` without minor units.
pub fn format_money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let amount = if ZERO_DECIMAL.contains(&currency) {
        abs.to_string()
    } else {
        format!("{}.{:02}", abs / 100, abs % 100)
    };
    if currency == "usd" {
        format!("{sign}${amount}")
    } else {
        format!("{sign}{amount} {}", currency.to_ascii_uppercase())
    }
}

pub fn render_body(req: &OrderConfirmation) -> String {
    let money = |cents| format_money(cents, &req.currency);
    let mut body = String::new();
    let greeting = if req.name.trim().is_empty() {
        "Hello,".to_owned()
    } else {
        format!("Hello {},", req.name.trim())
    };
    let _ = writeln!(body, "{greeting}\n");
    let _ = writeln!(
        body,
        "Thank you for your order {}: your payment was received\nand your order is confirmed.\n",
        short_id(req.order_id)
    );
    for line in &req.items {
        let sku = if line.sku.is_empty() {
            String::new()
        } else {
            format!(" (SKU {})", line.sku)
        };
        let options = if line.option_values.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = line
                .option_values
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            format!(", {}", pairs.join(", "))
        };
        let _ = writeln!(
            body,
            "  {} x {}{}{} @ {} = {}",
            line.quantity,
            line.name,
            options,
            sku,
            money(line.unit_price_cents),
            money(line.line_total_cents)
        );
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "Subtotal: {}", money(req.subtotal_cents));
    if req.discount_cents > 0 {
        let code = req.promotion_code.as_deref().unwrap_or("promotion");
        let _ = writeln!(body, "Discount ({code}): -{}", money(req.discount_cents));
    }
    let _ = writeln!(body, "Total: {}", money(req.total_cents));
    if let Some(address) = &req.shipping_address {
        let _ = writeln!(body, "\nShipping to:");
        let given = |v: &str| -> Option<String> {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        let optional = |v: &Option<String>| v.as_deref().and_then(given);
        for v in [
            given(&address.name),
            given(&address.line1),
            optional(&address.line2),
        ]
        .into_iter()
        .flatten()
        {
            let _ = writeln!(body, "  {v}");
        }
        let city_line = [
            given(&address.postal_code),
            given(&address.city),
            optional(&address.state),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        if !city_line.is_empty() {
            let _ = writeln!(body, "  {city_line}");
        }
        if let Some(country) = given(&address.country) {
            let _ = writeln!(body, "  {country}");
        }
    }
    let _ = writeln!(body, "\nOrder id: {}\n\nSouk", req.order_id);
    body
}

#[cfg(test)]
mod tests {
    use souk_contract::payments::ConfirmationLine;
    use souk_contract::users::ShippingAddress;

    use super::*;

    #[test]
    fn money_is_formatted_from_cents() {
        assert_eq!(format_money(1234, "usd"), "$12.34");
        assert_eq!(format_money(5, "usd"), "$0.05");
        assert_eq!(format_money(1234, "eur"), "12.34 EUR");
        assert_eq!(format_money(500, "jpy"), "500 JPY");
        assert_eq!(format_money(-250, "usd"), "-$2.50");
    }

    #[test]
    fn body_lists_lines_and_total() {
        let order_id = Uuid::now_v7();
        let req = OrderConfirmation {
            order_id,
            to: "a@example.com".into(),
            name: "Ada".into(),
            items: vec![
                ConfirmationLine {
                    name: "Mug".into(),
                    sku: "MUG-1".into(),
                    option_values: Default::default(),
                    quantity: 2,
                    unit_price_cents: 650,
                    line_total_cents: 1300,
                },
                ConfirmationLine {
                    name: "Shirt".into(),
                    sku: "SHIRT-M".into(),
                    option_values: [("size".to_owned(), "M".to_owned())].into(),
                    quantity: 1,
                    unit_price_cents: 1000,
                    line_total_cents: 1000,
                },
            ],
            subtotal_cents: 2300,
            discount_cents: 1000,
            promotion_code: Some("SAVE10".into()),
            total_cents: 1300,
            currency: "usd".into(),
            shipping_address: Some(ShippingAddress {
                name: "Ada".into(),
                line1: "1 Main St".into(),
                line2: None,
                city: "Springfield".into(),
                state: None,
                postal_code: "12345".into(),
                country: "US".into(),
            }),
        };
        let body = render_body(&req);
        assert!(
            body.contains("2 x Mug (SKU MUG-1) @ $6.50 = $13.00"),
            "{body}"
        );
        assert!(
            body.contains("1 x Shirt, size M (SKU SHIRT-M) @ $10.00 = $10.00"),
            "{body}"
        );
        assert!(body.contains("Discount (SAVE10): -$10.00"), "{body}");
        assert!(body.contains("Total: $13.00"), "{body}");
        assert!(body.contains("1 Main St"), "{body}");
        assert!(subject(order_id).ends_with(&format!("{} is confirmed", short_id(order_id))));
        assert_eq!(backoff_secs(1), 2);
        assert_eq!(backoff_secs(30), MAX_BACKOFF_SECS);
    }
}
