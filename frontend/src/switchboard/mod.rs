//! Owns the supervisor view: the deflection switches with their state, author, reason,
//! expiry and live effect, and the draft of a change ([`Draft`]) that the pressure table,
//! a switch's row or the new-switch form opens in the flip dialog.
//! Viewers see everything but no control; the server refuses them anyway.
//!
//! - [`pressure`]: one channel's KPIs by contact reason, worst first.
//! - [`flip`]: the flip dialog (reason required, confirmation, version check) and the
//!   new-switch form.
//! - [`alerts`]: the alert list with acknowledgement and the autopilot's proposals.
//! - [`autopilot`]: the autopilot's rules, read-only.
//! - [`audit`]: the audit trail.
//! - [`staffing`]: staffing per queue of the channel, and the agent list.

pub mod alerts;
pub mod audit;
pub mod autopilot;
pub mod flip;
pub mod pressure;
pub mod staffing;

use leptos::prelude::*;
use vigie_proto::{switch_id, DeflectionSwitch, DeflectionTarget, FlipRequest, Role};

use crate::format::{clock, count, percent};
use crate::i18n::{channel_name, Text};
use crate::state::ctx;
use alerts::AlertList;
use audit::AuditTrail;
use autopilot::AutopilotRulesPanel;
use flip::{FlipDialog, NewSwitch};
use pressure::Pressure;
use staffing::StaffingPanel;

/// A change being prepared in the dialog.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub id: String,
    pub request: FlipRequest,
}

impl Draft {
    /// Turning on the switch of this scope (to the visual IVR until the dialog says
    /// otherwise): a new one, or the existing one of that scope at its version.
    pub fn turning_on(
        channel: String,
        reason: Option<String>,
        segment: Option<String>,
        switches: &[DeflectionSwitch],
    ) -> Draft {
        let id = switch_id(&channel, reason.as_deref(), segment.as_deref(), None);
        let expected_version = switches
            .iter()
            .find(|s| s.id == id)
            .map_or(0, |s| s.version);
        Draft {
            id,
            request: FlipRequest {
                channel,
                reason,
                segment,
                queue: None,
                target: DeflectionTarget::VisualIvr,
                on: true,
                why: String::new(),
                expected_version,
                expires_in: None,
            },
        }
    }
}

#[component]
pub fn Switchboard() -> impl IntoView {
    let c = ctx();
    let draft = RwSignal::new(None::<Draft>);
    let problem = RwSignal::new(None::<String>);
    let can_flip = move || c.role() >= Role::Supervisor;
    let rows = move || {
        let mut switches = c.live.switches.get();
        switches.sort_by(|a, b| {
            (&a.channel, &a.reason, &a.segment, &a.queue)
                .cmp(&(&b.channel, &b.reason, &b.segment, &b.queue))
        });
        switches
    };
    view! {
        <section class="switchboard">
            <div class="pressure-and-staffing">
                <Pressure draft=draft/>
                <StaffingPanel/>
            </div>
            <h2>{move || c.t(Text::Switches)}</h2>
            <Show when=move || !can_flip()>
                <p class="read-only" id="read-only">{move || c.t(Text::ReadOnly)}</p>
            </Show>
            {move || problem.get().map(|p| view! { <p class="problem" id="problem">{p}</p> })}
            <table id="switches">
                <thead>
                    <tr>
                        <th>{move || c.t(Text::Channel)}</th>
                        <th>{move || c.t(Text::Reason)}</th>
                        <th>{move || c.t(Text::Segment)}</th>
                        <th>{move || c.t(Text::Queue)}</th>
                        <th>{move || c.t(Text::DeflectTo)}</th>
                        <th>{move || c.t(Text::State)}</th>
                        <th>{move || c.t(Text::ChangedBy)}</th>
                        <th>{move || c.t(Text::Why)}</th>
                        <th>{move || c.t(Text::Expires)}</th>
                        <th>{move || c.t(Text::Effect)}</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=rows key=|s| (s.id.clone(), s.version) let:switch>
                        <SwitchRow switch=switch draft=draft can_flip=Signal::derive(can_flip)/>
                    </For>
                </tbody>
            </table>
            <Show when=move || c.live.switches.with(Vec::is_empty)>
                <p class="quiet">{move || c.t(Text::NoSwitch)}</p>
            </Show>
            <Show when=can_flip>
                <NewSwitch draft=draft/>
            </Show>
            {move || draft.get().map(|d| view! { <FlipDialog draft=d drafts=draft problem=problem/> })}
            <AlertList/>
            <AutopilotRulesPanel/>
            <Show when=can_flip>
                <AuditTrail/>
            </Show>
        </section>
    }
}

#[component]
fn SwitchRow(
    switch: DeflectionSwitch,
    draft: RwSignal<Option<Draft>>,
    can_flip: Signal<bool>,
) -> impl IntoView {
    let c = ctx();
    let any = move || c.t(Text::Any).to_string();
    let effect = {
        let id = switch.id.clone();
        move || {
            c.live.effects.with(|e| {
                e.get(&id).map(|e| {
                    let mut text = format!(
                        "{} {} · {} {} · {} {}",
                        count(e.deflected),
                        c.t(Text::Deflected),
                        count(e.came_back),
                        c.t(Text::CameBack),
                        percent(e.containment, c.lang.get()),
                        c.t(Text::Containment)
                    );
                    // How far to trust the projection: what it said at the flip, what came.
                    if let Some(predicted) = e.predicted_service_level {
                        text.push_str(&format!(
                            " · {} {} · {} {}",
                            c.t(Text::Predicted),
                            percent(Some(predicted), c.lang.get()),
                            c.t(Text::Measured),
                            percent(e.measured_service_level, c.lang.get())
                        ));
                    }
                    text
                })
            })
        }
    };
    let s = switch.clone();
    let open = move |_| {
        let s = s.clone();
        draft.set(Some(Draft {
            id: s.id.clone(),
            request: FlipRequest {
                channel: s.channel,
                reason: s.reason,
                segment: s.segment,
                queue: s.queue,
                target: s.target,
                on: !s.on,
                why: String::new(),
                expected_version: s.version,
                expires_in: None,
            },
        }));
    };
    let on = switch.on;
    let (reason, segment, queue) = (
        switch.reason.clone(),
        switch.segment.clone(),
        switch.queue.clone(),
    );
    let channel = switch.channel.clone();
    let expires = switch.expires_at;
    let changed_at = switch.changed_at;
    view! {
        <tr data-switch=switch.id.clone() class:on=on>
            <td>{move || channel_name(c.lang.get(), &channel)}</td>
            <td>{let r = reason.clone(); move || r.clone().unwrap_or_else(any)}</td>
            <td>{let r = segment.clone(); move || r.clone().unwrap_or_else(any)}</td>
            <td>{let r = queue.clone(); move || r.clone().unwrap_or_else(any)}</td>
            <td>{move || channel_name(c.lang.get(), switch.target.code())}</td>
            <td class="state">{move || if on { c.t(Text::On) } else { c.t(Text::Off) }}</td>
            <td>{format!("{} · ", switch.changed_by)} {move || clock(changed_at, c.lang.get().code())}</td>
            <td class="why">{switch.why.clone()}</td>
            <td>{move || match expires {
                Some(at) if on => clock(at, c.lang.get().code()),
                _ => c.t(Text::Never).to_string(),
            }}</td>
            <td class="effect">{effect}</td>
            <td>
                <Show when=move || can_flip.get()>
                    <button class="flip" on:click=open.clone()>
                        {move || if on { c.t(Text::TurnOff) } else { c.t(Text::TurnOn) }}
                    </button>
                </Show>
            </td>
        </tr>
    }
}
