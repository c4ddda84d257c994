//! SMTP over TLS (`SOUK_SMTP_URL` `smtp://...?tls=starttls` and `smtps://`): against an aiosmtpd
//! sink with a certificate from a CA made for the test, trusted through `SOUK_SMTP_CA_FILE`.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

use lettre::message::Message;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use souk_payment::email::{read_ca_file, smtp_transport};
use souk_testkit::{SinkTls, SmtpSink};

fn message(subject: &str) -> Message {
    Message::builder()
        .from("Souk <orders@souk.local>".parse().unwrap())
        .to("ann@example.com".parse().unwrap())
        .subject(subject)
        .body("Thank you for your order.".to_owned())
        .unwrap()
}

fn trusting(sink: &SmtpSink, url: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    let ca = read_ca_file(&sink.ca_file()).unwrap();
    smtp_transport(url, Some(&ca)).unwrap()
}

/// `subject` is the only message the sink received.
fn assert_only_delivery(sink: &SmtpSink, subject: &str) {
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains(&format!("Subject: {subject}")),
        "{}",
        messages[0]
    );
}

#[tokio::test]
async fn starttls_delivers_to_a_sink_that_refuses_plain_smtp() {
    let sink = SmtpSink::start_tls(SinkTls::StartTls).unwrap();
    assert!(sink.url().ends_with("?tls=starttls"), "{}", sink.url());

    // The sink takes no mail without STARTTLS, so a delivery below went over TLS.
    let plain = trusting(&sink, &sink.plain_url());
    let refused = plain.send(message("plain")).await.unwrap_err();
    assert!(refused.to_string().contains("STARTTLS"), "{refused}");
    assert!(sink.messages().is_empty());

    let tls = trusting(&sink, &sink.url());
    tls.send(message("over starttls")).await.unwrap();
    assert_only_delivery(&sink, "over starttls");
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let sink = SmtpSink::start_tls(SinkTls::Implicit).unwrap();
    assert!(sink.url().starts_with("smtps://"), "{}", sink.url());
    trusting(&sink, &sink.url())
        .send(message("over smtps"))
        .await
        .unwrap();
    assert_only_delivery(&sink, "over smtps");
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let sink = SmtpSink::start_tls(SinkTls::StartTls).unwrap();
    // Public roots only: the sink's private CA is not among them.
    let public_roots = smtp_transport(&sink.url(), None).unwrap();
    let error = public_roots.send(message("untrusted")).await.unwrap_err();
    assert!(error.to_string().contains("certificate"), "{error}");

    // Another CA's file does not help either.
    let other = SmtpSink::start_tls(SinkTls::Implicit).unwrap();
    let other_ca = read_ca_file(&other.ca_file()).unwrap();
    let wrong_ca = smtp_transport(&sink.url(), Some(&other_ca)).unwrap();
    let error = wrong_ca.send(message("wrong ca")).await.unwrap_err();
    assert!(error.to_string().contains("certificate"), "{error}");
    assert!(sink.messages().is_empty());
}

#[test]
fn bad_smtp_settings_are_refused() {
    for url in [
        "smtp:/",
        "http://127.0.0.1:25",
        "smtp://127.0.0.1:587?tls=required",
        "smtps://127.0.0.1:465?tls=starttls",
        "127.0.0.1:25",
    ] {
        assert!(smtp_transport(url, None).is_err(), "{url} was accepted");
    }
    for url in [
        "smtp://127.0.0.1:2525",
        "smtp://user:p%40ss@mail.example.com:587?tls=starttls",
        "smtps://user:pass@mail.example.com",
        "smtps://[::1]:465",
    ] {
        assert!(smtp_transport(url, None).is_ok(), "{url} was refused");
    }

    let dir = std::env::temp_dir().join(format!("souk-ca-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let error = read_ca_file(&not_pem).unwrap_err();
    assert!(error.contains("no PEM certificate"), "{error}");
    let bad_der = dir.join("bad.pem");
    std::fs::write(
        &bad_der,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let error = read_ca_file(&bad_der).unwrap_err();
    assert!(error.contains("bad CA certificate"), "{error}");
    let error = read_ca_file(&dir.join("missing.pem")).unwrap_err();
    assert!(error.contains("cannot read"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
