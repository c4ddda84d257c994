//! The e-mail outbox records each message as sent as soon as the SMTP server accepts it, so a
//! crash while a later message is in flight re-sends that one message only.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use souk_payment::email::{Mailer, OutboxHandle};
use souk_testkit::{eventually, test_server_url};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

/// A minimal SMTP server: accepts the first message, then never answers the end of the second
/// one's data (a server that hangs, or a process about to die mid-send).
async fn stalling_sink() -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(0usize));
    let count = received.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let count = count.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        let n = {
                            let mut c = count.lock().unwrap();
                            *c += 1;
                            *c
                        };
                        if n >= 2 {
                            std::future::pending::<()>().await;
                        }
                        b"250 accepted\r\n"
                    } else {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => b"221 bye\r\n",
                            _ => b"250 ok\r\n",
                        }
                    };
                    if write.write_all(answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn each_message_is_marked_sent_when_the_server_accepts_it() {
    let url = souk_common::db::with_database(
        &test_server_url(),
        &format!("souk_test_{}_outbox", Uuid::new_v4().simple()),
    )
    .unwrap();
    souk_common::db::create_if_missing(&url).await.unwrap();
    let db = souk_common::db::connect(&url, 4).await.unwrap();
    souk_common::db::migrate(&db, &souk_payment::MIGRATOR)
        .await
        .unwrap();
    for i in 0..2 {
        sqlx::query(
            "INSERT INTO email_outbox (id, order_id, recipient, recipient_name, subject, body)
             VALUES ($1, $2, $3, 'Ann', 'Your order', 'Thanks')",
        )
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(format!("ann{i}@example.com"))
        .execute(&db)
        .await
        .unwrap();
    }
    let (port, received) = stalling_sink().await;
    let mailer = Mailer::new(
        Some(&format!("smtp://127.0.0.1:{port}")),
        None,
        &std::env::temp_dir(),
    )
    .unwrap();
    let outbox = OutboxHandle::spawn(
        db.clone(),
        mailer,
        "Souk <orders@souk.local>".parse().unwrap(),
        Duration::from_millis(100),
    );
    // The second message is in flight (its data sent, no answer) ...
    eventually(
        "the sink getting two messages",
        Duration::from_secs(10),
        async || *received.lock().unwrap(),
        |received| *received >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... and the first is already recorded as sent: a crash now re-sends only the second.
    let sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE sent_at IS NOT NULL")
            .fetch_one(&db)
            .await
            .unwrap();
    drop(outbox);
    db.close().await;
    souk_common::db::drop_database(&url).await.unwrap();
    assert_eq!(
        sent, 1,
        "the accepted message is recorded before the next is sent"
    );
}
