//! Owns the trend: how a subscription's flow KPIs moved over the last hour, one point
//! per step, each point being the subscription's own window ending at that time.
//!
//! Computed in one pass: the time line is cut at every point's start and end, each
//! segment is collected once (grouped into total and per channel), and a point is the
//! difference of two prefix sums, since aggregates are exactly subtractable.

use std::collections::{BTreeMap, HashMap};

use vigie_proto::{Trend, TrendPoint};

use super::aggregate::{derive_kpis, Aggregate};
use super::snapshot::{SnapshotQuery, Source};
use super::symbols::{FastHash, KeyId, Sym};
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

/// Prefix sums at each cut: `total[k]` and `by_channel[c][k]` hold everything in
/// `[cuts[0], cuts[k])`.
struct Prefix {
    total: Vec<Aggregate>,
    by_channel: BTreeMap<Sym, Vec<Aggregate>>,
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

    let keys = symbols.keys();
    let matches = query.filter.matcher(symbols);
    let mut prefix = Prefix {
        total: vec![Aggregate::default(); cuts.len()],
        by_channel: BTreeMap::new(),
    };
    let mut segment: HashMap<KeyId, Aggregate, FastHash> = HashMap::default();
    for k in 1..cuts.len() {
        segment.clear();
        for source in sources {
            source.collect(cuts[k - 1], cuts[k], &mut segment);
        }
        let before = prefix.total[k - 1].clone();
        prefix.total[k] = before;
        for series in prefix.by_channel.values_mut() {
            series[k] = series[k - 1].clone();
        }
        for (key_id, agg) in &segment {
            let Some(key) = keys.get(*key_id as usize).filter(|k| matches(k)) else {
                continue;
            };
            prefix.total[k].merge(agg, 1);
            let series = prefix
                .by_channel
                .entry(key.channel)
                .or_insert_with(|| vec![Aggregate::default(); cuts.len()]);
            series[k].merge(agg, 1);
        }
    }

    let at = |t: i64| cuts.binary_search(&t).unwrap_or(0);
    let points = |series: &[Aggregate]| -> Vec<TrendPoint> {
        bounds
            .iter()
            .map(|&(from, to)| {
                let mut window = series[at(to)].clone();
                window.merge(&series[at(from)], -1);
                TrendPoint::of(&derive_kpis(&window))
            })
            .collect()
    };
    Ok(Trend {
        step_ms: shape.step_ms,
        times,
        total: points(&prefix.total),
        by_channel: prefix
            .by_channel
            .iter()
            .map(|(c, series)| (symbols.name(*c).to_string(), points(series)))
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
