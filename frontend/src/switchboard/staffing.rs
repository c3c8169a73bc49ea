//! Owns the switchboard's capacity panels: staffing per queue of the pressure table's
//! channel (staffed, free, on contact, wrap-up, away, occupancy), and the agent list
//! (filtered by queue and state, the header's site; longest in state first, the time in
//! state ticking), reloaded every 2 s from `GET /api/v1/agents`.

use leptos::prelude::*;
use vigie_proto::{AgentList, AgentRow, AgentState, QueueStatus};

use crate::api;
use crate::format::{count, duration, percent};
use crate::i18n::Text;
use crate::levels::occupancy_level;
use crate::route::encode;
use crate::state::ctx;

/// The queues of the pressure table's channel that have agents, busiest first.
pub fn staffed_queues<'a>(
    queues: impl Iterator<Item = (&'a String, &'a QueueStatus)>,
) -> Vec<(String, QueueStatus)> {
    let mut rows: Vec<(String, QueueStatus)> = queues
        .filter(|(_, q)| q.staffing.as_ref().is_some_and(|s| s.staffed > 0))
        .map(|(n, q)| (n.clone(), q.clone()))
        .collect();
    rows.sort_by(|a, b| {
        let staffed = |q: &QueueStatus| q.staffing.as_ref().map_or(0, |s| s.staffed);
        staffed(&b.1)
            .cmp(&staffed(&a.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    rows
}

#[component]
pub fn StaffingPanel() -> impl IntoView {
    let c = ctx();
    let rows = move || {
        c.live.snapshot.with(|s| {
            s.as_ref()
                .map(|s| staffed_queues(s.queues.iter()))
                .unwrap_or_default()
        })
    };
    view! {
        <section class="staffing-panel" id="staffing">
            <h2>{move || c.t(Text::Staffing)}</h2>
            <table>
                <thead>
                    <tr>
                        <th>{move || c.t(Text::Queue)}</th>
                        <th title=move || c.t(Text::FormulaStaffing)>{move || c.t(Text::AgentsTitle)}</th>
                        <th>{move || c.t(Text::Free)}</th>
                        <th>{move || c.t(Text::OnContact)}</th>
                        <th>{move || c.t(Text::WrapUp)}</th>
                        <th>{move || c.t(Text::Away)}</th>
                        <th title=move || c.t(Text::FormulaOccupancy)>{move || c.t(Text::Occupancy)}</th>
                        <th>{move || c.t(Text::InQueue)}</th>
                        <th title=move || c.t(Text::FormulaProjection)>{move || c.t(Text::ProjectedSl)}</th>
                        <th title=move || c.t(Text::FormulaProjection)>{move || c.t(Text::AgentsNeeded)}</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let targets = c.targets();
                        rows()
                            .into_iter()
                            .map(|(name, q)| {
                                let s = q.staffing.clone().unwrap_or_default();
                                let level = occupancy_level(q.occupancy, &targets);
                                view! {
                                    <tr data-queue=name.clone()>
                                        <td>{name.clone()}</td>
                                        <td class="value" data-kpi="staffed">{count(s.staffed)}</td>
                                        <td class="value" data-kpi="available">{count(s.available)}</td>
                                        <td class="value">{count(s.on_contact)}</td>
                                        <td class="value">{count(s.after_contact_work)}</td>
                                        <td class="value">{count(s.away)}</td>
                                        <td class=format!("value {}", level.class()) data-kpi="occupancy">
                                            {percent(q.occupancy, c.lang.get())}
                                        </td>
                                        <td class="value">{count(q.in_queue)}</td>
                                        <td class="value" data-kpi="projected_service_level">
                                            {percent(
                                                q.projection.as_ref().and_then(|p| p.projected_service_level),
                                                c.lang.get(),
                                            )}
                                        </td>
                                        <td class="value" data-kpi="agents_needed">
                                            {q.projection
                                                .as_ref()
                                                .and_then(|p| p.agents_needed)
                                                .map_or("–".to_string(), |n| count(u64::from(n)))}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
            <AgentTable/>
        </section>
    }
}

/// The state's words.
fn state_text(state: Option<AgentState>) -> Text {
    match state {
        Some(AgentState::Available) => Text::Free,
        Some(AgentState::OnContact) => Text::OnContact,
        Some(AgentState::AfterContactWork) => Text::WrapUp,
        Some(AgentState::Away) => Text::Away,
        Some(AgentState::LoggedOut) | None => Text::LoggedOut,
    }
}

/// The path of the agent list for the filters (empty ones left out).
pub fn agents_path(queue: &str, state: &str, site: Option<&str>, limit: usize) -> String {
    let mut path = format!("/api/v1/agents?limit={limit}");
    for (key, value) in [
        ("queue", queue),
        ("state", state),
        ("site", site.unwrap_or("")),
    ] {
        if !value.is_empty() {
            path.push_str(&format!("&{key}={}", encode(value)));
        }
    }
    path
}

/// Rows shown at most (the server caps a page at `server.max_agent_rows`).
const ROWS: usize = 200;

#[component]
fn AgentTable() -> impl IntoView {
    let c = ctx();
    let queue = RwSignal::new(String::new());
    let state = RwSignal::new(String::new());
    // The list and the wall-clock time it was received: time in state ticks from there.
    let list = RwSignal::new(None::<(AgentList, f64)>);
    let reload = move || {
        let path = agents_path(
            &queue.get_untracked(),
            &state.get_untracked(),
            c.view.with_untracked(|v| v.site.clone()).as_deref(),
            ROWS,
        );
        leptos::task::spawn_local(async move {
            let token = c.token.get_untracked();
            if let Ok(page) = api::get::<AgentList>(&path, token.as_deref()).await {
                list.set(Some((page, js_sys::Date::now())));
            }
        });
    };
    Effect::new(move |_| {
        queue.track();
        state.track();
        c.view.with(|v| v.site.clone());
        reload();
    });
    let every = set_interval_with_handle(reload, std::time::Duration::from_secs(2)).ok();
    on_cleanup(move || {
        if let Some(handle) = every {
            handle.clear();
        }
    });
    let queues = move || {
        c.live.snapshot.with(|s| {
            s.as_ref()
                .map(|s| staffed_queues(s.queues.iter()))
                .unwrap_or_default()
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        })
    };
    let row_view = move |a: AgentRow, received: f64| {
        let since = a.time_in_state_ms as f64;
        let ticking = move || duration(Some(since + (c.live.now.get() - received).max(0.0)));
        let state_class = format!(
            "agent-state {}",
            a.state.map_or("logged_out", |s| s.as_str())
        );
        view! {
            <tr data-agent=a.agent_id.clone()>
                <td>{a.agent_id.clone()}</td>
                <td class=state_class>
                    {move || c.t(state_text(a.state))}
                    {a.away_reason.clone().map(|r| format!(" · {r}"))}
                </td>
                <td class="value" data-kpi="time_in_state">{ticking}</td>
                <td>{a.queues.join(", ")}</td>
                <td>{a.site.clone().unwrap_or_default()}</td>
                <td class="value">{count(a.handled)}</td>
                <td class="value">{duration(a.aht_ms)}</td>
                <td>{a.interaction_id.clone().unwrap_or_default()}</td>
            </tr>
        }
    };
    view! {
        <h3>
            {move || c.t(Text::AgentList)}
            " — "
            <select name="agents-queue" on:change=move |ev| queue.set(event_target_value(&ev))>
                <option value="">{move || format!("{} : {}", c.t(Text::Queue), c.t(Text::AllValues))}</option>
                {move || {
                    queues()
                        .into_iter()
                        .map(|q| view! { <option value=q.clone() selected=queue.get() == q>{q.clone()}</option> })
                        .collect_view()
                }}
            </select>
            <select name="agents-state" on:change=move |ev| state.set(event_target_value(&ev))>
                <option value="">{move || format!("{} : {}", c.t(Text::State), c.t(Text::AllValues))}</option>
                {AgentState::ALL
                    .into_iter()
                    .map(|s| view! { <option value=s.as_str()>{move || c.t(state_text(Some(s)))}</option> })
                    .collect_view()}
            </select>
        </h3>
        // Scrolls within its box: hundreds of agents must not push the switches off screen.
        <div class="agent-scroll">
        <table id="agents">
            <thead>
                <tr>
                    <th>{move || c.t(Text::Agent)}</th>
                    <th>{move || c.t(Text::State)}</th>
                    <th>{move || c.t(Text::TimeInState)}</th>
                    <th>{move || c.t(Text::Queues)}</th>
                    <th>{move || c.t(Text::Site)}</th>
                    <th>{move || c.t(Text::Handled)}</th>
                    <th>{move || c.t(Text::Aht)}</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    list.get()
                        .map(|(page, received)| {
                            page.agents
                                .into_iter()
                                .map(|a| row_view(a, received))
                                .collect_view()
                        })
                }}
            </tbody>
        </table>
        </div>
        {move || {
            list.with(|l| match l {
                Some((page, _)) if page.total == 0 => Some(c.t(Text::NoAgent).to_string()),
                Some((page, _)) if page.total > page.agents.len() as u64 => Some(format!(
                    "+{} {}",
                    count(page.total - page.agents.len() as u64),
                    c.t(Text::MoreAgents)
                )),
                _ => None,
            })
            .map(|text| view! { <p class="quiet" id="agents-more">{text}</p> })
        }}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_proto::Staffing;

    #[test]
    fn the_agent_list_path_carries_only_the_filters_set() {
        assert_eq!(agents_path("", "", None, 200), "/api/v1/agents?limit=200");
        assert_eq!(
            agents_path("phone billing", "away", Some("lyon"), 50),
            "/api/v1/agents?limit=50&queue=phone%20billing&state=away&site=lyon"
        );
    }

    #[test]
    fn queues_without_agents_are_left_out_and_the_largest_come_first() {
        let q = |staffed| QueueStatus {
            staffing: Some(Staffing {
                staffed,
                ..Staffing::default()
            }),
            ..QueueStatus::default()
        };
        let queues = [
            ("a".to_string(), q(3)),
            ("b".to_string(), q(0)),
            ("c".to_string(), q(9)),
            ("d".to_string(), QueueStatus::default()),
        ];
        let rows = staffed_queues(queues.iter().map(|(n, q)| (n, q)));
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "a"]);
    }
}
