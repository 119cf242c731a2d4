//! HTTP interface (axum). Owns routing, content negotiation and the single mapping from
//! every stage's error to an OperationOutcome and an HTTP status. Holds no business logic:
//! submissions go to [`crate::pipeline::Pipeline`], reads and searches to the store.
//!
//! The routes are built from one table ([`routes`]), from which `GET /fhir/metadata` is derived.
//! The body limit is enforced here (413 with an OperationOutcome), not by a tower layer, so the
//! submitter always gets FHIR back. Listening, TLS, request ids, timeouts and tracing layers are
//! the server bootstrap's job.

mod delivery;
pub mod error;
mod handlers;
pub mod metrics;
pub mod negotiate;
pub mod routes;
pub mod subscriptions;
mod validate_op;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::pipeline::Pipeline;
use routes::{Backing, Interaction, OPERATIONS, RESOURCES};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    /// Profiles the validator loaded: (resource type, canonical URL). Advertised in the
    /// CapabilityStatement.
    pub profiles: Arc<Vec<(String, String)>>,
    /// Public base URL of the FHIR endpoint (e.g. `https://gateway.example/fhir`), used in
    /// Location headers and Bundle links. `None`: derived from the request's Host header.
    pub base_url: Option<String>,
    pub metrics: PrometheusHandle,
    /// The validator behind `$validate` (None: the operation answers 503).
    pub validator: Option<Arc<crate::validate::Validator>>,
    /// The gateway's signing keys; their public halves are served at `/.well-known/jwks.json`.
    pub keys: Option<Arc<crate::deliver::keys::KeyRing>>,
    /// The delivery engine behind the pull feed, replay and dead letters (None: those routes
    /// answer 404).
    pub delivery: Option<Arc<crate::deliver::engine::Engine>>,
    /// Subscriptions: parse options, the store, handshakes.
    pub subscriptions: Arc<crate::deliver::subscriber::Subscriber>,
}

impl AppState {
    pub fn new(pipeline: Pipeline) -> Self {
        let subscriptions = Arc::new(crate::deliver::subscriber::Subscriber::new(
            pipeline.store().clone(),
            "http://localhost/fhir",
            Default::default(),
        ));
        AppState {
            subscriptions,
            pipeline,
            profiles: Arc::new(Vec::new()),
            base_url: None,
            metrics: metrics::handle(),
            validator: None,
            keys: None,
            delivery: None,
        }
    }

    pub fn with_delivery(mut self, engine: Arc<crate::deliver::engine::Engine>) -> Self {
        self.delivery = Some(engine);
        self
    }

    pub fn with_profiles(mut self, profiles: Vec<(String, String)>) -> Self {
        self.profiles = Arc::new(profiles);
        self
    }

    pub fn with_validator(mut self, validator: Arc<crate::validate::Validator>) -> Self {
        self.validator = Some(validator);
        self
    }

    pub fn with_keys(mut self, keys: Arc<crate::deliver::keys::KeyRing>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The handshake and heartbeat sender (the same one the background loop runs).
    pub fn with_subscriptions(
        mut self,
        subscriptions: Arc<crate::deliver::subscriber::Subscriber>,
    ) -> Self {
        self.subscriptions = subscriptions;
        self
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into().trim_end_matches('/').to_owned());
        self
    }
}

/// The gateway's HTTP API.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new()
        .route("/fhir/metadata", get(handlers::metadata))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::prometheus))
        .route("/.well-known/jwks.json", get(handlers::jwks));
    for op in OPERATIONS {
        // Clients may percent-encode the `$`.
        let encoded = op.path.replace('$', "%24");
        router = router
            .route(op.path, post(handlers::process_message))
            .route(&encoded, post(handlers::process_message));
    }
    // The GET operations of the table (`READ_OPERATIONS`; one so far).
    let regional = routes::REGIONAL_BUNDLE.path;
    router = router
        .route(regional, get(handlers::regional_bundle))
        .route(
            &regional.replace('$', "%24"),
            get(handlers::regional_bundle),
        );
    router = router.route(routes::SERIES_PATH, get(handlers::indicator_series));
    for def in RESOURCES {
        let ty: &'static str = def.resource_type;
        match def.backing {
            Backing::Submissions => {}
            Backing::Subscriptions => {
                router = subscriptions_routes(router);
                continue;
            }
            Backing::Topics => {
                router = router
                    .route("/fhir/Basic", get(subscriptions::topics))
                    .route("/fhir/Basic/{id}", get(subscriptions::topic));
                continue;
            }
        }
        for &interaction in def.interactions {
            let method: MethodRouter<AppState> = match interaction {
                Interaction::Read => get(move |s, p, f| handlers::read(s, ty, p, f)),
                Interaction::Vread => get(move |s, p, f| handlers::vread(s, ty, p, f)),
                Interaction::HistoryInstance => {
                    get(move |s, p, f, h| handlers::history(s, ty, p, f, h))
                }
                Interaction::SearchType => get(move |s, f, h, q| handlers::search(s, ty, f, h, q)),
                Interaction::Create => post(move |s, f, h, b| handlers::create(s, ty, f, h, b)),
                // Submitted resources change only by resubmission.
                Interaction::Update | Interaction::Delete => continue,
            };
            router = router.route(&interaction.path(ty), method);
        }
    }
    router = validate_op::add_routes(router);
    router = delivery::add_routes(router);
    let limit = state.pipeline.limits().max_body_bytes;
    router
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        // The JSON body extractor applies the configured limit itself.
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// The Subscription routes (the table's `Subscription` entry): CRUD, search and `$status`.
fn subscriptions_routes(router: Router<AppState>) -> Router<AppState> {
    let status = get(subscriptions::status).post(subscriptions::status);
    router
        .route(
            "/fhir/Subscription",
            get(subscriptions::search).post(subscriptions::create),
        )
        .route(
            "/fhir/Subscription/{id}",
            get(subscriptions::read)
                .put(subscriptions::update)
                .delete(subscriptions::delete),
        )
        .route(routes::SUBSCRIPTION_STATUS.path, status.clone())
        .route("/fhir/Subscription/{id}/%24status", status)
}
