//! Owns the alert list of the switchboard: every alert firing, acknowledged or just
//! resolved, acknowledging one, and applying an autopilot proposal (supervisors).

use leptos::prelude::*;
use vigie_proto::{AckRequest, Alert, AlertState, AutopilotMode, DeflectionSwitch, Role};

use crate::api;
use crate::format::clock;
use crate::i18n::Text;
use crate::state::ctx;

#[component]
pub fn AlertList() -> impl IntoView {
    let c = ctx();
    let can_ack = move || c.role() >= Role::Supervisor;
    // The acknowledgement; the list itself follows the websocket.
    let acknowledge = Action::new_local(move |id: &String| {
        let path = format!("/api/v1/alerts/{}/ack", crate::route::encode(id));
        async move {
            let token = c.token.get_untracked();
            let _ = api::post::<_, Alert>(&path, &AckRequest::default(), token.as_deref()).await;
        }
    });
    // Applying a proposal: the server flips the proposed switch with this supervisor as
    // author; the switch and the resolved proposal come back on the websocket.
    let apply = Action::new_local(move |rule: &String| {
        let path = format!("/api/v1/autopilot/{}/apply", crate::route::encode(rule));
        async move {
            let token = c.token.get_untracked();
            let _ = api::post::<_, DeflectionSwitch>(&path, &(), token.as_deref()).await;
        }
    });
    view! {
        <section class="alert-list">
            <h2>{move || c.t(Text::Alerts)}</h2>
            {move || {
                let alerts = c.live.alerts.get();
                if alerts.is_empty() {
                    return view! { <p class="quiet">{c.t(Text::NoAlerts)}</p> }.into_any();
                }
                alerts
                    .into_iter()
                    .map(|alert| {
                        let id = alert.id.clone();
                        let firing = alert.state == AlertState::Firing;
                        let ack = move |_| {
                            acknowledge.dispatch_local(id.clone());
                        };
                        // An open proposal of the autopilot: one click applies it.
                        let proposal = alert
                            .autopilot
                            .as_ref()
                            .filter(|a| a.mode == AutopilotMode::Propose && alert.state != AlertState::Resolved)
                            .map(|a| a.rule.clone());
                        let proposed = proposal.is_some();
                        let apply_it = move |_| {
                            if let Some(rule) = proposal.clone() {
                                apply.dispatch_local(rule);
                            }
                        };
                        view! {
                            <div class=format!("alert-row {:?}", alert.state).to_lowercase()>
                                <span>{crate::format::alert_line(&alert, c.lang.get())}</span>
                                <span class="since">{clock(alert.since, c.lang.get().code())}</span>
                                {alert.acknowledged_by.clone().map(|who| format!("{} {who}", c.t(Text::AcknowledgedBy)))}
                                <Show when=move || proposed && can_ack()>
                                    <button
                                        class="apply"
                                        disabled=move || apply.pending().get()
                                        on:click=apply_it.clone()
                                    >
                                        {c.t(Text::ApplyProposal)}
                                    </button>
                                </Show>
                                <Show when=move || firing && can_ack()>
                                    <button
                                        class="ack"
                                        disabled=move || acknowledge.pending().get()
                                        on:click=ack.clone()
                                    >
                                        {c.t(Text::Acknowledge)}
                                    </button>
                                </Show>
                            </div>
                        }
                    })
                    .collect_view()
                    .into_any()
            }}
        </section>
    }
}
