//! A 2xx means committed: the real binary is killed with SIGKILL while a stream of submissions is
//! in flight, restarted on the same data directory, and every submission it acknowledged must be
//! there, answered with its original response (reliable messaging), none processed twice.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pqom_gateway::samples::{ReportParams, submission_bundle};
use serde_json::Value;
use tokio::sync::Mutex;

/// Start `pqom-gateway serve` on a random port; returns the child and its base URL, read from
/// the one line it prints on stdout once it is listening.
fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pqom-gateway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("PQOM_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start pqom-gateway");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (child, url)
}

fn message(seed: u64) -> Vec<u8> {
    let params = ReportParams {
        seed,
        month: 1 + (seed % 12) as u32,
        ..ReportParams::default()
    };
    serde_json::to_vec(&submission_bundle(&params)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_submission_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start(dir.path());
    let client = reqwest::Client::new();

    // Four writers submit distinct messages as fast as the gateway acknowledges them.
    let acked: Arc<Mutex<Vec<(u64, Value)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (client, url, acked, stop) = (client.clone(), url.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut seed = 1_000 + w;
            while !stop.load(Ordering::Relaxed) {
                let sent = client
                    .post(format!("{url}/fhir/$process-message"))
                    .header("content-type", "application/fhir+json")
                    .body(message(seed))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(body) = r.json::<Value>().await {
                            acked.lock().await.push((seed, body));
                        }
                    }
                    Ok(r) => panic!("submission {seed} refused with {}", r.status()),
                    // The process is gone: this one was never acknowledged.
                    Err(_) => break,
                }
                seed += 4;
            }
        }));
    }

    // Kill it mid-stream, once a good number have been acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().await.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "too few acknowledgements before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix: no chance to flush
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().await.clone();

    // Restart on the same data directory: every acknowledged message is known, and resending it
    // returns the original response without processing it again.
    let (mut child, url) = start(dir.path());
    for (seed, original) in &acked {
        let r = client
            .post(format!("{url}/fhir/$process-message"))
            .header("content-type", "application/fhir+json")
            .body(message(*seed))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "resend of {seed}: {}", r.status());
        let again: Value = r.json().await.unwrap();
        assert_eq!(
            again["entry"][0]["resource"]["response"], original["entry"][0]["resource"]["response"],
            "acknowledged submission {seed} was lost or processed again"
        );
        assert_eq!(
            again["id"], original["id"],
            "same response bundle for {seed}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "{} acknowledged submissions all survived kill -9",
        acked.len()
    );
}
