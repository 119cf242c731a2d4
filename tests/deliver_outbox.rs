//! The delivery engine end to end: the real binary (`serve`), real sockets, wiremock receivers
//! as static push destinations, SQLite and PostgreSQL.
//!
//! Every test polls with a deadline (a safety net for a hung run, never a measurement).

mod common;

use std::time::Duration;

use common::gateway::{
    FAST_DELIVERY, Gateway, Receiver, Reply, accepted_numbers, push_destination, submission,
};
use pqom_gateway::deliver::forward;
use pqom_gateway::deliver::keys::Jwks;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

/// Where a test's gateway keeps its data: a temporary directory, and a fresh PostgreSQL
/// database for the PostgreSQL variant.
struct Site {
    dir: tempfile::TempDir,
    db: Option<common::pg::PgDatabase>,
}

impl Site {
    async fn new(postgres: bool) -> Option<Site> {
        let db = if postgres {
            Some(common::pg::fresh_database("pqom_deliver").await?)
        } else {
            None
        };
        Some(Site {
            dir: tempfile::tempdir().unwrap(),
            db,
        })
    }

    fn start(&self, config: &str) -> Gateway {
        Gateway::start(
            self.dir.path(),
            self.db.as_ref().map(|d| d.url.as_str()),
            config,
        )
    }
}

async fn jwks(gateway: &Gateway) -> Jwks {
    reqwest::get(format!("{}/.well-known/jwks.json", gateway.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Normal delivery: each accepted submission reaches the matching destination once, numbered
/// 1, 2, 3, signed so that `forward::verify` (what `pqom-gateway verify` runs) accepts it against
/// the gateway's JWKS and the original submission bytes; a destination whose filter does not
/// match gets nothing, and a rejected submission is never delivered.
async fn normal_delivery(postgres: bool) {
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    let icb = Receiver::start(vec![]).await;
    let other = Receiver::start(vec![]).await;
    let config = format!(
        "{FAST_DELIVERY}{}{}",
        push_destination("qmm", &icb.endpoint(), "icb = [\"QMM\"]"),
        push_destination("qhl", &other.endpoint(), "icb = [\"QHL\"]"),
    );
    let gateway = site.start(&config);
    let client = reqwest::Client::new();
    // A rejected one first: not JSON.
    let rejected = client
        .post(format!("{}/$process-message", gateway.fhir()))
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 400);
    let bodies: Vec<Vec<u8>> = (1..=3).map(|seed| submission("RCX", 100 + seed)).collect();
    for body in &bodies {
        gateway.submit(&client, body).await;
    }
    let got = icb
        .wait_until(WAIT, "three deliveries", |r| {
            accepted_numbers(r).len() >= 3
        })
        .await;
    assert_eq!(accepted_numbers(&got), [1, 2, 3]);

    let jwks = jwks(&gateway).await;
    for (delivery, original) in got.iter().zip(&bodies) {
        let report = forward::verify(&delivery.body, &jwks, Some(original));
        assert!(report.passed(), "#{}: {:?}", delivery.number, report.checks);
        let bundle: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(bundle["id"], delivery.bundle_id.as_str());
        assert_eq!(
            bundle["entry"][0]["resource"]["eventCoding"]["code"],
            "pqom-forward"
        );
        assert_eq!(
            bundle["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"]["value"],
            "QMM"
        );
        // The trust's report and its indicator MeasureReports ride along.
        let types: Vec<&str> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["resource"]["resourceType"].as_str())
            .collect();
        assert!(
            types.iter().filter(|t| **t == "MeasureReport").count() >= 2,
            "{types:?}"
        );
    }
    assert!(other.received().is_empty(), "QHL destination got a QMM event");

    // `pqom-gateway verify` on the received bytes, keys fetched from the gateway.
    let file = site.dir.path().join("received.json");
    std::fs::write(&file, &got[0].body).unwrap();
    let jwks_url = format!("{}/.well-known/jwks.json", gateway.url);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pqom-gateway"))
            .arg("verify")
            .arg(&file)
            .args(["--jwks", &jwks_url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The receiver fails (500, 503 with Retry-After) and recovers: everything is delivered, in
/// order, numbers contiguous, each retry with the same bundle id.
async fn receiver_recovers(postgres: bool) {
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    let mut retry_after = Reply::status(503);
    retry_after.retry_after = Some("1".into());
    let receiver = Receiver::start(vec![
        Reply::status(500),
        Reply::status(500),
        retry_after,
        Reply::status(500),
    ])
    .await;
    let gateway = site.start(&format!(
        "{FAST_DELIVERY}{}",
        push_destination("qmm", &receiver.endpoint(), "")
    ));
    let client = reqwest::Client::new();
    for seed in 1..=4 {
        gateway.submit(&client, &submission("RM1", 200 + seed)).await;
    }
    let got = receiver
        .wait_until(WAIT, "four deliveries", |r| accepted_numbers(r).len() >= 4)
        .await;
    assert_eq!(accepted_numbers(&got), [1, 2, 3, 4]);
    // Strict order: every attempt at N came before any attempt at N+1.
    let attempts: Vec<i64> = got.iter().map(|r| r.number).collect();
    assert!(attempts.windows(2).all(|w| w[0] <= w[1]), "{attempts:?}");
    assert!(attempts.len() >= 8, "the failures were retried: {attempts:?}");
    for n in 1..=4 {
        let ids: std::collections::BTreeSet<&str> = got
            .iter()
            .filter(|r| r.number == n)
            .map(|r| r.bundle_id.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "#{n} was resent with a different bundle id");
    }
}

/// A receiver that does not answer within the request timeout is tried again.
async fn timeout_is_retried(postgres: bool) {
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    let mut slow = Reply::status(200);
    slow.delay = Some(Duration::from_secs(5)); // request_timeout_seconds = 2
    let receiver = Receiver::start(vec![slow]).await;
    let gateway = site.start(&format!(
        "{FAST_DELIVERY}{}",
        push_destination("qmm", &receiver.endpoint(), "")
    ));
    let client = reqwest::Client::new();
    gateway.submit(&client, &submission("RGP", 301)).await;
    let got = receiver
        .wait_until(WAIT, "a delivery after the timeout", |r| {
            accepted_numbers(r) == [1]
        })
        .await;
    assert!(got.len() >= 2, "{got:?}");
    assert!(got.iter().all(|r| r.number == 1 && r.bundle_id == got[0].bundle_id));
}

/// 410 Gone: the destination is set to error and nothing more is sent to it; the delivery is
/// a dead letter with the reason. A second, healthy destination shows the later events were
/// processed.
async fn gone_stops_the_destination(postgres: bool) {
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    let gone = Receiver::start(vec![Reply::status(410)]).await;
    let healthy = Receiver::start(vec![]).await;
    let gateway = site.start(&format!(
        "{FAST_DELIVERY}{}{}",
        push_destination("gone", &gone.endpoint(), ""),
        push_destination("healthy", &healthy.endpoint(), "")
    ));
    let client = reqwest::Client::new();
    gateway.submit(&client, &submission("RCX", 401)).await;
    gone.wait_until(WAIT, "the 410", |r| !r.is_empty()).await;
    let dead = wait_for_dead_letter(&gateway, &client, "gone").await;
    assert_eq!(dead["number"], 1);
    assert_eq!(dead["lastStatus"], 410);
    assert!(dead["reason"].as_str().unwrap().contains("410"), "{dead}");

    for seed in 402..=403 {
        gateway.submit(&client, &submission("RCX", seed)).await;
    }
    healthy
        .wait_until(WAIT, "the healthy destination's three", |r| {
            accepted_numbers(r).len() >= 3
        })
        .await;
    assert_eq!(gone.received().len(), 1, "sent to a destination that answered 410");
}

async fn wait_for_dead_letter(gateway: &Gateway, client: &reqwest::Client, name: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let list: Value = client
            .get(format!("{}/admin/dead-letters?destination={name}", gateway.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(first) = list["deadLetters"].as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(start.elapsed() < WAIT, "no dead letter for {name}: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn normal_delivery() {
        super::normal_delivery(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receiver_recovers() {
        super::receiver_recovers(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timeout_is_retried() {
        super::timeout_is_retried(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gone_stops_the_destination() {
        super::gone_stops_the_destination(false).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn normal_delivery() {
        super::normal_delivery(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receiver_recovers() {
        super::receiver_recovers(true).await;
    }
}
