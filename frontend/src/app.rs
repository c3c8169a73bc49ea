//! Owns the page: builds the shared state ([`Ctx`]) from the URL and the server, keeps
//! the URL and the subscription in step with the view, and shows the header (views,
//! window, filters, language, freshness badge), the alert banner and the view.

use std::time::Duration;

use leptos::prelude::*;
use vigie_proto::{AlertState, CockpitInfo, Severity};

use crate::api;
use crate::i18n::{Lang, Text};
use crate::live::{self, Live};
use crate::route::{Page, ViewState, WINDOWS};
use crate::state::{ctx, Ctx};
use crate::switchboard::Switchboard;
use crate::wall::Wall;

fn browser_lang() -> Lang {
    web_sys::window()
        .and_then(|w| w.navigator().language())
        .and_then(|l| Lang::from_code(&l))
        .unwrap_or_default()
}

#[component]
pub fn App() -> impl IntoView {
    let location = web_sys::window().map(|w| w.location());
    let initial = location.as_ref().map_or_else(ViewState::default, |l| {
        ViewState::parse(
            &l.pathname().unwrap_or_default(),
            &l.search().unwrap_or_default(),
        )
    });
    let token = RwSignal::new(api::token());
    let view = RwSignal::new(initial.clone());
    let default_lang = browser_lang();
    let lang = Memo::new(move |_| view.with(|v| v.lang).unwrap_or(default_lang));
    let info = RwSignal::new(None::<CockpitInfo>);
    let need_token = RwSignal::new(false);
    let live = Live::new();
    let ctx = Ctx {
        view,
        lang,
        info,
        token,
        live,
    };
    provide_context(ctx);

    let (subscribe, subscriptions) = futures::channel::mpsc::unbounded();
    live::connect(
        live,
        token.get_untracked(),
        initial.subscription(),
        subscriptions,
    );
    // The URL and the subscription follow the view.
    Effect::new(move |previous: Option<vigie_proto::Subscription>| {
        let state = view.get();
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(
                &wasm_bindgen::JsValue::NULL,
                "",
                Some(&state.to_url()),
            );
        }
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            if let Some(root) = document.document_element() {
                let _ = root.set_attribute("lang", lang.get().code());
            }
        }
        let sub = state.subscription();
        if previous.is_some_and(|p| p != sub) {
            let _ = subscribe.unbounded_send(sub.clone());
        }
        sub
    });
    set_interval(
        move || live.now.set(js_sys::Date::now()),
        Duration::from_secs(1),
    );
    let load_info = move || {
        leptos::task::spawn_local(async move {
            match api::get::<CockpitInfo>("/api/v1/cockpit", token.get_untracked().as_deref()).await
            {
                Ok(loaded) => {
                    info.set(Some(loaded));
                    need_token.set(false);
                }
                Err(problem) if problem.status == 401 => need_token.set(true),
                Err(_) => {} // offline: the badge says so; retried below
            }
        });
    };
    load_info();
    // Filter values grow as traffic shows new sites and reasons.
    set_interval(load_info, Duration::from_secs(30));

    view! {
        <Header/>
        <Show when=move || need_token.get()>
            <SignIn/>
        </Show>
        <AlertBanner/>
        <main class=move || {
            if ctx.freshness().is_live() { "live" } else { "not-live" }
        }>
            {move || match view.with(|v| v.page) {
                Page::Wall => view! { <Wall/> }.into_any(),
                Page::Switchboard => view! { <Switchboard/> }.into_any(),
            }}
        </main>
    }
}

#[component]
fn Header() -> impl IntoView {
    let c = ctx();
    let page_link = move |page: Page, text: Text| {
        view! {
            <a
                href=move || ViewState { page, ..c.view.get() }.to_url()
                class:active=move || c.view.with(|v| v.page == page)
                on:click=move |ev| {
                    ev.prevent_default();
                    c.view.update(|v| v.page = page);
                }
            >
                {move || c.t(text)}
            </a>
        }
    };
    let window_button = move |window: &'static str| {
        let label = move || match window {
            "1h" => c.t(Text::Hour1),
            "today" => c.t(Text::Today),
            _ => c.t(Text::Minutes15),
        };
        view! {
            <button
                class="window"
                data-window=window
                class:active=move || c.view.with(|v| v.window == window)
                on:click=move |_| c.view.update(|v| v.window = window.to_string())
            >
                {label}
            </button>
        }
    };
    let me = move || {
        c.info.with(|i| {
            i.as_ref()
                .and_then(|i| i.me.as_ref())
                .map(|m| format!("{} · {}", m.name, m.role.as_str()))
                .unwrap_or_default()
        })
    };
    view! {
        <header class="top">
            <div class="brand">"Vigie"</div>
            <nav>
                {page_link(Page::Wall, Text::WallView)}
                {page_link(Page::Switchboard, Text::SwitchboardView)}
            </nav>
            <div class="windows" title=move || c.t(Text::WindowLabel)>
                {WINDOWS.into_iter().map(window_button).collect_view()}
            </div>
            <Filter dimension="site" text=Text::Site/>
            <Filter dimension="segment" text=Text::Segment/>
            <Filter dimension="reason" text=Text::Reason/>
            <button
                class="toggle"
                id="formulas"
                class:active=move || c.view.with(|v| v.formulas)
                on:click=move |_| c.view.update(|v| v.formulas = !v.formulas)
            >
                "ƒ "
                {move || c.t(Text::ShowFormulas)}
            </button>
            <button
                class="toggle"
                id="lang"
                on:click=move |_| {
                    let next = match c.lang.get() {
                        Lang::En => Lang::Fr,
                        Lang::Fr => Lang::En,
                    };
                    c.view.update(|v| v.lang = Some(next));
                }
            >
                {move || match c.lang.get() {
                    Lang::En => "FR",
                    Lang::Fr => "EN",
                }}
            </button>
            <span class="who">{me}</span>
            <span id="freshness" class=move || c.freshness().class()>
                {move || c.freshness().label(c.lang.get())}
            </span>
        </header>
    }
}

/// A selector of one dimension's values ("all" clears the filter).
#[component]
fn Filter(dimension: &'static str, text: Text) -> impl IntoView {
    let c = ctx();
    let current = move || {
        c.view.with(|v| match dimension {
            "site" => v.site.clone(),
            "segment" => v.segment.clone(),
            _ => v.reason.clone(),
        })
    };
    let options = move || {
        let mut values = c.dimension_values(dimension);
        // A filter from the URL stays selectable before traffic shows its value.
        if let Some(v) = current() {
            if !values.contains(&v) {
                values.push(v);
            }
        }
        values
    };
    view! {
        <label class="filter">
            <span>{move || c.t(text)}</span>
            <select
                name=dimension
                on:change=move |ev| {
                    let value = event_target_value(&ev);
                    let value = Some(value).filter(|v| !v.is_empty());
                    c.view.update(|v| match dimension {
                        "site" => v.site = value,
                        "segment" => v.segment = value,
                        _ => v.reason = value,
                    });
                }
            >
                <option value="" selected=move || current().is_none()>
                    {move || c.t(Text::AllValues)}
                </option>
                {move || {
                    options()
                        .into_iter()
                        .map(|value| {
                            let selected = current().as_deref() == Some(value.as_str());
                            view! {
                                <option value=value.clone() selected=selected>
                                    {value.clone()}
                                </option>
                            }
                        })
                        .collect_view()
                }}
            </select>
        </label>
    }
}

#[component]
fn SignIn() -> impl IntoView {
    let c = ctx();
    let typed = RwSignal::new(String::new());
    view! {
        <form
            class="sign-in"
            on:submit=move |ev| {
                ev.prevent_default();
                api::remember_token(&typed.get_untracked());
                if let Some(w) = web_sys::window() {
                    let _ = w.location().reload();
                }
            }
        >
            <p>{move || c.t(Text::NeedToken)}</p>
            <input
                type="password"
                name="token"
                placeholder=move || c.t(Text::Token)
                on:input=move |ev| typed.set(event_target_value(&ev))
            />
            <button type="submit">{move || c.t(Text::SignIn)}</button>
        </form>
    }
}

/// Alerts shown in the banner; the rest are counted (`+2`): tiles stay on screen.
const MAX_BANNER_ALERTS: usize = 3;

/// Firing and acknowledged alerts, across the top of every view, critical first.
#[component]
fn AlertBanner() -> impl IntoView {
    let c = ctx();
    let active = move || {
        c.live.alerts.with(|alerts| {
            let mut alerts = alerts
                .iter()
                .filter(|a| a.state != AlertState::Resolved)
                .cloned()
                .collect::<Vec<_>>();
            // Unacknowledged first, then the most severe, then the oldest.
            alerts.sort_by_key(|a| {
                let severity = match a.severity {
                    Severity::Critical => 0,
                    Severity::Warning => 1,
                    Severity::Info => 2,
                };
                (a.state != AlertState::Firing, severity, a.since)
            });
            alerts
        })
    };
    view! {
        <Show when=move || !active().is_empty()>
            <section class="alert-banner" id="alerts">
                {move || {
                    let alerts = active();
                    let hidden = alerts.len().saturating_sub(MAX_BANNER_ALERTS);
                    let more = (hidden > 0).then(|| {
                        view! { <div class="alert more">{format!("+{hidden}")}</div> }
                    });
                    let shown = alerts
                        .into_iter()
                        .take(MAX_BANNER_ALERTS)
                        .map(|alert| {
                            let class = match (alert.severity, alert.state) {
                                (_, AlertState::Acknowledged) => "alert acked",
                                (Severity::Critical, _) => "alert critical",
                                (Severity::Warning, _) => "alert warning",
                                (Severity::Info, _) => "alert info",
                            };
                            let acked = alert
                                .acknowledged_by
                                .clone()
                                .map(|who| format!(" — {} {who}", c.t(Text::AcknowledgedBy)));
                            view! {
                                <div class=class>
                                    <strong>{crate::format::alert_line(&alert, c.lang.get())}</strong>
                                    {acked}
                                </div>
                            }
                        })
                        .collect_view();
                    (shown, more)
                }}
            </section>
        </Show>
    }
}
