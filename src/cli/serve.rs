//! `serve` and `demo`: assemble the stages into a running gateway.
//!
//! Start-up order is fail-fast: configuration, store (migrations), conformance resources,
//! mappings; any of them invalid stops the start with the file and place named, before the
//! listener accepts a single request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::Args;

use crate::api::{self, AppState};
use crate::config::{Config, ServeArgs};
use crate::pipeline::{Limits, Pipeline};
use crate::server::{self, Bound};
use crate::store;

/// Everything that can stop the gateway from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error("cannot load the conformance resources: {0}")]
    Profiles(#[from] crate::validate::LoadError),
    #[error("cannot load the mappings: {0}")]
    Mappings(#[from] crate::map::MapLoadError),
    #[error("cannot load the organisation directory: {0}")]
    Directory(#[from] crate::deliver::directory::DirectoryError),
    #[error("cannot load the signing keys")]
    Keys(#[from] crate::deliver::keys::KeyError),
    #[error("cannot start delivery: {0}")]
    Delivery(#[from] crate::deliver::engine::EngineError),
    #[error("cannot prepare the gateway: {0}")]
    Prepare(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the demo's embedded store (kept between runs; sample data loads once).
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
}

pub fn serve(args: ServeArgs) -> ExitCode {
    report(run_blocking(args, None))
}

pub fn demo(args: DemoArgs) -> ExitCode {
    let serve_args = ServeArgs {
        listen: Some(args.listen),
        data_dir: Some(args.data_dir),
        ..ServeArgs::default()
    };
    report(run_blocking(serve_args, Some(Demo)))
}

/// Marker: load the sample submissions before serving and print the URLs to try.
struct Demo;

fn report(result: Result<(), StartError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pqom-gateway: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run_blocking(args: ServeArgs, demo: Option<Demo>) -> Result<(), StartError> {
    let config = Config::resolve(&args)?;
    server::init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(config, demo))
}

async fn run(config: Config, demo: Option<Demo>) -> Result<(), StartError> {
    let store = store::open(config.database_url.as_deref(), &config.data_dir).await?;
    let limits = Limits {
        max_body_bytes: config.body_limit,
        max_depth: config.max_json_depth,
    };
    let bound = Bound::bind(
        config.listen,
        config
            .tls
            .as_ref()
            .map(|t| (t.cert.as_path(), t.key.as_path())),
    )
    .await?;
    let addr = bound.local_addr().map_err(server::ServeError::Io)?;
    let scheme = if bound.is_tls() { "https" } else { "http" };
    let base = format!("{scheme}://{addr}");
    let validator = load_validator(&config).await?;
    let profiles = validator
        .profiles()
        .into_iter()
        .filter(|url| url.starts_with(crate::fhir::CANONICAL_BASE))
        .filter_map(|url| Some((validator.profile_type(url)?.to_owned(), url.to_owned())))
        .collect();
    let mapper = Arc::new(crate::map::Mapper::load(&config.mappings_dir)?);
    let directory = Arc::new(crate::deliver::directory::Directory::load(
        &config.mappings_dir.join("organisations.toml"),
    )?);
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let pipeline = Pipeline::new(store.clone(), limits)
        .with_endpoint(format!("{base}/fhir"))
        .with_validator(validator.clone())
        .with_mapper(mapper.clone())
        .with_directory(directory.clone())
        .with_outbox_wake(outbox_wake.clone());
    // The catalogue's Measures are served like any stored Measure (GET /fhir/Measure); publishing
    // is idempotent, so each start writes only what changed.
    let published = pipeline
        .publish_catalogue()
        .await
        .map_err(|e| StartError::Prepare(format!("publishing the indicator catalogue: {e}")))?;
    tracing::info!(published, "indicator catalogue published");
    if demo.is_some() {
        load_samples(&pipeline).await?;
    }
    let keys = Arc::new(crate::deliver::keys::KeyRing::load(
        &config.signing,
        &config.data_dir,
    )?);
    let store_for_subscriptions = store.clone();
    let engine = Arc::new(crate::deliver::engine::Engine::new(
        crate::deliver::engine::EngineParts {
            store,
            config: config.deliver.clone(),
            directory,
            mapper: Some(mapper),
            keys: keys.clone(),
            gateway: crate::deliver::provenance::Gateway::new(
                format!("{base}/fhir"),
                format!("pqom-gateway@{addr}"),
            ),
            wake: outbox_wake,
            // SQLite: this process is the database's only sender.
            exclusive: config.database_url.is_none(),
        },
    )?);
    let subscriber = Arc::new(crate::deliver::subscriber::Subscriber::new(
        store_for_subscriptions,
        format!("{base}/fhir"),
        crate::deliver::subscription::ParseOptions {
            allow_http_loopback: config.subscription_http_loopback,
        },
    ));
    let state = AppState::new(pipeline)
        .with_subscriptions(subscriber.clone())
        .with_profiles(profiles)
        .with_base_url(format!("{base}/fhir"))
        .with_validator(validator)
        .with_keys(keys)
        .with_delivery(engine.clone());
    let router = api::router(state);

    // One stop signal for the server and the delivery engine: on SIGTERM both stop together;
    // the engine finishes or releases its claims before the process exits.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let delivery = tokio::spawn(engine.run(stop_rx.clone()));
    let mut server_stop = stop_rx.clone();

    // The one line on stdout: scripts and tests read the address from it (logs go to stderr).
    println!("pqom-gateway listening on {base}");
    if demo.is_some() {
        print_demo_help(&base);
    }
    tracing::info!(%base, store = if config.database_url.is_some() { "postgres" } else { "sqlite" }, "ready");
    // Background work stops with the server: the signal that starts draining requests also ends
    // the heartbeat loop and the delivery engine (which finishes or releases its claims).
    let heartbeats = tokio::spawn(subscriber.run(stop_rx));
    let served = bound
        .serve(router, config.request_timeout, async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        })
        .await;
    if tokio::time::timeout(server::DRAIN_TIMEOUT, heartbeats)
        .await
        .is_err()
    {
        tracing::warn!("subscription heartbeats did not stop in time");
    }
    let _ = delivery.await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Base R4 definitions, then the PQOM profile set. Loading compiles every profile, so a broken
/// profile stops the start here, naming the file and element.
async fn load_validator(config: &Config) -> Result<Arc<crate::validate::Validator>, StartError> {
    let sources = vec![config.definitions_dir.clone(), config.profiles_dir.clone()];
    let validator =
        tokio::task::spawn_blocking(move || crate::validate::terminology::load_validator(&sources))
            .await
            .map_err(|e| StartError::Prepare(e.to_string()))??;
    // Rules the engine cannot check are reported once, here. Those in the PQOM profiles matter to
    // this gateway's users (warn); those in base R4 examples do not (debug, with a count).
    let (ours, base): (Vec<_>, Vec<_>) = validator
        .load_warnings()
        .iter()
        .partition(|w| w.profile.starts_with(crate::fhir::CANONICAL_BASE));
    for warning in &ours {
        tracing::warn!(%warning, "PQOM profile rule not checked");
    }
    for warning in &base {
        tracing::debug!(%warning, "base definition rule not checked");
    }
    tracing::info!(
        profiles = validator.profiles().len(),
        unchecked_pqom_rules = ours.len(),
        unchecked_base_rules = base.len(),
        "conformance resources loaded"
    );
    Ok(Arc::new(validator))
}

/// The demo's data: sample trust submissions sent through the same pipeline as HTTP requests,
/// so they are checked and stored like real ones. Message ids are fixed, so a second run of the
/// demo on the same data directory finds them already processed and changes nothing.
async fn load_samples(pipeline: &Pipeline) -> Result<(), StartError> {
    use crate::samples::{ReportParams, submission_bundle};
    let trusts = [
        (
            "RM1",
            "Norfolk and Norwich University Hospitals NHS Foundation Trust",
        ),
        (
            "RGP",
            "James Paget University Hospitals NHS Foundation Trust",
        ),
        (
            "RCX",
            "The Queen Elizabeth Hospital King's Lynn NHS Foundation Trust",
        ),
    ];
    let mut seed = 0;
    for (ods, name) in trusts {
        for month in 7..=10 {
            seed += 1;
            let params = ReportParams {
                ods: ods.into(),
                trust_name: name.into(),
                year: 2026,
                month,
                seed,
            };
            let body = serde_json::to_vec(&submission_bundle(&params))
                .map_err(|e| StartError::Prepare(e.to_string()))?;
            pipeline
                .process_message(body)
                .await
                .map_err(|e| StartError::Prepare(e.to_string()))?;
        }
    }
    Ok(())
}

fn print_demo_help(base: &str) {
    println!(
        "\nDemo data loaded: monthly PQOM reports from RM1, RGP and RCX (Norfolk and Waveney ICB), July to October 2026.\n\
         Try:\n  \
         {base}/fhir/metadata\n  \
         {base}/fhir/MeasureReport?reporter=RM1\n  \
         {base}/fhir/MeasureReport?period=ge2026-09-01&_count=5\n  \
         {base}/fhir/MeasureReport?measure=https://fhir.pqom-gateway.org/Measure/stillbirth-rate&reporter=QMM\n  \
         {base}/api/indicators/stillbirth-rate/series?org=QMM\n  \
         {base}/fhir/Bundle/$regional?region=Y61&period=2026-10\n  \
         {base}/metrics\n\
         Submit your own: see README.md (curl examples). Stop with Ctrl-C."
    );
}
