//! Runtime configuration of `pqom-gateway serve`.
//!
//! Every setting has one name and four sources, strongest first: command-line flag, environment
//! variable (`PQOM_*`), config file (`--config FILE`, TOML) and the built-in default. Unknown keys
//! in the file are an error: a misspelt setting must not be silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// Errors of loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of `serve` (each also `PQOM_<NAME>` in the environment and `<name>` in the config file).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, env = "PQOM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded SQLite store and generated keys.
    #[arg(long, env = "PQOM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...); selects PostgreSQL instead of the embedded SQLite store.
    #[arg(long, env = "PQOM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "PQOM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of PQOM conformance resources (StructureDefinitions, ValueSets, ...).
    #[arg(long, env = "PQOM_PROFILES_DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Directory of the base FHIR R4 definitions.
    #[arg(long, env = "PQOM_DEFINITIONS_DIR")]
    pub definitions_dir: Option<PathBuf>,
    /// Directory of Annex 1 mapping rules and the organisation directory.
    #[arg(long, env = "PQOM_MAPPINGS_DIR")]
    pub mappings_dir: Option<PathBuf>,
    /// Largest accepted request body in bytes (default 10 MiB).
    #[arg(long, env = "PQOM_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Deepest accepted JSON nesting (default 64).
    #[arg(long, env = "PQOM_MAX_JSON_DEPTH")]
    pub max_json_depth: Option<usize>,
    /// Request timeout in seconds (default 30).
    #[arg(long, env = "PQOM_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Log format: text or json.
    #[arg(long, env = "PQOM_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// PEM certificate chain; with --tls-key, serve HTTPS (rustls).
    #[arg(long, env = "PQOM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "PQOM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Accept plain-http Subscription endpoints on localhost / 127.0.0.1 / [::1] (development
    /// and tests; every other endpoint must be https).
    #[arg(long, env = "PQOM_SUBSCRIPTION_HTTP_LOOPBACK")]
    pub subscription_http_loopback: bool,
}

/// The config file: the same settings as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    profiles_dir: Option<PathBuf>,
    definitions_dir: Option<PathBuf>,
    mappings_dir: Option<PathBuf>,
    body_limit: Option<usize>,
    max_json_depth: Option<usize>,
    request_timeout: Option<u64>,
    log_format: Option<LogFormat>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    subscription_http_loopback: Option<bool>,
    /// `[signing]`: keys for signed Provenance (see `deliver::keys`). Absent: development key.
    #[serde(default)]
    signing: crate::deliver::keys::SigningConfig,
    /// `[deliver]` and `[[deliver.destination]]`: delivery settings and static destinations.
    #[serde(default)]
    deliver: crate::deliver::destinations::DeliverConfig,
}

/// TLS material for serving HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub profiles_dir: PathBuf,
    pub definitions_dir: PathBuf,
    pub mappings_dir: PathBuf,
    pub body_limit: usize,
    pub max_json_depth: usize,
    pub request_timeout: std::time::Duration,
    pub log_format: LogFormat,
    pub tls: Option<TlsFiles>,
    /// Signing keys (`[signing]` in the config file only: key material is not a flag).
    pub signing: crate::deliver::keys::SigningConfig,
    /// Delivery settings and static destinations (`[deliver]` in the config file only).
    pub deliver: crate::deliver::destinations::DeliverConfig,
    /// Plain-http Subscription endpoints allowed on the loopback interface.
    pub subscription_http_loopback: bool,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

impl Config {
    /// Resolve flags/environment over the config file over defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = match args.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|e| ConfigError::Invalid {
                name: "listen",
                message: format!("{e}"),
            })?,
        };
        let body_limit = args
            .body_limit
            .or(file.body_limit)
            .unwrap_or(DEFAULT_BODY_LIMIT);
        if body_limit == 0 {
            return Err(ConfigError::Invalid {
                name: "body_limit",
                message: "must be greater than 0".into(),
            });
        }
        let max_json_depth = args
            .max_json_depth
            .or(file.max_json_depth)
            .unwrap_or(DEFAULT_MAX_JSON_DEPTH);
        if !(8..=crate::ingest::MAX_DEPTH_CAP).contains(&max_json_depth) {
            return Err(ConfigError::Invalid {
                name: "max_json_depth",
                message: format!(
                    "{max_json_depth} is out of range; FHIR resources need at least 8 levels and {} is the most accepted",
                    crate::ingest::MAX_DEPTH_CAP
                ),
            });
        }
        let timeout = args
            .request_timeout
            .or(file.request_timeout)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
        if timeout == 0 {
            return Err(ConfigError::Invalid {
                name: "request_timeout",
                message: "must be at least 1 second".into(),
            });
        }
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "tls_cert/tls_key",
                    message: "give both the certificate and the key, or neither".into(),
                });
            }
        };
        file.deliver
            .check()
            .map_err(|message| ConfigError::Invalid {
                name: "deliver",
                message,
            })?;
        let root = project_root();
        Ok(Config {
            listen,
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            database_url: args.database_url.clone().or(file.database_url),
            profiles_dir: args
                .profiles_dir
                .clone()
                .or(file.profiles_dir)
                .unwrap_or_else(|| root.join("profiles")),
            definitions_dir: args
                .definitions_dir
                .clone()
                .or(file.definitions_dir)
                .unwrap_or_else(|| root.join("definitions/r4")),
            mappings_dir: args
                .mappings_dir
                .clone()
                .or(file.mappings_dir)
                .unwrap_or_else(|| root.join("mappings")),
            body_limit,
            max_json_depth,
            request_timeout: std::time::Duration::from_secs(timeout),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            tls,
            signing: file.signing,
            deliver: file.deliver,
            subscription_http_loopback: args.subscription_http_loopback
                || file.subscription_http_loopback.unwrap_or(false),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Where `profiles/`, `definitions/` and `mappings/` are found by default: the working directory
/// when it holds them (a checkout, or the container image's /app), else the source tree this
/// binary was built from (so `cargo run` works from any directory).
pub fn project_root() -> PathBuf {
    let cwd = PathBuf::from(".");
    if cwd.join("profiles").is_dir() && cwd.join("mappings").is_dir() {
        return cwd;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn defaults_apply_without_file_or_flags() {
        let cfg = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(cfg.body_limit, DEFAULT_BODY_LIMIT);
        assert!(cfg.database_url.is_none());
        assert!(cfg.tls.is_none());
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "listen = \"127.0.0.1:9000\"\nbody_limit = 2048\nlog_format = \"json\""
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(f.path().to_owned()),
            body_limit: Some(4096),
            ..Default::default()
        };
        let cfg = Config::resolve(&args).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(cfg.body_limit, 4096);
        assert_eq!(cfg.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "lisen = \"127.0.0.1:9000\"").unwrap();
        let args = ServeArgs {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = Config::resolve(&args).unwrap_err().to_string();
        assert!(err.contains("invalid config file"), "{err}");
    }

    #[test]
    fn half_a_tls_pair_is_rejected() {
        let args = ServeArgs {
            tls_cert: Some("cert.pem".into()),
            ..Default::default()
        };
        assert!(Config::resolve(&args).is_err());
    }
}
