//! The admin HTTP API (actix-web): `/api/v1/...`, `/healthz`, `/readyz`, `/metrics`.
//!
//! Every route is declared in [`ROUTES`] and registered by [`configure`]; the OpenAPI
//! document (`/api/v1/openapi.json`) lists exactly these (a test checks both ways). All
//! `/api/v1` routes sit in one scope, so one authentication/authorization layer can wrap
//! them all. Errors are JSON `{"code", "message"}`, including unknown routes, wrong methods
//! and malformed query strings.

pub mod admin;
pub mod error;
pub mod flows;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use flowmesh_actors::storage::FlowStore;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::daemon::ingest::Ingestor;
use error::ApiError;

/// The OpenAPI 3 document of the routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The flow store.
    pub store: Arc<FlowStore>,
    /// The ingest queue.
    pub ingestor: Arc<Ingestor>,
    /// The configuration (reloaded on SIGHUP).
    pub config: Arc<RwLock<Config>>,
    /// The Prometheus recorder.
    pub prometheus: PrometheusHandle,
    /// Ready for work (cleared while shutting down).
    pub ready: Arc<AtomicBool>,
    /// The live capture pipeline, when capturing from an interface.
    pub live: Option<Arc<crate::daemon::live::LiveCapture>>,
    /// When the daemon started.
    pub started: Instant,
    /// Where uploads are written while they are ingested.
    pub incoming: PathBuf,
    /// Uploads so far (names their files).
    pub uploads: AtomicU64,
}

impl AppState {
    /// The `[api]` settings now (SIGHUP may change them).
    pub fn api(&self) -> crate::config::ApiConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .api
            .clone()
    }
}

/// Every route: method and path (`{id}` for path parameters).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/flows"),
    ("GET", "/api/v1/flows/{id}"),
    ("GET", "/api/v1/fingerprints/top"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/actors"),
    ("POST", "/api/v1/ingest/pcap"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found(format!(
        "no route {} {}; see /api/v1/openapi.json",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p)| req.match_pattern().is_some_and(|pattern| pattern == *p))
        .map(|(m, _)| *m)
        .collect();
    actix_web::ResponseError::error_response(&ApiError {
        status: actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!(
            "{} is not allowed on {}; use {}",
            req.method(),
            req.path(),
            allowed.join(" or ")
        ),
    })
}

/// A resource answering `method` with `handler`, and JSON 405 for other methods.
fn resource<F, Args>(path: &str, method: Method, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::method(method).to(handler))
        .default_service(web::to(method_not_allowed))
}

/// Registers every route of [`ROUTES`] and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let query_errors = web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request("bad_parameter", format!("{err}; see /api/v1/openapi.json")).into()
    });
    cfg.app_data(query_errors)
        .service(
            web::scope("/api/v1")
                .service(resource("/flows", Method::GET, flows::list))
                .service(resource("/flows/{id}", Method::GET, flows::get))
                .service(resource("/fingerprints/top", Method::GET, flows::top))
                .service(resource("/stats", Method::GET, admin::stats))
                .service(resource("/actors", Method::GET, admin::actors))
                .service(resource("/ingest/pcap", Method::POST, admin::ingest))
                .service(resource("/openapi.json", Method::GET, openapi)),
        )
        .service(resource("/healthz", Method::GET, admin::healthz))
        .service(resource("/readyz", Method::GET, admin::readyz))
        .service(resource("/metrics", Method::GET, admin::metrics))
        .default_service(web::to(not_found));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, routes);
    }
}
