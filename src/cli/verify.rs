//! `pqom-gateway verify FILE [--jwks FILE_OR_URL] [--submission FILE]`: check a forwarded bundle
//! the way a receiver would, print one PASS/FAIL line per check, exit non-zero on failure.
//!
//! Owns argument handling, reading the files, fetching a JWKS over HTTP(S) and printing. The checks
//! themselves are [`crate::deliver::forward::verify`]. Exit codes: 0 all checks passed, 1 a check
//! failed, 2 the inputs could not be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::deliver::forward;
use crate::deliver::keys::{self, Jwks, PublicKey};

/// Largest JWKS accepted from a file or URL (a JWKS is a few hundred bytes per key).
const MAX_JWKS_BYTES: usize = 1 << 20;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The forwarded bundle (JSON) to check.
    pub file: PathBuf,
    /// JWKS to verify against: a file, or an http(s) URL such as
    /// https://gateway.example/.well-known/jwks.json. Default: this gateway's development key in
    /// the data directory.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub jwks: Option<String>,
    /// The original submission as the trust sent it: its SHA-256 must match the Provenance.
    #[arg(long, value_name = "FILE")]
    pub submission: Option<PathBuf>,
    /// Data directory holding the development key (used when --jwks is not given).
    #[arg(long, env = "PQOM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

/// Why the inputs could not be read (exit code 2, not a verification failure).
#[derive(Debug, thiserror::Error)]
pub enum VerifyCliError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch the JWKS from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{origin} is not a JWKS ({reason})")]
    Jwks { origin: String, reason: String },
    #[error(
        "no --jwks given and no development key in {0}; pass --jwks FILE_OR_URL \
         (e.g. https://gateway.example/.well-known/jwks.json)"
    )]
    NoKeys(PathBuf),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
}

pub fn run(args: VerifyArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &VerifyArgs) -> Result<bool, VerifyCliError> {
    let bundle = read(&args.file)?;
    let submission = args.submission.as_deref().map(read).transpose()?;
    let (jwks, jwks_origin) = match &args.jwks {
        Some(src) if src.starts_with("http://") || src.starts_with("https://") => {
            (parse_jwks(&fetch(src)?, src)?, src.clone())
        }
        Some(path) => (parse_jwks(&read(Path::new(path))?, path)?, path.clone()),
        None => {
            let dir = args.data_dir.join("keys");
            let key = dev_public_key(&dir)?.ok_or(VerifyCliError::NoKeys(dir.clone()))?;
            (
                Jwks {
                    keys: vec![key.to_jwk()],
                },
                format!("development key in {}", dir.display()),
            )
        }
    };

    let report = forward::verify(&bundle, &jwks, submission.as_deref());
    println!("verifying {}", args.file.display());
    println!("  keys: {jwks_origin}");
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = if c.passed { "PASS" } else { "FAIL" };
        println!("  {mark}  {:width$}  {}", c.name, c.detail);
    }
    let failed = report.checks.iter().filter(|c| !c.passed).count();
    if report.passed() {
        println!("OK: all {} checks passed", report.checks.len());
    } else {
        println!("FAILED: {failed} of {} checks failed", report.checks.len());
    }
    Ok(report.passed())
}

fn read(path: &Path) -> Result<Vec<u8>, VerifyCliError> {
    std::fs::read(path).map_err(|source| VerifyCliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_jwks(bytes: &[u8], origin: &str) -> Result<Jwks, VerifyCliError> {
    serde_json::from_slice(bytes).map_err(|e| VerifyCliError::Jwks {
        origin: origin.to_string(),
        reason: e.to_string(),
    })
}

fn dev_public_key(dir: &Path) -> Result<Option<PublicKey>, VerifyCliError> {
    let path = dir.join(keys::DEV_KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    // Loading through the key ring keeps the kid rule (dev- + thumbprint) in one place; the file
    // already exists, so nothing is generated.
    let data_dir = dir.parent().unwrap_or(dir);
    let ring = keys::KeyRing::load(&keys::SigningConfig::default(), data_dir)?;
    Ok(Some(ring.signer().public()))
}

fn fetch(url: &str) -> Result<Vec<u8>, VerifyCliError> {
    let err = |reason: String| VerifyCliError::Fetch {
        url: url.to_string(),
        reason,
    };
    crate::server::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(e.to_string()))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| err(e.to_string()))?;
        let resp = client
            .get(url)
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(err(format!("response larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    })
}
