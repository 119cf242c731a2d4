//! Serving: binds the listener (plain HTTP or HTTPS with rustls), wraps the API router in the
//! cross-cutting layers (request id, tracing, timeout, panic guard) and shuts down gracefully,
//! draining in-flight requests. Knows nothing about FHIR resources beyond rendering the
//! OperationOutcome for the failures that happen outside the router.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::fhir::{Issue, IssueType, Outcome};

/// Header carrying the request id, echoed on every response (set by the client or generated).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long shutdown waits for in-flight requests before closing connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load TLS certificate or key: {0}")]
    Tls(#[source] std::io::Error),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound listener, ready to serve. Binding first lets callers learn the port (tests bind
/// port 0) before any request can arrive.
pub struct Bound {
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
}

impl Bound {
    /// Bind `addr`; with `tls` = (cert, key) PEM files, serve HTTPS.
    pub async fn bind(addr: SocketAddr, tls: Option<(&Path, &Path)>) -> Result<Bound, ServeError> {
        install_crypto_provider();
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ServeError::Bind { addr, source })?;
        listener.set_nonblocking(true)?;
        let tls = match tls {
            Some((cert, key)) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(ServeError::Tls)?,
            ),
            None => None,
        };
        Ok(Bound { listener, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serve `router` until `shutdown` completes, then stop accepting and drain in-flight requests.
    pub async fn serve(
        self,
        router: Router,
        request_timeout: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = with_layers(router, request_timeout);
        match self.tls {
            None => {
                let listener = tokio::net::TcpListener::from_std(self.listener)?;
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await?;
            }
            Some(config) => {
                let handle = axum_server::Handle::new();
                let signal = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    signal.graceful_shutdown(Some(DRAIN_TIMEOUT));
                });
                axum_server::from_tcp_rustls(self.listener, config)?
                    .handle(handle)
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await?;
            }
        }
        Ok(())
    }
}

/// rustls needs exactly one process-wide crypto provider; more than one crate in the tree
/// enables one, so pick aws-lc-rs explicitly. Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The cross-cutting layers, outermost first: request id (set, then echoed), tracing span with the
/// request id, panic guard, timeout. Both failure layers answer with an OperationOutcome.
pub fn with_layers(router: Router, request_timeout: Duration) -> Router {
    router
        .layer(middleware::from_fn(move |req, next| {
            timeout(req, next, request_timeout)
        }))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                        let id = req
                            .headers()
                            .get(&REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
                    }),
                )
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

async fn timeout(req: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => outcome_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Issue::error(
                IssueType::Timeout,
                format!(
                    "the request took longer than the gateway's limit of {} s and was abandoned; \
                     for a submission, resend it with the same MessageHeader id: it will be processed at most once",
                    limit.as_secs()
                ),
            ),
        ),
    }
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic message itself goes to the log (tracing records it); the client gets no internals.
    tracing::error!("request handler panicked");
    outcome_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Issue::error(
            IssueType::Exception,
            "the gateway failed while handling this request; nothing was committed for it",
        ),
    )
}

fn outcome_response(status: StatusCode, issue: Issue) -> Response {
    let body = Outcome::single(issue).to_json().to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Resolves on Ctrl-C or SIGTERM (what container runtimes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

/// Initialise logging once: `RUST_LOG` filters (default `info`), text or JSON lines on stderr.
pub fn init_logging(format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    let v: Vec<u8> = Vec::new();
                    // Index out of bounds on purpose: a handler bug must not take the server down.
                    let b = v[1];
                    b.to_string()
                }),
            )
    }

    async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let bound = Bound::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let addr = bound.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(app(), Duration::from_millis(300), async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    #[tokio::test]
    async fn request_id_is_generated_and_echoed() {
        let (addr, _stop) = start().await;
        let client = reqwest::Client::new();
        let r = client
            .get(format!("http://{addr}/ok"))
            .send()
            .await
            .unwrap();
        let generated = r
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(generated.len(), 36, "a UUID: {generated}");
        let r = client
            .get(format!("http://{addr}/ok"))
            .header("x-request-id", "trust-rm1-0001")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "trust-rm1-0001");
    }

    #[tokio::test]
    async fn timeout_answers_operation_outcome() {
        let (addr, _stop) = start().await;
        let r = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
        assert_eq!(r.status(), 503);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(body["issue"][0]["code"], "timeout");
    }

    #[tokio::test]
    async fn panic_is_contained_and_server_keeps_serving() {
        let (addr, _stop) = start().await;
        let r = reqwest::get(format!("http://{addr}/panic")).await.unwrap();
        assert_eq!(r.status(), 500);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["issue"][0]["code"], "exception");
        let r = reqwest::get(format!("http://{addr}/ok")).await.unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn graceful_shutdown_drains_in_flight_request() {
        let bound = Bound::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let addr = bound.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new().route(
            "/work",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        );
        let server = tokio::spawn(bound.serve(router, Duration::from_secs(10), async {
            let _ = rx.await;
        }));
        let in_flight = tokio::spawn(reqwest::get(format!("http://{addr}/work")));
        // Let the request reach the handler, then ask for shutdown while it is still running.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(()).unwrap();
        let response = in_flight.await.unwrap().unwrap();
        assert_eq!(response.text().await.unwrap(), "done");
        server.await.unwrap().unwrap();
        assert!(
            reqwest::get(format!("http://{addr}/work")).await.is_err(),
            "listener closed"
        );
    }

    #[tokio::test]
    async fn serves_https_with_rustls() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let bound = Bound::bind(
            "127.0.0.1:0".parse().unwrap(),
            Some((&cert_path, &key_path)),
        )
        .await
        .unwrap();
        assert!(bound.is_tls());
        let port = bound.local_addr().unwrap().port();
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(app(), Duration::from_secs(5), async {
            let _ = rx.await;
        }));
        let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([root])
            .build()
            .unwrap();
        let r = client
            .get(format!("https://localhost:{port}/ok"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "ok");
        // Plain HTTP to the TLS port is refused, not served.
        assert!(
            reqwest::get(format!("http://127.0.0.1:{port}/ok"))
                .await
                .is_err()
        );
    }
}
