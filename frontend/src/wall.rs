//! Owns the wall view: one tile per channel (and one for all channels) with the headline
//! KPIs coloured against targets, a last-hour sparkline and, on demand, each formula
//! and window; and the queue table with estimated wait ranges.

use leptos::prelude::*;
use vigie_proto::{Kpis, Snapshot, Staffing, TrendPoint};

use crate::format::clock;
use crate::format::{count, duration, percent, wait_range};
use crate::i18n::{channel_name, Say, Text};
use crate::levels::{
    occupancy_level, oldest_wait_level, service_level_target, total_oldest_wait_level, Level,
    TileLevels,
};
use crate::spark;
use crate::state::{ctx, Ctx};

#[component]
pub fn Wall() -> impl IntoView {
    let c = ctx();
    // Busiest channels first; the list changes only when a channel appears or goes.
    let channels = Memo::new(move |_| {
        c.live.snapshot.with(|s| {
            let mut channels: Vec<(String, u64)> = s
                .iter()
                .flat_map(|s| s.by_channel.iter())
                .map(|(name, k)| (name.clone(), k.arrivals + k.in_queue))
                .collect();
            channels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            channels
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        })
    });
    view! {
        <section class="window-line">
            {move || window_text(&c)}
        </section>
        <section class="tiles">
            <Tile channel=None/>
            <For each=move || channels.get() key=|name| name.clone() let:name>
                <Tile channel=Some(name)/>
            </For>
        </section>
        <QueueTable/>
    }
}

/// "Window 14:05–14:20 · watermark 14:19:58": the exact bounds every tile uses.
fn window_text(c: &Ctx) -> String {
    let lang = c.lang.get();
    c.live.snapshot.with(|s| match s {
        Some(s) => format!(
            "{} {} → {}",
            lang.text(Text::WindowLabel),
            clock(s.window.from, lang.code()),
            clock(s.window.to, lang.code())
        ),
        None => String::new(),
    })
}

fn kpis_of(snapshot: &Snapshot, channel: Option<&str>) -> Option<Kpis> {
    match channel {
        None => Some(snapshot.total.clone()),
        Some(c) => snapshot.by_channel.get(c).cloned(),
    }
}

#[component]
fn Tile(channel: Option<String>) -> impl IntoView {
    let c = ctx();
    let name = channel.clone();
    let kpis = {
        let channel = channel.clone();
        Memo::new(move |_| {
            c.live
                .snapshot
                .with(|s| s.as_ref().and_then(|s| kpis_of(s, channel.as_deref())))
        })
    };
    let sl_target = {
        let channel = channel.clone();
        Memo::new(move |_| {
            let targets = c.targets();
            c.live.snapshot.with(|s| {
                let empty = Default::default();
                let by_channel = s.as_ref().map_or(&empty, |s| &s.by_channel);
                service_level_target(&targets, channel.as_deref(), by_channel.iter())
            })
        })
    };
    let levels = {
        let channel = channel.clone();
        Memo::new(move |_| {
            let targets = c.targets();
            kpis.with(|k| {
                let k = k.as_ref()?;
                // A channel by its own norm; the total by its worst channel.
                let oldest_wait = match channel.as_deref() {
                    Some(ch) => oldest_wait_level(k.oldest_wait_ms, &targets, Some(ch)),
                    None => c.live.snapshot.with(|s| {
                        s.as_ref().map_or(Level::NoData, |s| {
                            total_oldest_wait_level(&targets, s.by_channel.iter())
                        })
                    }),
                };
                Some(TileLevels::of(k, sl_target.get(), oldest_wait, &targets))
            })
        })
    };
    let headline_is_sl = move || sl_target.get().is_some();
    let title = {
        let name = name.clone();
        move || match &name {
            Some(n) => channel_name(c.lang.get(), n),
            None => c.t(Text::Total).to_string(),
        }
    };
    let tile_class = move || {
        let level = levels.get().map_or(Level::NoData, |l| l.worst());
        format!("tile {}", level.class())
    };
    let lang = move || c.lang.get();
    let value = move |f: fn(&Kpis) -> Option<f64>| kpis.with(|k| k.as_ref().and_then(f));
    let level_of = move |f: fn(&TileLevels) -> Level| {
        format!(
            "value {}",
            levels.get().map_or(Level::NoData, |l| f(&l)).class()
        )
    };
    let headline = move || {
        if headline_is_sl() {
            percent(value(|k| k.service_level), lang())
        } else {
            percent(value(|k| k.answer_rate), lang())
        }
    };
    let headline_label = move || {
        if headline_is_sl() {
            let target = percent(sl_target.get(), lang());
            format!(
                "{} · {} {target}",
                c.t(Text::ServiceLevel),
                c.t(Text::TargetLabel)
            )
        } else {
            c.t(Text::AnswerRate).to_string()
        }
    };
    let show_formulas = RwSignal::new(false);
    let formulas_shown = move || show_formulas.get() || c.view.with(|v| v.formulas);
    let data_channel = channel.clone().unwrap_or_else(|| "total".into());
    let spark_channel = channel.clone();
    view! {
        <article class=tile_class data-channel=data_channel>
            <header>
                <h2>{title}</h2>
                <button
                    class="formula-toggle"
                    title=move || c.t(Text::Formula)
                    on:click=move |_| show_formulas.update(|s| *s = !*s)
                >
                    "ƒ"
                </button>
            </header>
            <div class="headline">
                <span class=move || level_of(|l| l.headline) data-kpi="headline">{headline}</span>
                <span class="label">{headline_label}</span>
            </div>
            <Sparkline channel=spark_channel sl=headline_is_sl() target=sl_target/>
            // Channels without agents (bots, self-service) have no staffing line.
            <Show when=move || {
                kpis.with(|k| {
                    k.as_ref()
                        .is_some_and(|k| {
                            k.occupancy.is_some() || k.staffing.as_ref().is_some_and(|s| s.staffed > 0)
                        })
                })
            }>
                <p class="staffing">
                    <span data-kpi="staffing">
                        {move || {
                            kpis.with(|k| {
                                k.as_ref()
                                    .and_then(|k| k.staffing.as_ref())
                                    .map(|s| staffing_line(s, c.lang.get()))
                            })
                        }}
                    </span>
                    " · "
                    {move || c.t(Text::Occupancy)}
                    " "
                    <span class=move || level_of(|l| l.occupancy) data-kpi="occupancy">
                        {move || percent(value(|k| k.occupancy), lang())}
                    </span>
                </p>
            </Show>
            <dl class="kpis">
                <dt>{move || c.t(Text::Arrivals)}</dt>
                <dd class="value" data-kpi="arrivals">
                    {move || kpis.with(|k| k.as_ref().map_or("–".into(), |k| count(k.arrivals)))}
                    // "+23 % vs last week", once a week of history is there.
                    {move || {
                        kpis.with(|k| {
                            let vs = k.as_ref()?.baseline?.vs_last_week?;
                            let direction = if vs >= 0.0 { "up" } else { "down" };
                            Some(
                                view! {
                                    <small class=format!("baseline {direction}") data-kpi="vs_last_week">
                                        {format!(
                                            " {} {}",
                                            vigie_proto::words::change(Some(vs), c.lang.get()),
                                            c.t(Text::VsLastWeek),
                                        )}
                                    </small>
                                },
                            )
                        })
                    }}
                </dd>
                <dt>{move || c.t(Text::AnswerRate)}</dt>
                <dd class=move || level_of(|l| l.answer_rate) data-kpi="answer_rate">
                    {move || percent(value(|k| k.answer_rate), lang())}
                </dd>
                <dt>{move || c.t(Text::Asa)}</dt>
                <dd class="value" data-kpi="asa">{move || duration(value(|k| k.asa_ms))}</dd>
                <dt>{move || c.t(Text::AbandonRate)}</dt>
                <dd class=move || level_of(|l| l.abandon_rate) data-kpi="abandon_rate">
                    {move || percent(value(|k| k.abandon_rate), lang())}
                </dd>
                <dt>{move || c.t(Text::InQueue)}</dt>
                <dd class="value" data-kpi="in_queue">
                    {move || kpis.with(|k| k.as_ref().map_or("–".into(), |k| count(k.in_queue)))}
                </dd>
                <dt>{move || c.t(Text::OldestWait)}</dt>
                <dd class=move || level_of(|l| l.oldest_wait) data-kpi="oldest_wait">
                    {move || duration(value(|k| k.oldest_wait_ms.map(|ms| ms as f64)))}
                </dd>
                <dt>{move || c.t(Text::OnceAndDone)}</dt>
                <dd class=move || level_of(|l| l.once_and_done) data-kpi="once_and_done">
                    {move || percent(value(|k| k.once_and_done_rate), lang())}
                </dd>
                <dt>{move || c.t(Text::CrossChannel)}</dt>
                <dd class=move || level_of(|l| l.cross_channel) data-kpi="cross_channel">
                    {move || percent(value(|k| k.cross_channel_repeat_rate), lang())}
                </dd>
            </dl>
            <Show when=formulas_shown>
                <Formulas sl=headline_is_sl()/>
            </Show>
        </article>
    }
}

#[component]
fn Formulas(sl: bool) -> impl IntoView {
    let c = ctx();
    let window = move || {
        c.live.snapshot.with(|s| {
            s.as_ref().map(|s| {
                format!(
                    "{} = [{} ; {}[ ({})",
                    c.t(Text::WindowLabel),
                    clock(s.window.from, c.lang.get().code()),
                    clock(s.window.to, c.lang.get().code()),
                    c.view.with(|v| v.window.clone())
                )
            })
        })
    };
    let mut rows = vec![
        (Text::AnswerRate, Text::FormulaAnswerRate),
        (Text::Asa, Text::FormulaAsa),
        (Text::AbandonRate, Text::FormulaAbandonRate),
        (Text::InQueue, Text::FormulaInQueue),
        (Text::OnceAndDone, Text::FormulaOnceAndDone),
        (Text::CrossChannel, Text::FormulaCrossChannel),
    ];
    if sl {
        rows.insert(0, (Text::ServiceLevel, Text::FormulaServiceLevel));
    }
    rows.push((Text::AgentsTitle, Text::FormulaStaffing));
    rows.push((Text::Occupancy, Text::FormulaOccupancy));
    view! {
        <aside class="formulas">
            <p class="window-bounds">{window}</p>
            {rows
                .into_iter()
                .map(|(name, formula)| {
                    view! {
                        <p>
                            <strong>{move || c.t(name)}</strong>
                            ": "
                            {move || c.t(formula)}
                        </p>
                    }
                })
                .collect_view()}
        </aside>
    }
}

const SPARK_W: f64 = 240.0;
const SPARK_H: f64 = 40.0;

/// The last hour of the headline KPI (service level, else answer rate).
#[component]
fn Sparkline(channel: Option<String>, sl: bool, target: Memo<Option<f64>>) -> impl IntoView {
    let c = ctx();
    let values = Memo::new(move |_| {
        c.live.trend.with(|t| {
            let points: Vec<TrendPoint> = t
                .as_ref()
                .and_then(|t| match &channel {
                    None => Some(t.total.clone()),
                    Some(name) => t.by_channel.get(name).cloned(),
                })
                .unwrap_or_default();
            points
                .iter()
                .map(|p| if sl { p.service_level } else { p.answer_rate })
                .collect::<Vec<_>>()
        })
    });
    let range = move || spark::rate_range(&values.get(), target.get().filter(|_| sl));
    let target_y = move || {
        target
            .get()
            .filter(|_| sl)
            .map(|t| format!("{:.1}", spark::y_of(t, SPARK_H, range())))
    };
    view! {
        <svg class="spark" viewBox=format!("0 0 {SPARK_W} {SPARK_H}") preserveAspectRatio="none">
            <title>{move || c.t(Text::LastHour)}</title>
            {move || {
                target_y()
                    .map(|y| {
                        view! {
                            <line class="target" x1="0" x2=SPARK_W.to_string() y1=y.clone() y2=y/>
                        }
                    })
            }}
            {move || {
                spark::segments(&values.get(), SPARK_W, SPARK_H, range())
                    .into_iter()
                    .map(|points| view! { <polyline points=points/> })
                    .collect_view()
            }}
        </svg>
    }
}

#[component]
fn QueueTable() -> impl IntoView {
    let c = ctx();
    let rows = move || {
        c.live.snapshot.with(|s| {
            let mut rows: Vec<_> = s
                .iter()
                .flat_map(|s| s.queues.iter())
                .map(|(name, q)| (name.clone(), q.clone()))
                .collect();
            rows.sort_by(|a, b| {
                b.1.in_queue
                    .cmp(&a.1.in_queue)
                    .then_with(|| b.1.oldest_wait_ms.cmp(&a.1.oldest_wait_ms))
                    .then_with(|| a.0.cmp(&b.0))
            });
            rows
        })
    };
    view! {
        <section class="queues">
            <h2>{move || c.t(Text::Queues)}</h2>
            <table>
                <thead>
                    <tr>
                        <th>{move || c.t(Text::Queue)}</th>
                        <th>{move || c.t(Text::InQueue)}</th>
                        <th>{move || c.t(Text::OldestWait)}</th>
                        <th title=move || c.t(Text::FormulaEstimatedWait)>
                            {move || c.t(Text::EstimatedWait)}
                        </th>
                        <th title=move || c.t(Text::FormulaStaffing)>
                            {move || c.t(Text::AgentsTitle)}
                        </th>
                        <th title=move || c.t(Text::FormulaOccupancy)>
                            {move || c.t(Text::Occupancy)}
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let targets = c.targets();
                        rows()
                            .into_iter()
                            .map(|(name, q)| {
                                let level = oldest_wait_level(
                                    q.oldest_wait_ms,
                                    &targets,
                                    q.channel.as_deref(),
                                );
                                view! {
                                    <tr data-queue=name.clone()>
                                        <td>{name.clone()}</td>
                                        <td class="value">{count(q.in_queue)}</td>
                                        <td class=format!("value {}", level.class())>
                                            {duration(q.oldest_wait_ms.map(|ms| ms as f64))}
                                        </td>
                                        <td class="value">{wait_range(q.estimated_wait)}</td>
                                        <td class="value" data-kpi="staffing">
                                            {q.staffing.as_ref().map(|s| staffing_short(s, c.lang.get()))}
                                        </td>
                                        <td class=format!(
                                            "value {}",
                                            occupancy_level(q.occupancy, &targets).class(),
                                        )>{percent(q.occupancy, c.lang.get())}</td>
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

/// "14 agents · 3 free · 9 on contact · 1 wrap-up · 1 away".
pub(crate) fn staffing_line(s: &Staffing, lang: crate::i18n::Lang) -> String {
    format!(
        "{} {} · {} {} · {} {} · {} {} · {} {}",
        count(s.staffed),
        lang.text(Text::Agents),
        count(s.available),
        lang.text(Text::Free),
        count(s.on_contact),
        lang.text(Text::OnContact),
        count(s.after_contact_work),
        lang.text(Text::WrapUp),
        count(s.away),
        lang.text(Text::Away)
    )
}

/// "14 · 3 free": a queue's row.
pub(crate) fn staffing_short(s: &Staffing, lang: crate::i18n::Lang) -> String {
    format!(
        "{} · {} {}",
        count(s.staffed),
        count(s.available),
        lang.text(Text::Free)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    #[test]
    fn the_staffing_line_reads_at_a_glance_in_both_languages() {
        let s = Staffing {
            staffed: 14,
            available: 3,
            on_contact: 9,
            after_contact_work: 1,
            away: 1,
            ..Staffing::default()
        };
        assert_eq!(
            staffing_line(&s, Lang::En),
            "14 agents · 3 free · 9 on contact · 1 wrap-up · 1 away"
        );
        assert_eq!(
            staffing_line(&s, Lang::Fr),
            "14 agents · 3 libres · 9 en contact · 1 post-appel · 1 absents"
        );
        assert_eq!(staffing_short(&s, Lang::En), "14 · 3 free");
    }
}
