//! Delivery throughput and delay, end to end with the real binary and a local receiver.
//!
//! ```sh
//! cargo bench --bench deliver --profile dev            # SQLite
//! PQOM_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench deliver --profile dev
//! ```
//!
//! With PostgreSQL, each run gets a fresh database `pqom_bench_<uuid>` on that server (dropped
//! afterwards).
//!
//! ```text
//! ```
//!
//! Two figures (BENCHMARKS.md, "Delivery"):
//! - **Deliveries per second**: N submissions are accepted while the receiver answers 503
//!   (`Retry-After: 1`), so a backlog builds; then the receiver opens and the backlog drains.
//!   Rate = deliveries between the first and the last 2xx / that time. Measured with 1 and with
//!   8 destinations (one request in flight per destination, so 8 show the concurrency).
//! - **Delay from acceptance to delivery**: M submissions one after another with the receiver
//!   open; for each, the receiver's arrival time minus the moment the submitter had its 200
//!   (p50, p99), and the gateway's own `pqom_delivery_latency_seconds` mean (commit to 2xx).
//!
//! Not criterion: the quantities are a drain rate and a delay distribution of a whole process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

#[derive(Clone, Default)]
struct Receiver {
    open: Arc<AtomicBool>,
    /// (arrival, event number) of each 2xx.
    arrivals: Arc<Mutex<Vec<(Instant, i64)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> impl IntoResponse {
    if !r.open.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
        )
            .into_response();
    }
    let number = headers
        .get("x-pqom-event-number")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    r.arrivals.lock().unwrap().push((Instant::now(), number));
    StatusCode::OK.into_response()
}

async fn start_receiver() -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/{dest}/fhir/$process-message", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, addr)
}

struct Gateway {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(receiver: SocketAddr, destinations: usize, database: Option<&str>) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from(
        "[deliver]\npoll_interval_ms = 100\ninitial_backoff_ms = 100\nmax_backoff_seconds = 1\n",
    );
    for d in 0..destinations {
        config.push_str(&format!(
            "[[deliver.destination]]\nname = \"d{d}\"\nendpoint = \"http://{receiver}/d{d}/fhir/$process-message\"\n"
        ));
    }
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_pqom-gateway"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&file)
        .env(
            "RUST_LOG",
            std::env::var("PQOM_BENCH_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(url) = database {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().expect("start pqom-gateway");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("listening line")
        .to_owned();
    Gateway {
        child,
        url,
        _dir: dir,
    }
}

fn message(seed: u64) -> Vec<u8> {
    let params = pqom_gateway::samples::ReportParams {
        ods: "RM1".into(),
        seed,
        month: 1 + (seed % 12) as u32,
        ..Default::default()
    };
    serde_json::to_vec(&pqom_gateway::samples::submission_bundle(&params)).unwrap()
}

async fn submit(client: &reqwest::Client, gateway: &Gateway, seed: u64) {
    let r = client
        .post(format!("{}/fhir/$process-message", gateway.url))
        .header("content-type", "application/fhir+json")
        .body(message(seed))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn wait_for(receiver: &Receiver, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while receiver.arrivals.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "deliveries did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn drain_rate(destinations: usize, submissions: u64, database: Option<&str>) {
    let (receiver, addr) = start_receiver().await;
    let gateway = start_gateway(addr, destinations, database);
    let client = reqwest::Client::new();
    for seed in 0..submissions {
        submit(&client, &gateway, 10_000 + seed).await;
    }
    receiver.open.store(true, Ordering::SeqCst);
    let total = destinations * submissions as usize;
    wait_for(&receiver, total).await;
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let first = arrivals.first().unwrap().0;
    let last = arrivals.last().unwrap().0;
    let secs = (last - first).as_secs_f64();
    println!(
        "deliver/drain destinations={destinations} deliveries={total}: {:.1} deliveries/s \
         ({} after the first in {secs:.2} s)",
        (total - 1) as f64 / secs,
        total - 1
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn delay(submissions: u64, database: Option<&str>) {
    let (receiver, addr) = start_receiver().await;
    receiver.open.store(true, Ordering::SeqCst);
    let gateway = start_gateway(addr, 1, database);
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for seed in 0..submissions {
        submit(&client, &gateway, 20_000 + seed).await;
        acked.push(Instant::now());
        // One at a time: the delay of each, not of a queue.
        wait_for(&receiver, seed as usize + 1).await;
    }
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let mut delays: Vec<f64> = arrivals
        .iter()
        .map(|(at, number)| {
            let ack = acked[(*number - 1) as usize];
            // Signed: the bundle may arrive before the submitter has read its 200.
            if *at >= ack {
                (*at - ack).as_secs_f64() * 1e3
            } else {
                -((ack - *at).as_secs_f64() * 1e3)
            }
        })
        .collect();
    delays.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let metrics = client
        .get(format!("{}/metrics", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let read = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let sum = read("pqom_delivery_latency_seconds_sum");
    let count = read("pqom_delivery_latency_seconds_count");
    println!(
        "deliver/delay submissions={submissions}: 200 to the submitter -> arrival at the receiver \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; gateway commit -> 2xx mean {:.1} ms",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or_default(),
        sum / count * 1e3
    );
}

/// A fresh database on the server of `admin` (PostgreSQL runs), and its name.
async fn fresh_database(admin: &str) -> (String, String) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("PostgreSQL");
    let name = format!("pqom_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    (format!("{base}/{name}"), name)
}

async fn drop_database(admin: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// Run `f` against SQLite (`None`) or a fresh PostgreSQL database.
async fn on<F, Fut>(admin: Option<&str>, f: F)
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match admin {
        None => f(None).await,
        Some(admin) => {
            let (url, name) = fresh_database(admin).await;
            f(Some(url)).await;
            drop_database(admin, &name).await;
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is not supported (fixed runs).
    let admin = std::env::var("PQOM_BENCH_POSTGRES_URL").ok();
    let backend = if admin.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!("backend: {backend}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = admin.as_deref();
        on(
            admin,
            |db| async move { drain_rate(1, 60, db.as_deref()).await },
        )
        .await;
        on(
            admin,
            |db| async move { drain_rate(8, 30, db.as_deref()).await },
        )
        .await;
        on(admin, |db| async move { delay(40, db.as_deref()).await }).await;
    });
}
