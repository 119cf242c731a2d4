//! The real `pqom-gateway serve` binary as a child process (for delivery tests: the engine runs
//! only in `serve`), and a wiremock receiver that records what it was sent and answers from a
//! script.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Delivery settings small enough for tests (retries within a second, short leases).
pub const FAST_DELIVERY: &str = "[deliver]\n\
    poll_interval_ms = 100\n\
    initial_backoff_ms = 100\n\
    max_backoff_seconds = 1\n\
    request_timeout_seconds = 2\n\
    lease_seconds = 6\n";

/// A running gateway process.
pub struct Gateway {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:{port}`
    pub url: String,
    pub data_dir: PathBuf,
}

impl Gateway {
    /// Start `serve` on a random port with `config` (TOML) written to `data_dir/gateway.toml`;
    /// `database_url` selects PostgreSQL. Returns once the gateway is listening.
    pub fn start(data_dir: &Path, database_url: Option<&str>, config: &str) -> Gateway {
        let config_file = data_dir.join("gateway.toml");
        std::fs::create_dir_all(data_dir).expect("data dir");
        std::fs::write(&config_file, config).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pqom-gateway"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(&config_file)
            .env_remove("PQOM_DATABASE_URL")
            .env("RUST_LOG", "warn,pqom_gateway::deliver=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().expect("start pqom-gateway");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?} (did the gateway fail to start?)"))
            .trim_end_matches('/')
            .to_owned();
        Gateway {
            child,
            _stdout: stdout,
            url,
            data_dir: data_dir.to_owned(),
        }
    }

    pub fn fhir(&self) -> String {
        format!("{}/fhir", self.url)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Submit a message; panics unless it was accepted (200).
    pub async fn submit(&self, client: &reqwest::Client, body: &[u8]) {
        let response = client
            .post(format!("{}/$process-message", self.fhir()))
            .header("content-type", "application/fhir+json")
            .body(body.to_vec())
            .send()
            .await
            .expect("submit");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "submission not accepted: {text}");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A sample submission message from trust `ods` (a distinct message per seed).
pub fn submission(ods: &str, seed: u64) -> Vec<u8> {
    let params = pqom_gateway::samples::ReportParams {
        ods: ods.into(),
        trust_name: format!("Trust {ods}"),
        seed,
        month: 1 + (seed % 12) as u32,
        ..Default::default()
    };
    serde_json::to_vec(&pqom_gateway::samples::submission_bundle(&params)).unwrap()
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Option<Duration>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: None,
            retry_after: None,
        }
    }
}

/// What the receiver was sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Pqom-Event-Number`.
    pub number: i64,
    /// Id of the forwarded bundle (`X-Pqom-Bundle-Id`, else `Bundle.id` of the body).
    pub bundle_id: String,
    pub body: Vec<u8>,
    /// The reply given.
    pub reply: Reply,
}

impl Received {
    /// Whether the gateway saw a 2xx (a reply delayed past FAST_DELIVERY's 2 s request timeout
    /// was not seen).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.reply.status)
            && self.reply.delay.is_none_or(|d| d < Duration::from_secs(2))
    }
}

#[derive(Clone)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    otherwise: Arc<Reply>,
    /// Every request for this event number gets this status.
    fail: Option<(i64, u16)>,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            replies: Arc::default(),
            otherwise: Arc::new(Reply::status(200)),
            fail: None,
            log: Arc::default(),
        }
    }
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let number = request
            .headers
            .get("x-pqom-event-number")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        let reply = match self.fail {
            Some((n, status)) if n == number => Reply::status(status),
            _ => self
                .replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| (*self.otherwise).clone()),
        };
        // The forwarded bundle's id: the header (a notification wraps the bundle), else the body.
        let bundle_id = request
            .headers
            .get("x-pqom-bundle-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                serde_json::from_slice::<Value>(&request.body)
                    .ok()
                    .and_then(|b| b["id"].as_str().map(str::to_owned))
            })
            .unwrap_or_default();
        self.log.lock().unwrap().push(Received {
            number,
            bundle_id,
            body: request.body.clone(),
            reply: reply.clone(),
        });
        let mut template = ResponseTemplate::new(reply.status);
        if let Some(d) = reply.delay {
            template = template.set_delay(d);
        }
        if let Some(r) = &reply.retry_after {
            template = template.insert_header("retry-after", r.as_str());
        }
        template
    }
}

/// A receiving system's `$process-message`.
pub struct Receiver {
    pub server: MockServer,
    script: Script,
}

impl Receiver {
    /// Answers `replies` in order, then 200 to everything.
    pub async fn start(replies: Vec<Reply>) -> Receiver {
        Receiver::start_with(replies, Reply::status(200)).await
    }

    /// Answers `status` to every request for event `number`, 200 to the others.
    pub async fn start_failing(number: i64, status: u16) -> Receiver {
        Receiver::start_script(
            Script {
                fail: Some((number, status)),
                ..Script::default()
            },
            vec![],
        )
        .await
    }

    /// Answers `replies` in order, then `otherwise` to everything.
    pub async fn start_with(replies: Vec<Reply>, otherwise: Reply) -> Receiver {
        Receiver::start_script(
            Script {
                otherwise: Arc::new(otherwise),
                ..Script::default()
            },
            replies,
        )
        .await
    }

    async fn start_script(script: Script, replies: Vec<Reply>) -> Receiver {
        let server = MockServer::start().await;
        script.replies.lock().unwrap().extend(replies);
        Mock::given(method("POST"))
            .respond_with(script.clone())
            .mount(&server)
            .await;
        Receiver { server, script }
    }

    pub fn endpoint(&self) -> String {
        format!("{}/fhir/$process-message", self.server.uri())
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.log.lock().unwrap().clone()
    }

    /// Replies the gateway saw as 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }

    /// Wait until `done` holds for what was received, or fail after `deadline` with `what`.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if start.elapsed() > deadline {
                let summary: Vec<_> = got.iter().map(|r| (r.number, r.reply.status)).collect();
                panic!("timed out waiting for {what}; received (number, reply): {summary:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Numbers accepted (2xx) by a receiver, in arrival order.
pub fn accepted_numbers(received: &[Received]) -> Vec<i64> {
    received
        .iter()
        .filter(|r| r.accepted())
        .map(|r| r.number)
        .collect()
}

/// A static push destination block.
pub fn push_destination(name: &str, endpoint: &str, filters: &str) -> String {
    format!(
        "\n[[deliver.destination]]\nname = \"{name}\"\nendpoint = \"{endpoint}\"\n\
         receiver_ods = \"QMM\"\n{filters}\n"
    )
}
