//! Delivery across crashes and instances, with the real binary:
//! - SIGKILL while a delivery is in flight, restart on the same data: nothing lost; the only
//!   repeats are of the same event number with the same bundle id; order kept.
//! - SIGTERM while a delivery is in flight: the gateway lets it finish and records it, so the
//!   restarted gateway does not send it again.
//! - Two instances on one PostgreSQL database: every event delivered exactly once, in order.
//!
//! Every wait polls with a deadline (a safety net, never a measurement).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::gateway::{
    FAST_DELIVERY, Gateway, Received, Receiver, Reply, accepted_numbers, push_destination,
    submission,
};

const WAIT: Duration = Duration::from_secs(120);

fn slow(delay_ms: u64) -> Reply {
    let mut r = Reply::status(200);
    r.delay = Some(Duration::from_millis(delay_ms));
    r
}

/// Repeats are only of the same number with the same bundle id, and numbers never go back
/// past a number's first appearance.
fn assert_repeats_are_identical(received: &[Received]) {
    let mut ids: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    for r in received {
        ids.entry(r.number).or_default().insert(&r.bundle_id);
    }
    for (n, set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "event {n} was sent as different bundles: {set:?}"
        );
    }
    let numbers: Vec<i64> = received.iter().map(|r| r.number).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] >= w[0]),
        "out of order: {numbers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Each delivery takes a second to be answered: the kill lands while one is in flight.
    let receiver = Receiver::start_with(vec![], slow(1_000)).await;
    let config = format!(
        "{FAST_DELIVERY}{}",
        push_destination("qmm", &receiver.endpoint(), "")
    );
    let mut gateway = Gateway::start(dir.path(), None, &config);
    let client = reqwest::Client::new();
    const N: i64 = 8;
    for seed in 1..=N as u64 {
        gateway
            .submit(&client, &submission("RM1", 500 + seed))
            .await;
    }
    receiver
        .wait_until(WAIT, "a delivery in flight", |r| r.len() >= 2)
        .await;
    gateway.kill();
    let before = receiver.received();
    assert!(
        (before.len() as i64) < N,
        "everything was delivered before the kill; the test needs slower deliveries"
    );

    let _gateway = Gateway::start(dir.path(), None, &config);
    let got = receiver
        .wait_until(WAIT, "every event after the restart", |r| {
            accepted_numbers(r)
                .into_iter()
                .collect::<BTreeSet<_>>()
                .len()
                == N as usize
        })
        .await;
    let numbers: BTreeSet<i64> = got.iter().map(|r| r.number).collect();
    assert_eq!(numbers, (1..=N).collect(), "lost or unexpected events");
    assert_repeats_are_identical(&got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_delivery_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start_with(vec![], slow(1_000)).await;
    let config = format!(
        "{FAST_DELIVERY}{}",
        push_destination("qmm", &receiver.endpoint(), "")
    );
    let mut gateway = Gateway::start(dir.path(), None, &config);
    let client = reqwest::Client::new();
    for seed in 1..=3 {
        gateway
            .submit(&client, &submission("RGP", 600 + seed))
            .await;
    }
    receiver
        .wait_until(WAIT, "the first delivery", |r| !r.is_empty())
        .await;
    gateway.terminate();
    let before = receiver.received();
    let _gateway = Gateway::start(dir.path(), None, &config);
    let got = receiver
        .wait_until(WAIT, "all three", |r| accepted_numbers(r).len() >= 3)
        .await;
    // What was answered before the stop was recorded as delivered: no number is sent twice.
    assert_eq!(accepted_numbers(&got), [1, 2, 3], "{before:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_deliver_each_event_once_in_order() {
    let Some(db) = common::pg::fresh_database("pqom_deliver2").await else {
        return;
    };
    let receiver = Receiver::start(vec![]).await;
    let config = format!(
        "{FAST_DELIVERY}{}",
        push_destination("qmm", &receiver.endpoint(), "")
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Gateway::start(dir_a.path(), Some(&db.url), &config);
    let b = Gateway::start(dir_b.path(), Some(&db.url), &config);
    let client = reqwest::Client::new();
    const N: u64 = 10;
    for seed in 1..=N {
        let gateway = if seed % 2 == 0 { &a } else { &b };
        gateway
            .submit(&client, &submission("RCX", 700 + seed))
            .await;
    }
    let got = receiver
        .wait_until(WAIT, "every event", |r| r.len() >= N as usize)
        .await;
    // Both instances are still running: anything sent twice would show up after the N-th; a
    // second batch, delivered after it, proves both had time to do so.
    for seed in N + 1..=N + 2 {
        a.submit(&client, &submission("RCX", 700 + seed)).await;
    }
    let got_all = receiver
        .wait_until(WAIT, "the second batch", |r| r.len() >= got.len() + 2)
        .await;
    let numbers: Vec<i64> = got_all.iter().map(|r| r.number).collect();
    assert_eq!(numbers, (1..=N as i64 + 2).collect::<Vec<_>>());
}
