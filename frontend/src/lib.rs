//! The Vigie cockpit: the wall view the hypervision team keeps on TV screens and the
//! switchboard supervisors flip deflection switches from. Leptos, rendered in the
//! browser (WASM), fed by the server's websocket and REST API.
//!
//! # Layout
//! - [`app`]: the page, its header (views, window, filters, language, freshness badge)
//!   and the alert banner; [`state`]: what every component reads ([`state::Ctx`]); the
//!   view state lives in the URL ([`route`]).
//! - [`wall`]: KPI tiles per channel with sparklines and formulas, and the queue table.
//! - [`switchboard`]: the switches; inside it the pressure table (one channel's KPIs by
//!   contact reason, worst first), the flip dialog and new switch, alerts with ack and
//!   the audit trail.
//! - [`live`]: the websocket link (subscription, reconnect with backoff, stale detection).
//! - [`api`]: REST calls and the access token.
//! - Pure view logic, unit-tested natively: [`format`] (numbers, waits, badge, clock),
//!   [`levels`] (colour against targets), [`spark`] (sparkline geometry),
//!   [`route`] (URL ↔ view state), [`i18n`] (French and English).

pub mod api;
pub mod app;
pub mod format;
pub mod i18n;
pub mod levels;
pub mod live;
pub mod route;
pub mod spark;
pub mod state;
pub mod switchboard;
pub mod wall;

/// Entry point called by the wasm-bindgen glue when the module loads.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
