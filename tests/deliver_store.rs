//! The outbox state machine in the store (`store::outbox`), on SQLite and PostgreSQL: events
//! only for accepted submissions, fan-out numbering, head-of-line claims, leases, outcomes that
//! only the claimer may record, dead letters, replay.

mod common;

use std::sync::Arc;

use pqom_gateway::store::outbox::{Fanout, Finish, OutboxEvent, TOPIC_SUBMISSION, static_key};
use pqom_gateway::store::{self, Channel, NewSubmission, ResourceWrite, Store, SubmissionStatus};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

const SECOND: i64 = 1_000_000;

fn submission(status: SubmissionStatus, n: u32) -> NewSubmission {
    NewSubmission {
        id: Uuid::new_v4(),
        received_at: OffsetDateTime::now_utc(),
        channel: Channel::Rest,
        message_id: None,
        sender: Some("RM1".into()),
        body: format!("{{\"n\":{n}}}").into_bytes(),
        sha256: "0".repeat(64),
        status,
        outcome: json!({"resourceType": "OperationOutcome", "issue": []}),
        response: None,
        resources: if status == SubmissionStatus::Accepted {
            vec![ResourceWrite {
                resource_type: "MeasureReport".into(),
                resource: json!({"resourceType": "MeasureReport", "status": "complete", "n": n}),
                identifier: None,
            }]
        } else {
            vec![]
        },
        event: Some(OutboxEvent {
            topic: TOPIC_SUBMISSION.into(),
            reporter: Some("RM1".into()),
            icb: Some("QMM".into()),
            region: Some("Y61".into()),
            indicators: vec!["stillbirth-rate".into()],
        }),
        indicator_values: vec![],
    }
}

fn now() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

async fn state_machine(store: Arc<dyn Store>) {
    let outbox = store.outbox().expect("outbox");
    for n in 1..=3 {
        store
            .commit_submission(submission(SubmissionStatus::Accepted, n))
            .await
            .unwrap();
    }
    // A rejected submission writes no event even if one is given.
    store
        .commit_submission(submission(SubmissionStatus::Rejected, 9))
        .await
        .unwrap();
    assert_eq!(outbox.queue_depth().await.unwrap(), (0, 3));

    outbox
        .sync_static_destinations(&["a".into(), "b".into()])
        .await
        .unwrap();
    let route = |_: &pqom_gateway::store::outbox::EventRecord| {
        vec![
            Fanout {
                destination: static_key("a"),
                feed: false,
            },
            Fanout {
                destination: static_key("b"),
                feed: false,
            },
        ]
    };
    let t0 = now();
    assert_eq!(outbox.dispatch(100, t0, &route).await.unwrap(), 3);
    assert_eq!(outbox.dispatch(100, t0, &route).await.unwrap(), 0);
    assert_eq!(outbox.queue_depth().await.unwrap(), (6, 0));
    let a = static_key("a");
    let b = static_key("b");
    let listed = outbox.deliveries(&a, 0, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|d| d.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let events: Vec<i64> = listed.iter().map(|d| d.event_seq).collect();
    assert!(events.windows(2).all(|w| w[0] < w[1]), "{events:?}");

    // Only each destination's head is claimable, and once claimed it is leased.
    let eligible = vec![a.clone(), b.clone()];
    let lease = t0 + 60 * SECOND;
    let claims = outbox.claim(&eligible, 10, t0, lease, "one").await.unwrap();
    let mut heads: Vec<(String, i64)> = claims
        .iter()
        .map(|c| (c.destination.clone(), c.number))
        .collect();
    heads.sort();
    assert_eq!(heads, [(a.clone(), 1), (b.clone(), 1)]);
    assert!(
        outbox
            .claim(&eligible, 10, t0, lease, "two")
            .await
            .unwrap()
            .is_empty()
    );

    // Another instance cannot record a retry on a claim it does not hold.
    let retry = Finish::Retry {
        at: t0 + 10 * SECOND,
        status: Some(500),
        error: "HTTP 500".into(),
    };
    assert!(!outbox.finish(&a, 1, "two", &retry).await.unwrap());
    assert!(outbox.finish(&a, 1, "one", &retry).await.unwrap());
    // a#1 waits for its retry time; a#2 is not eligible before a#1 is done.
    assert!(
        outbox
            .claim(std::slice::from_ref(&a), 10, t0 + SECOND, lease, "one")
            .await
            .unwrap()
            .is_empty()
    );
    let again = outbox
        .claim(
            std::slice::from_ref(&a),
            10,
            t0 + 11 * SECOND,
            t0 + 71 * SECOND,
            "two",
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].number, again[0].attempts), (1, 1));
    assert_eq!(
        again[0].bundle_id,
        claims
            .iter()
            .find(|c| c.destination == a)
            .unwrap()
            .bundle_id
    );

    // The claim by "two" lapses; "three" takes it over after the lease.
    let taken = outbox
        .claim(
            std::slice::from_ref(&a),
            10,
            t0 + 72 * SECOND,
            t0 + 132 * SECOND,
            "three",
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        !outbox
            .finish(
                &a,
                1,
                "two",
                &Finish::Dead {
                    status: None,
                    reason: "late".into()
                }
            )
            .await
            .unwrap()
    );
    // Dead-lettered by its claimer: the next event becomes the head.
    assert!(
        outbox
            .finish(
                &a,
                1,
                "three",
                &Finish::Dead {
                    status: Some(500),
                    reason: "retry horizon passed".into()
                }
            )
            .await
            .unwrap()
    );
    let next = outbox
        .claim(
            std::slice::from_ref(&a),
            10,
            t0 + 73 * SECOND,
            t0 + 133 * SECOND,
            "three",
        )
        .await
        .unwrap();
    assert_eq!(next[0].number, 2);
    let dead = outbox.dead_letters(Some(&a), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("retry horizon passed"));

    // Delivered whoever records it; b's next head follows.
    assert!(
        outbox
            .finish(
                &b,
                1,
                "nobody",
                &Finish::Delivered {
                    status: 200,
                    at: t0
                }
            )
            .await
            .unwrap()
    );
    let b2 = outbox
        .claim(std::slice::from_ref(&b), 10, t0, lease, "one")
        .await
        .unwrap();
    assert_eq!(b2[0].number, 2);

    // The payload is kept once: a second build loses to the first.
    let kept = outbox.set_payload(&b, 2, b"first").await.unwrap();
    assert_eq!(kept, b"first");
    assert_eq!(
        outbox.set_payload(&b, 2, b"second").await.unwrap(),
        b"first"
    );

    // Replay: the dead a#1 and delivered b#1 go back to pending.
    assert_eq!(outbox.requeue(&a, 1, 1, t0).await.unwrap(), 1);
    assert_eq!(outbox.requeue(&b, 1, 3, t0).await.unwrap(), 1);
    assert!(outbox.dead_letters(Some(&a), 10).await.unwrap().is_empty());
    // Release: "one" gives back b#2 (shutdown).
    assert_eq!(outbox.release_claims(Some("one")).await.unwrap(), 1);
}

#[tokio::test]
async fn outbox_state_machine_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(None, dir.path()).await.unwrap();
    state_machine(store).await;
}

#[tokio::test]
async fn outbox_state_machine_postgres() {
    let Some(db) = common::pg::fresh_database("pqom_outbox").await else {
        return;
    };
    let store = store::open(Some(&db.url), std::path::Path::new("."))
        .await
        .unwrap();
    state_machine(store).await;
}
