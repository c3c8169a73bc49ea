//! Owns the autopilot's rules on the switchboard, read-only: what each one watches, the
//! flip it proposes or makes, and its guard rails (they are set in the server's config).

use leptos::prelude::*;
use vigie_proto::{AutopilotMode, AutopilotRules};

use crate::api;
use crate::format::{duration, percent};
use crate::i18n::Text;
use crate::state::ctx;

#[component]
pub fn AutopilotRulesPanel() -> impl IntoView {
    let c = ctx();
    let rules = RwSignal::new(None::<AutopilotRules>);
    leptos::task::spawn_local(async move {
        let token = c.token.get_untracked();
        if let Ok(list) = api::get::<AutopilotRules>("/api/v1/autopilot", token.as_deref()).await {
            rules.set(Some(list));
        }
    });
    view! {
        <Show when=move || rules.with(|r| r.as_ref().is_some_and(|r| !r.rules.is_empty()))>
            <section class="autopilot">
                <h2>{move || c.t(Text::AutopilotTitle)}</h2>
                <ul id="autopilot-rules">
                    {move || {
                        rules
                            .get()
                            .map(|r| r.rules)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|r| {
                                let mode = match r.mode {
                                    AutopilotMode::Propose => c.t(Text::AutopilotPropose),
                                    AutopilotMode::Act => c.t(Text::AutopilotAct),
                                };
                                let a = &r.action;
                                let scope: Vec<String> = [&a.reason, &a.segment, &a.queue]
                                    .into_iter()
                                    .flatten()
                                    .cloned()
                                    .collect();
                                let flip = format!(
                                    "{}{} → {} ({} {})",
                                    a.channel,
                                    scope.iter().map(|s| format!(" · {s}")).collect::<String>(),
                                    a.target.code(),
                                    c.t(Text::ExpiresIn),
                                    a.expires_in,
                                );
                                let rails = format!(
                                    "{} {} · {} {} · {} {} · {} {}/h",
                                    c.t(Text::AutopilotWhen),
                                    r.condition,
                                    c.t(Text::AutopilotOff),
                                    r.clear,
                                    c.t(Text::AutopilotMinProjected),
                                    percent(Some(r.min_projected), c.lang.get()),
                                    c.t(Text::AutopilotCooldown),
                                    duration(Some(r.cooldown_ms as f64)),
                                ) + &format!(" ≤ {}", r.max_flips_per_hour);
                                view! {
                                    <li data-rule=r.name.clone()>
                                        <strong>{r.name.clone()}</strong>
                                        " "
                                        <span class="mode">{mode}</span>
                                        ": "
                                        {flip}
                                        <br/>
                                        <small>{rails}</small>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
            </section>
        </Show>
    }
}
