//! Owns the switchboard's pressure table: one channel's KPIs by contact reason, the most
//! pressed first, so that a supervisor sees which flow to deflect before flipping
//! anything. "Deflect…" opens the flip dialog for that channel and reason (and the
//! header's segment); a reason already deflected says where to instead.
//!
//! The channel is chosen in the table's title (`?channel=` in the URL, phone by default);
//! the window and the site, segment and reason filters are the header's.

use leptos::prelude::*;
use vigie_proto::{
    Breakdown, DeflectionSwitch, Kpis, Role, Snapshot, Targets, WhatIf, OTHER_VALUE, UNKNOWN_VALUE,
};

use super::Draft;
use crate::format::{count, duration, percent};
use crate::i18n::{channel_name, Text};
use crate::levels::{flow_levels, Level, TileLevels};
use crate::state::ctx;

/// One contact reason of the channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ReasonRow {
    pub reason: String,
    pub kpis: Kpis,
    pub levels: TileLevels,
}

impl ReasonRow {
    /// How hard this reason is pressed (see [`TileLevels::pressure`]).
    pub fn level(&self) -> Level {
        self.levels.pressure()
    }
}

/// The rows, most pressed first: worst level, then most in queue, then busiest.
pub fn ranked(breakdown: &[Breakdown], channel: &str, targets: &Targets) -> Vec<ReasonRow> {
    let mut rows: Vec<ReasonRow> = breakdown
        .iter()
        .map(|b| ReasonRow {
            reason: b.key.reason.clone().unwrap_or_else(|| "unknown".into()),
            levels: flow_levels(&b.kpis, channel, targets),
            kpis: b.kpis.clone(),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.level()
            .cmp(&a.level())
            .then_with(|| b.kpis.in_queue.cmp(&a.kpis.in_queue))
            .then_with(|| b.kpis.arrivals.cmp(&a.kpis.arrivals))
            .then_with(|| a.reason.cmp(&b.reason))
    });
    rows
}

/// The switches deflecting some of this reason's contacts now: on, of the channel, for
/// this reason or every reason, and for a segment the view shows (any, when it shows
/// every segment). Queue-scoped switches are left out: the table is not by queue.
pub fn deflecting<'a>(
    switches: &'a [DeflectionSwitch],
    channel: &str,
    reason: &str,
    segment: Option<&str>,
) -> Vec<&'a DeflectionSwitch> {
    switches
        .iter()
        .filter(|s| s.on && s.channel == channel && s.queue.is_none())
        .filter(|s| s.reason.as_deref().is_none_or(|r| r == reason))
        .filter(|s| match (s.segment.as_deref(), segment) {
            (Some(theirs), Some(shown)) => theirs == shown,
            _ => true,
        })
        .collect()
}

/// Whether the view's scope of this reason (the header's segment, or every segment) is
/// wholly deflected already, so that "Deflect…" would add nothing: a switch of this
/// reason or every reason, for every segment or exactly the view's.
pub fn wholly_deflected(
    switches: &[DeflectionSwitch],
    channel: &str,
    reason: &str,
    segment: Option<&str>,
) -> bool {
    deflecting(switches, channel, reason, segment)
        .iter()
        .any(|s| s.segment.is_none() || s.segment.as_deref() == segment)
}

/// "31 % of the load · 41 % → 78 %": a reason's what-if, as the table and the flip
/// dialog say it.
pub fn what_if_text(w: &WhatIf, lang: crate::i18n::Lang) -> String {
    use crate::i18n::Say;
    format!(
        "{} {} · {} → {}",
        percent(Some(w.share), lang),
        lang.text(Text::OfLoad),
        percent(Some(w.projected_service_level), lang),
        percent(Some(w.projected_service_level_without), lang)
    )
}

/// The what-if of a reason in a by-reason snapshot of its channel.
pub fn what_if_of(snapshot: &Snapshot, reason: &str) -> Option<WhatIf> {
    snapshot
        .breakdown
        .iter()
        .find(|b| b.key.reason.as_deref() == Some(reason))
        .and_then(|b| b.kpis.what_if)
}

/// A reason a switch can name: not the engine's stand-ins for a missing reason or for
/// the values beyond its limit, which no routing system would ever match.
pub fn is_deflectable(reason: &str) -> bool {
    reason != UNKNOWN_VALUE && reason != OTHER_VALUE
}

#[component]
pub fn Pressure(draft: RwSignal<Option<Draft>>) -> impl IntoView {
    let c = ctx();
    let can_flip = move || c.role() >= Role::Supervisor;
    let channel = Memo::new(move |_| c.view.with(|v| v.pressure_channel().to_string()));
    // The headline column: the service level where the channel has a target.
    let has_sl_target = Memo::new(move |_| c.targets().channels.contains_key(&channel.get()));
    let table = Memo::new(move |_| {
        let targets = c.targets();
        let channel = channel.get();
        c.live.snapshot.with(|s| {
            s.as_ref()
                .map(|s| ranked(&s.breakdown, &channel, &targets))
                .unwrap_or_default()
        })
    });
    // Rows keyed by reason: a row (and its button) stays the same element while its
    // numbers change many times a second, so a click is never lost to a re-render.
    let order = Memo::new(move |_| {
        table.with(|rows| rows.iter().map(|r| r.reason.clone()).collect::<Vec<_>>())
    });
    let channels = move || {
        let mut values = c.dimension_values("channel");
        let current = channel.get();
        if !values.contains(&current) {
            values.insert(0, current);
        }
        values
    };
    view! {
        <section class="pressure" id="pressure">
            <h2>
                {move || c.t(Text::Pressure)}
                " — "
                <select
                    name="pressure-channel"
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        c.view.update(|v| v.channel = Some(value).filter(|v| !v.is_empty()));
                    }
                >
                    {move || {
                        let current = channel.get();
                        channels()
                            .into_iter()
                            .map(|v| {
                                let selected = v == current;
                                let shown = channel_name(c.lang.get(), &v);
                                view! { <option value=v selected=selected>{shown}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </h2>
            <table>
                <thead>
                    <tr>
                        <th>{move || c.t(Text::Reason)}</th>
                        <th>{move || c.t(Text::Arrivals)}</th>
                        <th>{move || c.t(Text::InQueue)}</th>
                        <th>{move || c.t(Text::OldestWait)}</th>
                        <th>
                            {move || {
                                if has_sl_target.get() {
                                    c.t(Text::ServiceLevel)
                                } else {
                                    c.t(Text::AnswerRate)
                                }
                            }}
                        </th>
                        <th>{move || c.t(Text::AbandonRate)}</th>
                        <th>{move || c.t(Text::DeflectionRate)}</th>
                        <th title=move || c.t(Text::FormulaWhatIf)>{move || c.t(Text::IfDeflected)}</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || order.get() key=|reason| reason.clone() let:reason>
                        <ReasonLine
                            reason=reason
                            table=table
                            channel=channel
                            has_sl_target=has_sl_target
                            draft=draft
                            can_flip=Signal::derive(can_flip)
                        />
                    </For>
                </tbody>
            </table>
            <Show when=move || {
                c.live.snapshot.with(Option::is_some) && order.with(Vec::is_empty)
            }>
                <p class="quiet">{move || c.t(Text::NoContact)}</p>
            </Show>
        </section>
    }
}

#[component]
fn ReasonLine(
    reason: String,
    table: Memo<Vec<ReasonRow>>,
    channel: Memo<String>,
    has_sl_target: Memo<bool>,
    draft: RwSignal<Option<Draft>>,
    can_flip: Signal<bool>,
) -> impl IntoView {
    let c = ctx();
    let row = {
        let reason = reason.clone();
        Memo::new(move |_| table.with(|rows| rows.iter().find(|r| r.reason == reason).cloned()))
    };
    let kpis = move || row.with(|r| r.as_ref().map(|r| r.kpis.clone()).unwrap_or_default());
    // Each value coloured by the levels the ranking computed.
    let level_of = move |f: fn(&TileLevels) -> Level| {
        let level = row.with(|r| r.as_ref().map_or(Level::NoData, |r| f(&r.levels)));
        format!("value {}", level.class())
    };
    let headline = move || {
        let k = kpis();
        let value = if has_sl_target.get() {
            k.service_level
        } else {
            k.answer_rate
        };
        percent(value, c.lang.get())
    };
    let switches = {
        let reason = reason.clone();
        move || {
            let segment = c.view.with(|v| v.segment.clone());
            c.live.switches.with(|all| {
                deflecting(all, &channel.get(), &reason, segment.as_deref())
                    .into_iter()
                    .map(|s| {
                        let to = channel_name(c.lang.get(), s.target.code());
                        match &s.segment {
                            Some(segment) => format!("→ {to} ({segment})"),
                            None => format!("→ {to}"),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        }
    };
    let offered = {
        let reason = reason.clone();
        move || {
            let segment = c.view.with(|v| v.segment.clone());
            is_deflectable(&reason)
                && !c
                    .live
                    .switches
                    .with(|all| wholly_deflected(all, &channel.get(), &reason, segment.as_deref()))
        }
    };
    let open = {
        let reason = reason.clone();
        move |_| {
            let segment = c.view.with_untracked(|v| v.segment.clone());
            draft.set(Some(c.live.switches.with_untracked(|all| {
                Draft::turning_on(channel.get_untracked(), Some(reason.clone()), segment, all)
            })));
        }
    };
    view! {
        <tr
            data-reason=reason.clone()
            class=move || row.with(|r| r.as_ref().map_or("", |r| r.level().class()))
        >
            <td class="reason">{reason.clone()}</td>
            <td class="value">{move || count(kpis().arrivals)}</td>
            <td class="value">{move || count(kpis().in_queue)}</td>
            <td class=move || level_of(|l| l.oldest_wait)>
                {move || duration(kpis().oldest_wait_ms.map(|ms| ms as f64))}
            </td>
            <td class=move || level_of(|l| l.headline)>{headline}</td>
            <td class=move || level_of(|l| l.abandon_rate)>
                {move || percent(kpis().abandon_rate, c.lang.get())}
            </td>
            <td class="value">{move || percent(kpis().deflection_rate, c.lang.get())}</td>
            <td class="what-if" data-kpi="what_if">
                {move || kpis().what_if.map(|w| what_if_text(&w, c.lang.get()))}
            </td>
            <td class="action">
                <span class="deflecting">{move || switches().join(" · ")}</span>
                <Show when=move || can_flip.get() && offered()>
                    <button class="deflect" on:click=open.clone()>{move || c.t(Text::Deflect)}</button>
                </Show>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_proto::{DeflectionTarget, DimensionKey};

    fn reason(name: &str, kpis: Kpis) -> Breakdown {
        Breakdown {
            key: DimensionKey {
                reason: Some(name.into()),
                ..DimensionKey::default()
            },
            kpis,
        }
    }

    #[test]
    fn the_most_pressed_reasons_come_first() {
        let targets = crate::levels::tests::phone_at_80();
        let kpis = |sl: f64, in_queue: u64, arrivals: u64| Kpis {
            service_level: Some(sl),
            abandon_rate: Some(0.0),
            in_queue,
            arrivals,
            ..Kpis::default()
        };
        let rows = ranked(
            &[
                reason("address", kpis(0.95, 30, 10)),
                reason("billing", kpis(0.50, 2, 10)),
                reason("contract", kpis(0.95, 30, 90)),
                reason("outage", kpis(0.78, 1, 5)),
            ],
            "phone",
            &targets,
        );
        let order: Vec<_> = rows
            .iter()
            .map(|r| (r.reason.as_str(), r.level()))
            .collect();
        assert_eq!(
            order,
            [
                ("billing", Level::Breach),
                ("outage", Level::Warning),
                ("contract", Level::Ok),
                ("address", Level::Ok),
            ],
            "level first, then queue, then arrivals"
        );
    }

    #[test]
    fn a_reason_is_deflected_by_its_own_switch_or_the_whole_channels() {
        let switch =
            |id: &str, reason: Option<&str>, segment: Option<&str>, on: bool| DeflectionSwitch {
                id: id.into(),
                channel: "phone".into(),
                reason: reason.map(Into::into),
                segment: segment.map(Into::into),
                queue: None,
                target: DeflectionTarget::Callback,
                on,
                version: 1,
                changed_by: "ann".into(),
                changed_at: 0,
                why: "queue saturated".into(),
                expires_at: None,
                prediction: None,
            };
        let switches = [
            switch("billing-low", Some("billing"), Some("low"), true),
            switch("billing-off", Some("billing"), None, false),
            switch("contract", Some("contract"), None, true),
            switch("everything", None, Some("pro"), true),
            DeflectionSwitch {
                channel: "chat".into(),
                ..switch("chat-billing", Some("billing"), None, true)
            },
        ];
        let ids = |reason: &str, segment: Option<&str>| {
            deflecting(&switches, "phone", reason, segment)
                .into_iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("billing", None), ["billing-low", "everything"]);
        assert_eq!(ids("billing", Some("low")), ["billing-low"]);
        assert_eq!(ids("billing", Some("pro")), ["everything"]);
        assert_eq!(ids("address", Some("standard")), Vec::<&str>::new());
        let whole = |reason: &str, segment: Option<&str>| {
            wholly_deflected(&switches, "phone", reason, segment)
        };
        assert!(
            !whole("billing", None),
            "billing's low segment only: the other segments can still be deflected"
        );
        assert!(whole("billing", Some("low")));
        assert!(whole("contract", None));
        assert!(
            whole("address", Some("pro")),
            "the channel's switch for pro"
        );
    }

    #[test]
    fn the_engines_stand_ins_cannot_be_deflected() {
        assert!(is_deflectable("billing"));
        assert!(!is_deflectable(UNKNOWN_VALUE));
        assert!(!is_deflectable(OTHER_VALUE));
    }

    #[test]
    fn a_what_if_reads_share_then_now_then_without() {
        let w = WhatIf {
            share: 0.31,
            projected_service_level: 0.41,
            projected_service_level_without: 0.78,
        };
        assert_eq!(
            what_if_text(&w, crate::i18n::Lang::En),
            "31% of the load · 41% → 78%"
        );
    }
}
