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
    let mut bodies: Vec<Vec<u8>> = (1..=3).map(|seed| submission("RCX", 100 + seed)).collect();
    // A decimal written with trailing zeros must be forwarded as written (it is signed).
    let mut first: Value = serde_json::from_slice(&bodies[0]).unwrap();
    first["entry"][1]["resource"]["group"][0]["measureScore"] =
        serde_json::from_str(r#"{"value": 0.1250}"#).unwrap();
    bodies[0] = serde_json::to_vec(&first).unwrap();
    assert!(String::from_utf8_lossy(&bodies[0]).contains("0.1250"));
    for body in &bodies {
        gateway.submit(&client, body).await;
    }
    let got = icb
        .wait_until(WAIT, "three deliveries", |r| accepted_numbers(r).len() >= 3)
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
    assert!(
        other.received().is_empty(),
        "QHL destination got a QMM event"
    );

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
        gateway
            .submit(&client, &submission("RM1", 200 + seed))
            .await;
    }
    let got = receiver
        .wait_until(WAIT, "four deliveries", |r| accepted_numbers(r).len() >= 4)
        .await;
    assert_eq!(accepted_numbers(&got), [1, 2, 3, 4]);
    // Strict order: every attempt at N came before any attempt at N+1.
    let attempts: Vec<i64> = got.iter().map(|r| r.number).collect();
    assert!(attempts.windows(2).all(|w| w[0] <= w[1]), "{attempts:?}");
    assert!(
        attempts.len() >= 8,
        "the failures were retried: {attempts:?}"
    );
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
    assert!(
        got.iter()
            .all(|r| r.number == 1 && r.bundle_id == got[0].bundle_id)
    );
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
    assert_eq!(
        gone.received().len(),
        1,
        "sent to a destination that answered 410"
    );

    // The receiver is back: replaying #1 re-activates the destination; #1 comes again (same
    // bundle) and the events held meanwhile follow in order.
    let r = client
        .post(format!(
            "{}/admin/replay?destination=gone&from=1",
            gateway.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = gone
        .wait_until(WAIT, "the replay and the held events", |r| {
            accepted_numbers(r) == [1, 2, 3]
        })
        .await;
    assert_eq!(
        got[1].bundle_id, got[0].bundle_id,
        "the replay is the same bundle"
    );
}

/// A delivery that keeps failing is dead-lettered at the retry horizon with the reason, and
/// the destination moves on to the next event.
async fn horizon_dead_letters_and_moves_on(postgres: bool) {
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    let receiver = Receiver::start_failing(1, 500).await;
    let gateway = site.start(&format!(
        "{FAST_DELIVERY}retry_horizon_seconds = 2\n{}",
        push_destination("qmm", &receiver.endpoint(), "")
    ));
    let client = reqwest::Client::new();
    for seed in 1..=2 {
        gateway
            .submit(&client, &submission("RM1", 450 + seed))
            .await;
    }
    let got = receiver
        .wait_until(WAIT, "event 2 after event 1's dead letter", |r| {
            accepted_numbers(r) == [2]
        })
        .await;
    let numbers: Vec<i64> = got.iter().map(|r| r.number).collect();
    assert!(numbers.len() >= 3, "event 1 was retried: {numbers:?}");
    assert!(numbers.windows(2).all(|w| w[0] <= w[1]), "{numbers:?}");
    let dead = wait_for_dead_letter(&gateway, &client, "qmm").await;
    assert_eq!(dead["number"], 1);
    assert_eq!(dead["lastStatus"], 500);
    let reason = dead["reason"].as_str().unwrap();
    assert!(reason.contains("retry horizon"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    // The queue and latency series are on /metrics.
    let metrics = client
        .get(format!("{}/metrics", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "pqom_delivery_attempts_total{destination=\"qmm\",result=\"dead\"} 1",
        "pqom_delivery_failures_total{destination=\"qmm\",reason=\"http_5xx\"}",
        "pqom_delivery_latency_seconds_bucket{destination=\"qmm\"",
        "pqom_delivery_queue_depth",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
}

async fn wait_for_dead_letter(gateway: &Gateway, client: &reqwest::Client, name: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let list: Value = client
            .get(format!(
                "{}/admin/dead-letters?destination={name}",
                gateway.url
            ))
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

/// A rest-hook Subscription created over `POST /fhir/Subscription` (handshake, then active) with
/// full-resource content: event notifications numbered 1, 2 whose focus is the signed forwarded
/// bundle; `$events` answers the same events; a 410 sets the Subscription to error and stops
/// delivery.
async fn subscription_notifications(postgres: bool) {
    use pqom_gateway::deliver::subscription as sub;
    use pqom_gateway::store::SubscriptionStatus;
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    // The handshake, two events, then 410.
    let receiver = Receiver::start(vec![
        Reply::status(200),
        Reply::status(200),
        Reply::status(200),
        Reply::status(410),
    ])
    .await;
    let endpoint = format!("{}/notify", receiver.server.uri());
    let gateway = site.start(&format!(
        "subscription_http_loopback = true\n{FAST_DELIVERY}"
    ));
    let resource = serde_json::json!({
        "resourceType": "Subscription",
        "meta": { "profile": [ sub::BACKPORT_SUBSCRIPTION ] },
        "status": "requested",
        "reason": "QMM ICB dashboard",
        "criteria": sub::Topic::Submission.url(),
        "_criteria": { "extension": [
            { "url": sub::FILTER_CRITERIA, "valueString": "MeasureReport?icb=QMM" }
        ] },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": { "extension": [ { "url": sub::PAYLOAD_CONTENT, "valueCode": "full-resource" } ] }
        }
    });
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/Subscription", gateway.fhir()))
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&resource).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["status"], "active", "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // The gateway's own store, opened beside it, to read the Subscription's state columns.
    let store =
        pqom_gateway::store::open(site.db.as_ref().map(|d| d.url.as_str()), site.dir.path())
            .await
            .unwrap();
    let bodies: Vec<Vec<u8>> = (1..=2).map(|seed| submission("RM1", 800 + seed)).collect();
    for body in &bodies {
        gateway.submit(&client, body).await;
    }
    // Another ICB's trust: not for this Subscription.
    gateway.submit(&client, &submission("RQ3", 899)).await;
    // Events carry X-Pqom-Event-Number; the handshake does not (-1 here).
    let got: Vec<_> = receiver
        .wait_until(WAIT, "two notifications", |r| {
            accepted_numbers(r).iter().filter(|n| **n > 0).count() >= 2
        })
        .await
        .into_iter()
        .filter(|r| r.number > 0)
        .collect();
    assert_eq!(accepted_numbers(&got), [1, 2]);
    let jwks = jwks(&gateway).await;
    for (n, (notification, original)) in got.iter().zip(&bodies).enumerate() {
        let bundle: Value = serde_json::from_slice(&notification.body).unwrap();
        assert_eq!(bundle["type"], "history");
        let params = &bundle["entry"][0]["resource"];
        assert_eq!(params["resourceType"], "Parameters");
        let text = params.to_string();
        assert!(text.contains("event-notification"), "{text}");
        assert!(
            text.contains(&format!("\"valueString\":\"{}\"", n + 1)),
            "event number {} missing: {text}",
            n + 1
        );
        let forwarded = serde_json::to_vec(&bundle["entry"][1]["resource"]).unwrap();
        let report = forward::verify(&forwarded, &jwks, Some(original));
        assert!(report.passed(), "{:?}", report.checks);
    }
    // The third event (a new submission) meets a 410: the Subscription goes to error.
    gateway.submit(&client, &submission("RCX", 803)).await;
    let start = std::time::Instant::now();
    loop {
        let s = store.subscription(&id).await.unwrap().unwrap();
        if s.status == SubscriptionStatus::Error {
            assert!(s.error.unwrap_or_default().contains("410"));
            assert!(s.last_sent_at.is_some());
            break;
        }
        assert!(start.elapsed() < WAIT, "Subscription not set to error");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // $events: a receiver catching up gets events 1..=2 (id-only here).
    let events: Value = client
        .get(format!(
            "{}/Subscription/{}/$events?eventsSinceNumber=1&eventsUntilNumber=2&content=id-only",
            gateway.fhir(),
            id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = events.to_string();
    assert_eq!(events["type"], "history", "{text}");
    assert!(text.contains("query-event"), "{text}");
    assert!(text.contains(&got[0].bundle_id), "{text}");
    assert!(text.contains(&got[1].bundle_id), "{text}");
    let unknown = client
        .get(format!("{}/Subscription/nope/$events", gateway.fhir()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // The handshake and three events; nothing after the 410.
    assert_eq!(receiver.received().len(), 4, "sent after the 410");
}

/// A pull destination: its consumer reads the feed with a cursor; the same number always gives
/// the same bytes. Replay and the dead-letter list answer on the admin routes.
async fn pull_feed_and_replay(postgres: bool) {
    let Some(site) = Site::new(postgres).await else {
        return;
    };
    let push = Receiver::start(vec![]).await;
    let config = format!(
        "{FAST_DELIVERY}{}\n[[deliver.destination]]\nname = \"warehouse\"\nkind = \"pull\"\nregion = [\"Y61\"]\n",
        push_destination("qmm", &push.endpoint(), "")
    );
    let gateway = site.start(&config);
    let client = reqwest::Client::new();
    for seed in 1..=3 {
        gateway
            .submit(&client, &submission("RM1", 900 + seed))
            .await;
    }
    push.wait_until(WAIT, "three pushes", |r| accepted_numbers(r).len() >= 3)
        .await;
    let feed = |since: i64| {
        let client = client.clone();
        let url = format!(
            "{}/$events?destination=warehouse&since={since}&_count=2",
            gateway.fhir()
        );
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }
    };
    let first = feed(0).await;
    let page: Value = serde_json::from_slice(&first).unwrap();
    let entries = page["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["extension"][0]["valueUnsignedInt"], 1);
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.contains("since=2"), "{next}");
    let jwks = jwks(&gateway).await;
    let bundle = serde_json::to_vec(&entries[0]["resource"]).unwrap();
    assert!(forward::verify(&bundle, &jwks, None).passed());
    let again: Value = serde_json::from_slice(&feed(0).await).unwrap();
    assert_eq!(
        again["entry"], page["entry"],
        "a re-read changed the bundles"
    );
    let rest: Value = serde_json::from_slice(&feed(2).await).unwrap();
    assert_eq!(rest["entry"].as_array().unwrap().len(), 1);
    assert_eq!(rest["entry"][0]["extension"][0]["valueUnsignedInt"], 3);

    // A push destination's feed is refused; an unknown one is 404.
    let r = client
        .get(format!("{}/$events?destination=qmm", gateway.fhir()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .get(format!("{}/$events?destination=nope", gateway.fhir()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Replay #2 of the push destination: it is sent again, same bundle.
    let r = client
        .post(format!(
            "{}/admin/replay?destination=qmm&from=2",
            gateway.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = push.wait_until(WAIT, "the replay", |r| r.len() >= 4).await;
    assert_eq!(got[3].number, 2);
    assert_eq!(got[3].bundle_id, got[1].bundle_id);
    assert_eq!(got[3].body, got[1].body);
    let bad = client
        .post(format!(
            "{}/admin/replay?destination=qmm&from=x",
            gateway.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
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
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscription_notifications() {
        super::subscription_notifications(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn horizon_dead_letters_and_moves_on() {
        super::horizon_dead_letters_and_moves_on(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pull_feed_and_replay() {
        super::pull_feed_and_replay(false).await;
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
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscription_notifications() {
        super::subscription_notifications(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pull_feed_and_replay() {
        super::pull_feed_and_replay(true).await;
    }
}
