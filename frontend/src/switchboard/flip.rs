//! Owns changing a switch: the confirmation dialog (a reason is required; target and
//! expiry when turning on; sent with the version the supervisor saw, so a change made
//! meanwhile is refused with 409 and said), and the form that drafts a new switch.

use leptos::prelude::*;
use vigie_proto::{DeflectionSwitch, DeflectionTarget, FlipRequest};

use super::Draft;
use crate::api;
use crate::i18n::{channel_name, Text};
use crate::state::ctx;

/// The confirmation step: a reason is required; expiry and target when turning on.
#[component]
pub fn FlipDialog(
    draft: Draft,
    drafts: RwSignal<Option<Draft>>,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    let c = ctx();
    let why = RwSignal::new(String::new());
    let expires = RwSignal::new(String::new());
    let target = RwSignal::new(draft.request.target.code().to_string());
    let error = RwSignal::new(None::<String>);
    let turning_on = draft.request.on;
    // A reason of the pressure table's channel, turned on for every segment or the
    // header's: the table's what-if is this switch's.
    let what_if = (turning_on
        && c.view
            .with_untracked(|v| v.pressure_channel() == draft.request.channel)
        && draft.request.queue.is_none()
        && draft.request.segment == c.view.with_untracked(|v| v.segment.clone()))
    .then(|| draft.request.reason.clone())
    .flatten();
    let scope = format!(
        "{} · {} · {} · {}",
        draft.request.channel,
        draft.request.reason.clone().unwrap_or_else(|| "*".into()),
        draft.request.segment.clone().unwrap_or_else(|| "*".into()),
        draft.request.queue.clone().unwrap_or_else(|| "*".into()),
    );
    // The PUT, pending until the server confirms it from the switches topic.
    let send = Action::new_local(move |(path, request): &(String, FlipRequest)| {
        let (path, request) = (path.clone(), request.clone());
        async move {
            let token = c.token.get_untracked();
            match api::put::<_, DeflectionSwitch>(&path, &request, token.as_deref()).await {
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
        }
    });
    let submit = move |_| {
        let mut request = draft.request.clone();
        request.why = why.get_untracked().trim().to_string();
        if request.why.is_empty() {
            error.set(Some(c.t(Text::WhyRequired).to_string()));
            return;
        }
        if request.on {
            request.target = DeflectionTarget::parse(&target.get_untracked())
                .unwrap_or(DeflectionTarget::VisualIvr);
            request.expires_in = Some(expires.get_untracked()).filter(|e| !e.is_empty());
        }
        let path = format!("/api/v1/switches/{}", crate::route::encode(&draft.id));
        send.dispatch_local((path, request));
    };
    view! {
        <div class="dialog-backdrop">
            <div class="dialog" role="dialog" id="flip-dialog">
                <h3>
                    {move || if turning_on { c.t(Text::TurnOn) } else { c.t(Text::TurnOff) }}
                    " — "
                    {scope}
                </h3>
                {move || {
                    // What the flip would do, as the pressure table projects it.
                    what_if.clone().and_then(|reason| {
                        c.live.snapshot.with(|s| {
                            s.as_ref()
                                .and_then(|s| super::pressure::what_if_of(s, &reason))
                                .map(|w| {
                                    view! {
                                        <p class="what-if" id="flip-what-if">
                                            {c.t(Text::IfDeflected)}
                                            ": "
                                            {super::pressure::what_if_text(&w, c.lang.get())}
                                        </p>
                                    }
                                })
                        })
                    })
                }}
                <Show when=move || turning_on>
                    <label>
                        {move || c.t(Text::DeflectTo)}
                        <select name="target" on:change=move |ev| target.set(event_target_value(&ev))>
                            {DeflectionTarget::ALL
                                .into_iter()
                                .map(|t| {
                                    let code = t.code();
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
                    <button class="confirm" disabled=move || send.pending().get() on:click=submit>
                        {move || c.t(Text::Confirm)}
                    </button>
                </div>
            </div>
        </div>
    }
}

/// Prepares a new switch; the dialog then asks for the reason.
#[component]
pub fn NewSwitch(draft: RwSignal<Option<Draft>>) -> impl IntoView {
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
