//! Owns the supervisor view: the pressure table (see [`crate::pressure`]), the deflection switches with their state, author, reason,
//! expiry and live effect; flipping one (reason required, confirmation, version check);
//! creating one; the audit trail; and the alert list with acknowledgement.
//! Viewers see everything but no control; the server refuses them anyway.

use leptos::prelude::*;
use vigie_proto::{AlertState, AuditRecord, DeflectionSwitch, DeflectionTarget, FlipRequest, Role};

use crate::api::{self, ApiProblem};
use crate::app::ctx;
use crate::format::{count, percent};
use crate::i18n::{channel_name, Text};
use crate::pressure::Pressure;
use crate::wall::clock;

pub const TARGETS: [DeflectionTarget; 5] = [
    DeflectionTarget::VisualIvr,
    DeflectionTarget::Callback,
    DeflectionTarget::Chat,
    DeflectionTarget::Messaging,
    DeflectionTarget::Dissuasion,
];

pub fn target_code(t: DeflectionTarget) -> &'static str {
    match t {
        DeflectionTarget::VisualIvr => "visual_ivr",
        DeflectionTarget::Callback => "callback",
        DeflectionTarget::Chat => "chat",
        DeflectionTarget::Messaging => "messaging",
        DeflectionTarget::Dissuasion => "dissuasion",
    }
}

fn target_of(code: &str) -> DeflectionTarget {
    TARGETS
        .into_iter()
        .find(|t| target_code(*t) == code)
        .unwrap_or(DeflectionTarget::VisualIvr)
}

/// A switch id from its scope: `phone.billing.all.all`, lowercase, within the server's rules.
pub fn switch_id(
    channel: &str,
    reason: Option<&str>,
    segment: Option<&str>,
    queue: Option<&str>,
) -> String {
    let part = |v: Option<&str>| v.unwrap_or("all").to_lowercase();
    let raw = format!(
        "{}.{}.{}.{}",
        channel.to_lowercase(),
        part(reason),
        part(segment),
        part(queue)
    );
    raw.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// A change being prepared in the dialog.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    id: String,
    request: FlipRequest,
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
            <Pressure draft=draft/>
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
                    format!(
                        "{} {} · {} {} · {} {}",
                        count(e.deflected),
                        c.t(Text::Deflected),
                        count(e.came_back),
                        c.t(Text::CameBack),
                        percent(e.containment, c.lang.get()),
                        c.t(Text::Containment)
                    )
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
            <td>{move || channel_name(c.lang.get(), target_code(switch.target))}</td>
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

/// The confirmation step: a reason is required; expiry and target when turning on.
#[component]
fn FlipDialog(
    draft: Draft,
    drafts: RwSignal<Option<Draft>>,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    let c = ctx();
    let why = RwSignal::new(String::new());
    let expires = RwSignal::new(String::new());
    let target = RwSignal::new(target_code(draft.request.target).to_string());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let turning_on = draft.request.on;
    let scope = format!(
        "{} · {} · {} · {}",
        draft.request.channel,
        draft.request.reason.clone().unwrap_or_else(|| "*".into()),
        draft.request.segment.clone().unwrap_or_else(|| "*".into()),
        draft.request.queue.clone().unwrap_or_else(|| "*".into()),
    );
    let submit = move |_| {
        let mut request = draft.request.clone();
        request.why = why.get_untracked().trim().to_string();
        if request.why.is_empty() {
            error.set(Some(c.t(Text::WhyRequired).to_string()));
            return;
        }
        if request.on {
            request.target = target_of(&target.get_untracked());
            request.expires_in = Some(expires.get_untracked()).filter(|e| !e.is_empty());
        }
        let path = format!("/api/v1/switches/{}", crate::route::encode(&draft.id));
        busy.set(true);
        leptos::task::spawn_local(async move {
            let token = c.token.get_untracked();
            let result: Result<serde_json::Value, ApiProblem> =
                api::put(&path, &request, token.as_deref()).await;
            busy.set(false);
            match result {
                Ok(_) => {
                    problem.set(None);
                    drafts.set(None);
                }
                Err(p) if p.status == 409 && p.code == "version_conflict" => {
                    problem.set(Some(format!("{} ({})", c.t(Text::Conflict), p.message)));
                    drafts.set(None);
                }
                Err(p) => error.set(Some(p.message)),
            }
        });
    };
    view! {
        <div class="dialog-backdrop">
            <div class="dialog" role="dialog" id="flip-dialog">
                <h3>
                    {move || if turning_on { c.t(Text::TurnOn) } else { c.t(Text::TurnOff) }}
                    " — "
                    {scope}
                </h3>
                <Show when=move || turning_on>
                    <label>
                        {move || c.t(Text::DeflectTo)}
                        <select name="target" on:change=move |ev| target.set(event_target_value(&ev))>
                            {TARGETS
                                .into_iter()
                                .map(|t| {
                                    let code = target_code(t);
                                    view! {
                                        <option value=code selected=move || target.get() == code>
                                            {move || channel_name(c.lang.get(), code)}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                    </label>
                    <label>
                        {move || c.t(Text::ExpiresIn)}
                        <select name="expires" on:change=move |ev| expires.set(event_target_value(&ev))>
                            <option value="">{move || c.t(Text::Never)}</option>
                            <option value="15m">"15 min"</option>
                            <option value="1h">"1 h"</option>
                            <option value="4h">"4 h"</option>
                        </select>
                    </label>
                </Show>
                <label>
                    {move || c.t(Text::WhyRequired)}
                    <textarea name="why" on:input=move |ev| why.set(event_target_value(&ev))></textarea>
                </label>
                {move || error.get().map(|e| view! { <p class="problem">{e}</p> })}
                <div class="buttons">
                    <button class="cancel" on:click=move |_| drafts.set(None)>
                        {move || c.t(Text::Cancel)}
                    </button>
                    <button class="confirm" disabled=move || busy.get() on:click=submit>
                        {move || c.t(Text::Confirm)}
                    </button>
                </div>
            </div>
        </div>
    }
}

/// Prepares a new switch; the dialog then asks for the reason.
#[component]
fn NewSwitch(draft: RwSignal<Option<Draft>>) -> impl IntoView {
    let c = ctx();
    let channel = RwSignal::new("phone".to_string());
    let reason = RwSignal::new(String::new());
    let segment = RwSignal::new(String::new());
    let select = move |dimension: &'static str, signal: RwSignal<String>, any: bool| {
        view! {
            <select name=format!("new-{dimension}") on:change=move |ev| signal.set(event_target_value(&ev))>
                {any.then(|| view! { <option value="">{move || c.t(Text::Any)}</option> })}
                {move || {
                    let mut options = c.dimension_values(dimension);
                    if !any && !options.contains(&signal.get_untracked()) {
                        options.insert(0, signal.get_untracked());
                    }
                    options
                        .into_iter()
                        .map(|v| {
                            let selected = signal.get_untracked() == v;
                            // Channels by their name; other values are the users' own codes.
                            let shown = match dimension {
                                "channel" => channel_name(c.lang.get_untracked(), &v),
                                _ => v.clone(),
                            };
                            view! { <option value=v.clone() selected=selected>{shown}</option> }
                        })
                        .collect_view()
                }}
            </select>
        }
    };
    let create = move |_| {
        let opt = |s: RwSignal<String>| Some(s.get_untracked()).filter(|v| !v.is_empty());
        draft.set(Some(c.live.switches.with_untracked(|switches| {
            Draft::turning_on(channel.get_untracked(), opt(reason), opt(segment), switches)
        })));
    };
    view! {
        <div class="new-switch" id="new-switch">
            <h3>{move || c.t(Text::NewSwitch)}</h3>
            <label>{move || c.t(Text::Channel)} {select("channel", channel, false)}</label>
            <label>{move || c.t(Text::Reason)} {select("reason", reason, true)}</label>
            <label>{move || c.t(Text::Segment)} {select("segment", segment, true)}</label>
            <button class="create" on:click=create>{move || c.t(Text::Create)}</button>
        </div>
    }
}

#[component]
fn AlertList() -> impl IntoView {
    let c = ctx();
    let can_ack = move || c.role() >= Role::Supervisor;
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
                            let path = format!("/api/v1/alerts/{}/ack", crate::route::encode(&id));
                            leptos::task::spawn_local(async move {
                                let token = c.token.get_untracked();
                                let _: Result<serde_json::Value, _> =
                                    api::post(&path, &serde_json::json!({}), token.as_deref()).await;
                            });
                        };
                        view! {
                            <div class=format!("alert-row {:?}", alert.state).to_lowercase()>
                                <span>{crate::format::alert_line(&alert, c.lang.get())}</span>
                                <span class="since">{clock(alert.since, c.lang.get().code())}</span>
                                {alert.acknowledged_by.clone().map(|who| format!("{} {who}", c.t(Text::AcknowledgedBy)))}
                                <Show when=move || firing && can_ack()>
                                    <button class="ack" on:click=ack.clone()>{c.t(Text::Acknowledge)}</button>
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

#[component]
fn AuditTrail() -> impl IntoView {
    let c = ctx();
    let records = RwSignal::new(Vec::<AuditRecord>::new());
    let reload = move || {
        leptos::task::spawn_local(async move {
            let token = c.token.get_untracked();
            #[derive(serde::Deserialize)]
            struct Page {
                records: Vec<AuditRecord>,
            }
            if let Ok(page) = api::get::<Page>("/api/v1/audit?limit=50", token.as_deref()).await {
                records.set(page.records);
            }
        });
    };
    // Reload whenever the switches change (a flip adds a record), and again a moment
    // later: the audit topic is followed separately and may trail the switch by a fetch.
    Effect::new(move |_| {
        c.live.switches.track();
        reload();
        set_timeout(reload, std::time::Duration::from_millis(1_500));
    });
    // Expiries and changes made elsewhere also land in the trail.
    let every = set_interval_with_handle(reload, std::time::Duration::from_secs(15)).ok();
    on_cleanup(move || {
        if let Some(handle) = every {
            handle.clear();
        }
    });
    view! {
        <section class="audit">
            <h2>{move || c.t(Text::Audit)}</h2>
            <table id="audit">
                <thead>
                    <tr>
                        <th>{move || c.t(Text::When)}</th>
                        <th>{move || c.t(Text::Who)}</th>
                        <th>{move || c.t(Text::Action)}</th>
                        <th>{move || c.t(Text::SwitchLabel)}</th>
                        <th>{move || c.t(Text::Why)}</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        records
                            .get()
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <tr>
                                        <td>{clock(r.at, c.lang.get().code())}</td>
                                        <td>{r.who.clone()}</td>
                                        <td>{r.action.clone()}</td>
                                        <td>{r.switch_id.clone()}</td>
                                        <td>{r.why.clone()}</td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_ids_follow_the_servers_rules() {
        assert_eq!(
            switch_id("phone", Some("billing"), None, None),
            "phone.billing.all.all"
        );
        let id = switch_id(
            "Phone",
            Some("Facture électricité"),
            Some("pro"),
            Some("q 1"),
        );
        assert_eq!(id, "phone.facture--lectricit-.pro.q-1");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)));
        assert!(switch_id(&"x".repeat(100), None, None, None).len() <= 64);
    }

    #[test]
    fn every_target_has_a_code_and_back() {
        for t in TARGETS {
            assert_eq!(target_of(target_code(t)), t);
        }
    }
}
