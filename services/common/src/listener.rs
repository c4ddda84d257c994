//! Accepting connections: HTTP/1.1 with limits on time, headers and numbers, so slow or many
//! clients cannot hold a service. One public listener and one ops listener per service.

use souk_contract::ErrorCode;
use souk_contract::env;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::ops::{OPS_PATHS, OpsListener};
use crate::server::MAX_BODY_BYTES;
use crate::settings::{self, ConfigError};

/// What one listener allows each connection. Defaults suit a service behind an ingress as
/// much as one reached directly; `from_env` reads the `SOUK_*` overrides.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Time to send a whole request head. Hyper's clock also runs while a keep-alive
    /// connection waits for its next request, so this is the idle timeout too.
    pub header_read_timeout: Duration,
    /// Time to send a whole request body (at most 1 MiB).
    pub body_read_timeout: Duration,
    /// Connections served at once; beyond, new ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 2048,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl ConnectionLimits {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let ms = |var, default: Duration| -> Result<Duration, ConfigError> {
            let ms: u64 = settings::parsed(var, default.as_millis() as u64)?;
            if ms == 0 {
                return Err(ConfigError::new(var, "must be above 0"));
            }
            Ok(Duration::from_millis(ms))
        };
        let max_header_bytes = settings::parsed("SOUK_MAX_HEADER_BYTES", d.max_header_bytes)?;
        if max_header_bytes < 8192 {
            return Err(ConfigError::new(
                "SOUK_MAX_HEADER_BYTES",
                "must be at least 8192",
            ));
        }
        let max_connections = settings::parsed("SOUK_MAX_CONNECTIONS", d.max_connections)?;
        if max_connections == 0 {
            return Err(ConfigError::new("SOUK_MAX_CONNECTIONS", "must be above 0"));
        }
        Ok(Self {
            header_read_timeout: ms(env::HEADER_READ_TIMEOUT_MS, d.header_read_timeout)?,
            body_read_timeout: ms("SOUK_BODY_READ_TIMEOUT_MS", d.body_read_timeout)?,
            max_connections,
            max_header_bytes,
        })
    }
}

/// Serves the public API (`app` as built by `server::wrap`/`layers`) until `shutdown`
/// resolves, then lets in-flight requests finish. `/metrics` answers 404 here.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run(listener, app, limits, false, shutdown).await
}

/// Serves the ops routes of the same `app` (`/metrics`, the detailed `/readyz`, `/healthz`)
/// on a port of their own, which the public never reaches.
pub async fn serve_ops(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run(listener, app, limits, true, shutdown).await
}

async fn run(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    ops: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let body_read_timeout = limits.body_read_timeout;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                if ops {
                    if !OPS_PATHS.contains(&req.uri().path()) {
                        return Ok::<_, Infallible>(
                            ApiError::not_found("no such endpoint").into_response(),
                        );
                    }
                    req.extensions_mut().insert(OpsListener);
                }
                match read_body(body_read_timeout, req).await {
                    Ok(req) => app.oneshot(req).await,
                    Err(refused) => Ok(refused),
                }
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Reads the whole body before the handler runs, within `body_read_timeout` and 1 MiB: a
/// client trickling its body is cut off with 408 instead of holding a task and a connection.
/// A request without a body (most reads) passes as it is, with no timer to set.
async fn read_body(timeout: Duration, req: Request<Incoming>) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    match tokio::time::timeout(
        timeout,
        axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(e)) if is_length_limit(&e) => Err(ApiError::payload_too_large().into_response()),
        Ok(Err(_)) => Err(closing(ApiError::bad_request(
            "the request body could not be read",
        ))),
        Err(_) => Err(closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} seconds",
                timeout.as_secs_f64()
            ),
        ))),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The rest of the body is unread: the connection cannot carry another request.
fn closing(e: ApiError) -> Response {
    let mut res = e.into_response();
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: ConnectionLimits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "hi" }).post(|| async { "posted" }));
        tokio::spawn(async move { serve(listener, app, &limits, std::future::pending()).await });
        addr
    }

    /// Sends `request` on a new connection and reads the answer's first bytes.
    async fn ask(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = vec![0; 512];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

    #[tokio::test]
    async fn beyond_the_cap_connections_wait_for_a_free_slot() {
        let addr = start(ConnectionLimits {
            max_connections: 2,
            ..Default::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            held.push(s);
        }
        let third = tokio::spawn(ask(addr, GET));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !third.is_finished(),
            "a third connection was served beyond the cap"
        );
        held.pop();
        let answer = tokio::time::timeout(Duration::from_secs(2), third)
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn a_trickled_request_head_is_cut_off() {
        let addr = start(ConnectionLimits {
            header_read_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0; 256];
        let closed = loop {
            // One header line every 100 ms: never finishing, never quite idle.
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                Ok(Ok(_) | Err(_)) => break start.elapsed(),
                Err(_) if start.elapsed() > Duration::from_secs(5) => panic!("still open"),
                Err(_) => {
                    if s.write_all(b"x-slow: 1\r\n").await.is_err() {
                        break start.elapsed();
                    }
                }
            }
        };
        assert!(closed < Duration::from_secs(2), "closed after {closed:?}");
    }

    #[tokio::test]
    async fn a_slow_body_is_cut_off_with_408_and_large_heads_get_431() {
        let addr = start(ConnectionLimits {
            body_read_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .await;
        let slow = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789";
        let answer = tokio::time::timeout(Duration::from_secs(3), ask(addr, slow))
            .await
            .expect("answered before the client finished");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
        // A whole body in time is fine.
        let whole =
            b"POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi";
        assert!(ask(addr, whole).await.starts_with("HTTP/1.1 200"));
        let big = format!(
            "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(20 * 1024)
        );
        let answer = ask(addr, big.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
}
