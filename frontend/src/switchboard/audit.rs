//! Owns the audit trail of the switchboard (supervisors): the newest changes of every
//! switch, reloaded on every flip and every 15 s.

use leptos::prelude::*;
use vigie_proto::{AuditPage, AuditRecord};

use crate::api;
use crate::format::clock;
use crate::i18n::Text;
use crate::state::ctx;

#[component]
pub fn AuditTrail() -> impl IntoView {
    let c = ctx();
    let records = RwSignal::new(Vec::<AuditRecord>::new());
    let reload = move || {
        leptos::task::spawn_local(async move {
            let token = c.token.get_untracked();
            if let Ok(page) =
                api::get::<AuditPage>("/api/v1/audit?limit=50", token.as_deref()).await
            {
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
                                        <td>{r.alert_id.clone().unwrap_or_else(|| r.switch_id.clone())}</td>
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
