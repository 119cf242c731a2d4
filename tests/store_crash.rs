//! A commit that returned is durable even if the gateway is killed with SIGKILL right after:
//! a child process (this test binary, re-run as `crash_child`) commits submissions and prints
//! each id once `commit_submission` has returned; the parent kills it mid-stream, reopens the
//! SQLite file, and finds every printed submission with its exact bytes and resource.
//!
//! (A machine crash is what `synchronous=FULL` adds on top; that cannot be simulated here.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use pqom_gateway::store::{self, Channel, NewSubmission, ResourceWrite, SubmissionStatus};

const CHILD_ENV: &str = "PQOM_CRASH_CHILD_DATA_DIR";
/// Commits the parent waits for before killing the child.
const BEFORE_KILL: usize = 25;

fn body_for(n: usize) -> Vec<u8> {
    format!(
        "{{\"resourceType\":\"Bundle\",\"n\":{n},\"pad\":\"{}\"}}",
        "x".repeat(4096)
    )
    .into_bytes()
}

#[test]
fn sqlite_commits_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut committed: Vec<(usize, Uuid, String)> = Vec::new();
    let parse = |line: &str| -> Option<(usize, Uuid, String)> {
        let mut parts = line.strip_prefix("committed ")?.split(' ');
        Some((
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.to_owned(),
        ))
    };
    for line in lines.by_ref() {
        if let Some(entry) = parse(&line.expect("read child")) {
            committed.push(entry);
            if committed.len() == BEFORE_KILL {
                break;
            }
        }
    }
    assert_eq!(
        committed.len(),
        BEFORE_KILL,
        "child stopped before committing enough"
    );
    child.kill().expect("SIGKILL child");
    // Lines the child printed before it died were all for returned commits.
    for line in lines.map_while(Result::ok) {
        if let Some(entry) = parse(&line) {
            committed.push(entry);
        }
    }
    child.wait().expect("reap child");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = store::open(None, dir.path())
            .await
            .expect("reopen after kill");
        for (n, submission_id, resource_id) in &committed {
            assert_eq!(
                store.submission_body(*submission_id).await.expect("body"),
                Some(body_for(*n)),
                "submission {n} was acknowledged but is missing after kill -9"
            );
            let resource = store
                .read("MeasureReport", resource_id)
                .await
                .expect("read");
            assert_eq!(resource.map(|r| r.submission_id), Some(*submission_id));
        }
    });
}

/// Not a test on its own: the process `sqlite_commits_survive_kill_9` kills.
#[test]
#[ignore = "run by sqlite_commits_survive_kill_9 as a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = store::open(None, std::path::Path::new(&dir))
            .await
            .expect("open");
        for n in 0..100_000usize {
            let body = body_for(n);
            let submission = NewSubmission {
                id: Uuid::new_v4(),
                received_at: OffsetDateTime::now_utc(),
                channel: Channel::Message,
                message_id: Some(format!("crash-{n}")),
                sender: Some("RX1".into()),
                sha256: String::new(),
                body,
                status: SubmissionStatus::Accepted,
                outcome: json!({"resourceType": "OperationOutcome"}),
                response: None,
                resources: vec![ResourceWrite {
                    resource_type: "MeasureReport".into(),
                    resource: json!({"resourceType": "MeasureReport", "status": "complete"}),
                    identifier: Some(("urn:crash".into(), n.to_string())),
                }],
                event: None,
                indicator_values: vec![],
            };
            let id = submission.id;
            match store.commit_submission(submission).await.expect("commit") {
                store::CommitOutcome::Committed(written) => {
                    // Printed only after the commit returned: the parent's evidence.
                    println!("committed {n} {id} {}", written[0].id);
                }
                store::CommitOutcome::DuplicateMessage(_) => panic!("unexpected duplicate"),
            }
        }
    });
}
