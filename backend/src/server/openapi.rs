//! Owns the API's OpenAPI 3.1 document, generated from the handlers' annotations and the
//! `vigie_proto` types they return (the cockpit's own types), served at
//! `GET /api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vigie",
        description = "Real-time hypervision of omnichannel customer-service centres: KPI \
            snapshots, deflection switches, alerts. Every error is an `ErrorBody`. The \
            websocket `/api/v1/ws` pushes `ServerMessage`s and takes `ClientMessage`s.",
    ),
    paths(
        super::snapshot,
        super::agents::list,
        super::events::ingest,
        super::ws::upgrade,
        super::switches::list,
        super::switches::get,
        super::switches::flip,
        super::switches::audit,
        super::autopilot::rules,
        super::autopilot::apply,
        super::cockpit::info,
        super::alerts::list,
        super::alerts::rules,
        super::alerts::acknowledge,
        document,
        super::healthz,
        super::readyz,
        super::metrics,
    ),
    components(schemas(vigie_proto::ServerMessage, vigie_proto::ClientMessage)),
    modifiers(&BearerAuth),
    tags(
        (name = "kpis", description = "KPI snapshots and the live websocket"),
        (name = "switches", description = "Deflection switches and their audit trail"),
        (name = "alerts", description = "Alerts and the rules in force"),
        (name = "cockpit", description = "What the cockpit loads at start"),
        (name = "probes", description = "Health, readiness and metrics (no token)"),
    )
)]
#[derive(Debug)]
pub(crate) struct ApiDoc;

/// Bearer tokens: a configured token or an OIDC JWT (websockets may pass
/// `?access_token=`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "probes",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json"))
)]
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_openapi_3_1_with_the_wire_types() {
        let json = serde_json::to_value(spec()).expect("serializable");
        assert!(
            json["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            json["openapi"]
        );
        let schemas = &json["components"]["schemas"];
        for name in [
            "Snapshot",
            "Kpis",
            "SwitchList",
            "ErrorBody",
            "AlertList",
            "ServerMessage",
        ] {
            assert!(schemas.get(name).is_some(), "{name} in components");
        }
    }
}
