//! `GET /.well-known/jwks.json` over HTTP on the real router: the gateway publishes every key
//! that verifies (never a private part), and a bundle it signed verifies against the JWKS fetched
//! from it by `pqom-gateway verify --jwks URL`.

mod deliver_support;

use std::net::SocketAddr;
use std::sync::Arc;

use pqom_gateway::api::{self, AppState};
use pqom_gateway::deliver::keys::{KeyRing, SigningKey};
use pqom_gateway::ingest::Limits;
use pqom_gateway::pipeline::Pipeline;

async fn start(keys: Option<Arc<KeyRing>>) -> (SocketAddr, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let store = pqom_gateway::store::open(None, data.path()).await.unwrap();
    let pipeline = Pipeline::new(
        store,
        Limits {
            max_body_bytes: 1 << 20,
            max_depth: 64,
        },
    );
    let mut state = AppState::new(pipeline);
    if let Some(k) = keys {
        state = state.with_keys(k);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    (addr, data)
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_is_published_and_verifies_a_forwarded_bundle() {
    let (old, _) = SigningKey::generate("pqom-2026-05").unwrap();
    let (current, _) = SigningKey::generate("pqom-2026-11").unwrap();
    let report = deliver_support::reference_report("RM1");
    let (bundle, _) = deliver_support::forwarded(&current, &report, "1");
    let ring = Arc::new(KeyRing::new(current, vec![old.public()]).unwrap());
    let (addr, _data) = start(Some(ring)).await;

    let url = format!("http://{addr}/.well-known/jwks.json");
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/jwk-set+json"
    );
    let jwks: serde_json::Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["pqom-2026-11", "pqom-2026-05"]);
    for k in keys {
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none(), "private key published: {k}");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, &bundle).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pqom-gateway"))
            .arg("verify")
            .arg(&file)
            .args(["--jwks", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("PASS  kid"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_keys_the_jwks_is_a_404_operation_outcome() {
    let (addr, _data) = start(None).await;
    let resp = reqwest::get(format!("http://{addr}/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "not-found");
}
