//! Owns the trend: how a subscription's flow KPIs moved over the last hour, one point
//! per step, each point being the subscription's own window ending at that time.
//!
//! Computed in one pass: the time line is cut at every point's start and end, each
//! segment is collected once straight into per-channel counters (no per-key aggregate,
//! no wait histogram: a trend shows no percentile), and a point is the difference of
//! two prefix sums, since counters are exactly subtractable.

use vigie_proto::{Trend, TrendPoint};

use super::aggregate::{derive_kpis, Aggregate, Counters};
use super::snapshot::{SnapshotQuery, Source};
use super::store::CountersByGroup;
use super::symbols::Sym;
use super::window::{window_end, WindowError, WindowSpec};
use super::Engine;

/// Points and spacing of a trend: the last hour, one point a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrendShape {
    pub points: usize,
    pub step_ms: i64,
}

impl Default for TrendShape {
    fn default() -> Self {
        TrendShape {
            points: 60,
            step_ms: 60_000,
        }
    }
}

/// The trend of `query` over `engines` (sharing one symbol table), ending at the
/// window end of their newest event.
pub fn build_trend(
    engines: &[&Engine],
    query: &SnapshotQuery,
    shape: TrendShape,
) -> Result<Trend, WindowError> {
    let Some(first) = engines.first() else {
        return Ok(Trend::default());
    };
    let sources: Vec<Source<'_>> = engines.iter().map(|e| Source::Local(e)).collect();
    build_trend_of(&first.cfg, &first.symbols, &sources, query, shape)
}

/// [`build_trend`] over local engines and replicas interned in `symbols`.
pub(super) fn build_trend_of(
    cfg: &super::EngineConfig,
    symbols: &super::Symbols,
    sources: &[Source<'_>],
    query: &SnapshotQuery,
    shape: TrendShape,
) -> Result<Trend, WindowError> {
    if let WindowSpec::Last(ms) = query.window {
        if ms > cfg.max_window_ms {
            return Err(WindowError::TooLong {
                length: query.window.to_string(),
                max: WindowSpec::Last(cfg.max_window_ms).to_string(),
            });
        }
    }
    let Some(watermark) = sources.iter().filter_map(Source::watermark).max() else {
        return Ok(Trend::default());
    };
    let end = window_end(Some(watermark));
    let times: Vec<i64> = (0..shape.points)
        .map(|i| end - (shape.points - 1 - i) as i64 * shape.step_ms)
        .collect();
    let bounds: Vec<(i64, i64)> = times
        .iter()
        .map(|&t| {
            let b = query.window.bounds(t, &cfg.time_zone);
            (b.from, b.to)
        })
        .collect();
    let mut cuts: Vec<i64> = bounds.iter().flat_map(|&(f, t)| [f, t]).collect();
    cuts.sort_unstable();
    cuts.dedup();

    // Each key's channel among the matching keys' channels: the groups of the counters.
    let keys = symbols.keys();
    let matches = query.filter.matcher(symbols);
    let mut channels: Vec<Sym> = Vec::new();
    let group_of = keys
        .iter()
        .map(|key| {
            matches(key).then(|| match channels.iter().position(|c| *c == key.channel) {
                Some(g) => g,
                None => {
                    channels.push(key.channel);
                    channels.len() - 1
                }
            })
        })
        .collect();
    let mut segment = CountersByGroup {
        group_of,
        counters: vec![Counters::default(); channels.len()],
        touched: vec![false; channels.len()],
    };
    // by_channel[g][k]: everything of channel g in [cuts[0], cuts[k]).
    let mut by_channel = vec![vec![Counters::default(); cuts.len()]; channels.len()];
    for k in 1..cuts.len() {
        segment.counters.fill(Counters::default());
        for source in sources {
            source.collect(cuts[k - 1], cuts[k], &mut segment);
        }
        for (series, added) in by_channel.iter_mut().zip(&segment.counters) {
            let mut sum = series[k - 1];
            sum.add(added, 1);
            series[k] = sum;
        }
    }
    let mut total = vec![Counters::default(); cuts.len()];
    for series in &by_channel {
        for (t, c) in total.iter_mut().zip(series) {
            t.add(c, 1);
        }
    }

    let at = |t: i64| cuts.binary_search(&t).unwrap_or(0);
    let points = |series: &[Counters]| -> Vec<TrendPoint> {
        bounds
            .iter()
            .map(|&(from, to)| {
                let mut window = Aggregate {
                    counters: series[at(to)],
                    ..Aggregate::default()
                };
                window.counters.add(&series[at(from)], -1);
                TrendPoint::of(&derive_kpis(&window))
            })
            .collect()
    };
    // The channels with contributions within the hour, by name.
    let mut named: Vec<(String, &Vec<Counters>)> = channels
        .iter()
        .zip(&by_channel)
        .zip(&segment.touched)
        .filter(|(_, touched)| **touched)
        .map(|((c, series), _)| (symbols.name(*c).to_string(), series))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Trend {
        step_ms: shape.step_ms,
        times,
        total: points(&total),
        by_channel: named
            .into_iter()
            .map(|(name, series)| (name, points(series)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{DimensionFilter, EngineConfig};
    use crate::event::{EventKind, EventRecord};

    /// Each trend point equals the snapshot of the same window computed directly.
    #[test]
    fn every_point_is_the_snapshot_of_its_window() {
        let engine = Engine::new(EngineConfig::default());
        let minute = 60_000;
        let start = 1_700_000_000_000 - 1_700_000_000_000 % minute;
        let mut reference = Vec::new();
        for i in 0..240 {
            let t = start + i * 17_000;
            let channel = if i % 3 == 0 { "chat" } else { "phone" };
            let id = format!("c{i}");
            let customer = format!("u{}", i % 40);
            let mut arrived = EventRecord::new(format!("{id}-a"), EventKind::Arrived, t, &*id);
            arrived.customer_id = Some(customer.as_str().into());
            arrived.channel = Some(channel.into());
            engine.apply(&arrived);
            let outcome = if i % 4 == 0 {
                EventKind::Abandoned
            } else {
                EventKind::Answered
            };
            let mut end =
                EventRecord::new(format!("{id}-o"), outcome, t + 5_000 + i % 30 * 1_000, &*id);
            end.channel = Some(channel.into());
            engine.apply(&end);
            reference.push(t);
        }
        let query = SnapshotQuery {
            window: WindowSpec::Last(15 * minute),
            filter: DimensionFilter::default(),
            breakdown: Vec::new(),
            rows: usize::MAX,
            agent_list: false,
        };
        let trend = build_trend(
            &[&engine],
            &query,
            TrendShape {
                points: 20,
                step_ms: minute,
            },
        )
        .expect("trend");
        assert_eq!(trend.times.len(), 20);
        let end = *trend.times.last().expect("points");
        assert_eq!(end, window_end(engine.watermark()));
        let snapshot = engine.snapshot(&query).expect("snapshot");
        let last = trend.total.last().expect("points");
        assert_eq!(*last, TrendPoint::of(&snapshot.total));
        assert_eq!(
            trend.by_channel["phone"].last().copied(),
            Some(TrendPoint::of(&snapshot.by_channel["phone"]))
        );
        // An earlier point: recompute that window from the raw arrivals.
        let t = trend.times[5];
        let expected = reference
            .iter()
            .filter(|&&a| a >= t - 15 * minute && a < t)
            .count() as u64;
        assert_eq!(trend.total[5].arrivals, expected);
        assert!(expected > 0, "the test window is not empty");
        assert_ne!(trend.total[5], trend.total[19], "the trend moves");
    }
}
