//! Owns what the WASM cockpit needs from the server: the bundle directory found and the
//! targets tiles are coloured against (from `[cockpit]`), `GET /api/v1/cockpit`, and
//! serving the bundle itself on every path that is not the API.
//!
//! The bundle is built by `scripts/build-cockpit.sh` into `frontend/dist` (index.html,
//! the wasm-bindgen JS glue, the `.wasm`, each also gzip-compressed). It is looked up at
//! `cockpit.dir`, else `cockpit/` next to the binary, else the source tree's
//! `frontend/dist`; without one, pages answer 503 saying how to build it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};
use vigie_proto::{ChannelTarget, CockpitInfo, Me, Targets};

use super::{ApiError, AppState, Principal};
use crate::config::Settings;

/// The cockpit's settings as served: the bundle directory found and the targets.
#[derive(Clone, Debug)]
pub struct Cockpit {
    pub dir: Option<PathBuf>,
    pub targets: Targets,
    pub time_zone: String,
}

impl Default for Cockpit {
    fn default() -> Self {
        Cockpit {
            dir: find_bundle(None),
            targets: Targets::default(),
            time_zone: "UTC".into(),
        }
    }
}

impl Cockpit {
    /// From validated settings: service-level rules come from the engine's channels.
    pub fn from_settings(settings: &Settings) -> Cockpit {
        let c = &settings.cockpit;
        let channels = settings
            .engine
            .channels
            .iter()
            .filter_map(|(name, channel)| {
                let sl = channel.service_level.as_ref()?;
                Some((
                    name.clone(),
                    ChannelTarget {
                        threshold_ms: sl.threshold.as_millis() as u64,
                        target: sl.target,
                    },
                ))
            })
            .collect::<BTreeMap<_, _>>();
        Cockpit {
            dir: find_bundle(c.dir.as_deref()),
            targets: Targets {
                channels,
                answer_rate: c.answer_rate_target,
                once_and_done: c.once_and_done_target,
                margin: c.margin,
                abandon_rate_warning: c.abandon_rate_warning,
                abandon_rate_breach: c.abandon_rate_breach,
                cross_channel_warning: c.cross_channel_warning,
                cross_channel_breach: c.cross_channel_breach,
                oldest_wait_warning_ms: c.oldest_wait_warning.as_millis() as u64,
                oldest_wait_breach_ms: c.oldest_wait_breach.as_millis() as u64,
                quiet_after_ms: c.quiet_after.as_millis() as u64,
                occupancy_warning: c.occupancy_warning,
                occupancy_breach: c.occupancy_breach,
            },
            time_zone: settings.engine.time_zone.clone(),
        }
    }
}

/// The configured directory, else `cockpit/` next to the binary, else the source tree's.
fn find_bundle(configured: Option<&Path>) -> Option<PathBuf> {
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("cockpit")));
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend/dist");
    configured
        .map(Path::to_path_buf)
        .into_iter()
        .chain(beside_binary)
        .chain([source_tree])
        .find(|dir| dir.join("index.html").is_file())
}

/// Values per dimension offered by the filter selectors (bounded: a selector is for humans).
const MAX_FILTER_VALUES: usize = 200;

/// What the cockpit loads at start: the caller, the targets and the filter values.
#[utoipa::path(
    get,
    path = "/api/v1/cockpit",
    tag = "cockpit",
    security(("bearer" = [])),
    responses((status = 200, body = CockpitInfo))
)]
pub async fn info(caller: Principal, State(state): State<AppState>) -> Json<CockpitInfo> {
    Json(CockpitInfo {
        me: Some(Me {
            name: caller.name,
            role: caller.role,
        }),
        targets: state.cockpit.targets.clone(),
        dimensions: state.engines.dimension_values(MAX_FILTER_VALUES),
        time_zone: state.cockpit.time_zone.clone(),
    })
}

/// Every path outside the API: the cockpit's files, and its page for any other path
/// (`/wall`, `/switchboard`) so that a bookmarked view loads.
pub(crate) async fn assets(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") {
        return ApiError::NotFound(path.to_string()).into_response();
    }
    let Some(dir) = state.cockpit.dir.as_deref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, Html(NOT_BUILT)).into_response();
    };
    let files = ServeDir::new(dir)
        .precompressed_gzip()
        .fallback(ServeFile::new(dir.join("index.html")).precompressed_gzip());
    match files.oneshot(request).await {
        Ok(mut response) => {
            // File names are not content-hashed: browsers revalidate (cheap, with Last-Modified).
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response.map(Body::new)
        }
        Err(never) => match never {},
    }
}

const NOT_BUILT: &str = "<!doctype html><title>Vigie</title><h1>The cockpit is not built</h1>\
<p>Run <code>scripts/build-cockpit.sh</code> (or <code>scripts/demo.sh</code>), or set \
<code>cockpit.dir</code> to a built bundle. The API is up under <code>/api/v1/</code>.</p>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_targets_come_from_the_engine_rules() {
        let cockpit = Cockpit::from_settings(&Settings::default());
        let phone = cockpit.targets.channels["phone"];
        assert_eq!((phone.threshold_ms, phone.target), (20_000, 0.8));
        assert!(!cockpit.targets.channels.contains_key("visual_ivr"));
    }
}
