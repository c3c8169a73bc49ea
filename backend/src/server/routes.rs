//! Owns the route table: every route of the API, its method and path, and the handler
//! behind it. The router is built from this table only, so the table is the router:
//! `vigie routes` prints it, the deploy check reads the probe paths from it, and a test
//! checks that the OpenAPI document lists exactly its routes.

use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;

use super::{
    agents, alerts, autopilot, cockpit, events, healthz, metrics, openapi, readyz, snapshot,
    switches, ws, AppState,
};

/// One route: a method and a path (`{id}` for a path parameter, as in OpenAPI).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Each route, once.
fn table() -> Vec<(Route, MethodRouter<AppState>)> {
    let route = |method: Method, path: &'static str, handler: MethodRouter<AppState>| {
        (Route { method, path }, handler)
    };
    use axum::routing::{get, post, put};
    vec![
        route(Method::GET, "/api/v1/snapshot", get(snapshot)),
        route(Method::GET, "/api/v1/agents", get(agents::list)),
        // Its own body limit (server.max_ingest_body), checked by the handler.
        route(
            Method::POST,
            "/api/v1/events",
            post(events::ingest).layer(axum::extract::DefaultBodyLimit::disable()),
        ),
        route(Method::GET, "/api/v1/ws", get(ws::upgrade)),
        route(Method::GET, "/api/v1/switches", get(switches::list)),
        route(Method::GET, "/api/v1/switches/{id}", get(switches::get)),
        route(Method::PUT, "/api/v1/switches/{id}", put(switches::flip)),
        route(Method::GET, "/api/v1/audit", get(switches::audit)),
        route(Method::GET, "/api/v1/autopilot", get(autopilot::rules)),
        route(
            Method::POST,
            "/api/v1/autopilot/{rule}/apply",
            post(autopilot::apply),
        ),
        route(Method::GET, "/api/v1/cockpit", get(cockpit::info)),
        route(Method::GET, "/api/v1/alerts", get(alerts::list)),
        route(Method::GET, "/api/v1/alerts/rules", get(alerts::rules)),
        route(
            Method::POST,
            "/api/v1/alerts/{id}/ack",
            post(alerts::acknowledge),
        ),
        route(Method::GET, "/api/v1/openapi.json", get(openapi::document)),
        route(Method::GET, "/healthz", get(healthz)),
        route(Method::GET, "/readyz", get(readyz)),
        route(Method::GET, "/metrics", get(metrics)),
    ]
}

/// Every route of the API, sorted by path then method.
pub fn routes() -> Vec<Route> {
    let mut routes: Vec<Route> = table().into_iter().map(|(route, _)| route).collect();
    routes.sort_by(|a, b| (a.path, a.method.as_str()).cmp(&(b.path, b.method.as_str())));
    routes
}

/// The router of the table (one path may carry several methods).
pub(super) fn router() -> Router<AppState> {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for (route, handler) in table() {
        match by_path.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(handler),
            None => by_path.push((route.path, handler)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
}
