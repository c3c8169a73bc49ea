//! Owns snapshot building: window bounds, dimension filters, merging the aggregates
//! of every shard, and grouping them into total / per channel / per queue / breakdown.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vigie_proto::{Breakdown, DimensionKey, Kpis, QueueStatus, Snapshot};

use super::aggregate::{derive_kpis, estimate_wait, Aggregate, Counters, WaitCounts};
use super::baseline::{judge, BaseKey, Share, WEEK_MS};
use super::capacity::{breakdown_has_agents, capacity, QueueChannels, Tally};
use super::partial::Replica;
use super::projection::{Load, Rule};
use super::store::Collect;
use super::symbols::{DimKey, FastHash, KeyId, Sym};
use super::window::{window_end, WindowError, WindowSpec};
use super::Engine;

/// One of the five dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Channel,
    Queue,
    Reason,
    Segment,
    Site,
}

impl Dimension {
    pub(crate) const ALL: [Dimension; 5] = [
        Dimension::Channel,
        Dimension::Queue,
        Dimension::Reason,
        Dimension::Segment,
        Dimension::Site,
    ];

    pub(super) fn of(self, key: &DimKey) -> Sym {
        match self {
            Dimension::Channel => key.channel,
            Dimension::Queue => key.queue,
            Dimension::Reason => key.reason,
            Dimension::Segment => key.segment,
            Dimension::Site => key.site,
        }
    }

    /// The field of a wire [`DimensionKey`] that holds this dimension.
    pub fn slot(self, key: &mut DimensionKey) -> &mut Option<String> {
        match self {
            Dimension::Channel => &mut key.channel,
            Dimension::Queue => &mut key.queue,
            Dimension::Reason => &mut key.reason,
            Dimension::Segment => &mut key.segment,
            Dimension::Site => &mut key.site,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Queue => "queue",
            Dimension::Reason => "reason",
            Dimension::Segment => "segment",
            Dimension::Site => "site",
        }
    }
}

impl FromStr for Dimension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown dimension {s:?} (expected channel, queue, reason, segment or site)"
                )
            })
    }
}

/// Keeps only the contacts whose dimensions have the given values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DimensionFilter(pub Vec<(Dimension, String)>);

impl DimensionFilter {
    /// A test of dimension keys against this filter (a value never seen matches nothing).
    pub(super) fn matcher(&self, symbols: &super::Symbols) -> impl Fn(&DimKey) -> bool {
        let wanted: Vec<(Dimension, Option<Sym>)> = self
            .0
            .iter()
            .map(|(d, v)| (*d, symbols.lookup(v)))
            .collect();
        move |key: &DimKey| wanted.iter().all(|(d, v)| Some(d.of(key)) == *v)
    }

    /// The value this filter asks of `dimension`, if it asks one.
    pub fn get(&self, dimension: Dimension) -> Option<&str> {
        self.0
            .iter()
            .find(|(d, _)| *d == dimension)
            .map(|(_, v)| v.as_str())
    }

    /// The values set in `key` (a wire filter: query string, subscription, CLI flags).
    pub fn from_key(mut key: DimensionKey) -> DimensionFilter {
        DimensionFilter(
            Dimension::ALL
                .into_iter()
                .filter_map(|d| d.slot(&mut key).take().map(|v| (d, v)))
                .collect(),
        )
    }
}

/// What to compute: a window, a filter, and an optional finer breakdown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotQuery {
    pub window: WindowSpec,
    pub filter: DimensionFilter,
    /// Dimensions to break down by, beyond `total` and `by_channel` (empty: none).
    pub breakdown: Vec<Dimension>,
    /// Most rows of the breakdown: the busiest (by arrivals), the rest summed in one row
    /// whose dimensions read `(other)`.
    pub rows: usize,
    /// Also the agent list of the queue and site filters (the websocket's `agents`).
    pub agent_list: bool,
}

impl Default for SnapshotQuery {
    fn default() -> Self {
        SnapshotQuery {
            window: WindowSpec::Last(15 * 60_000),
            filter: DimensionFilter::default(),
            breakdown: Vec::new(),
            rows: usize::MAX,
            agent_list: false,
        }
    }
}

/// A scope's merged aggregate plus its live queue state.
#[derive(Default)]
struct Scope {
    counters: Counters,
    /// Contacts per wait bucket, in no order: a scope adds up the waits of thousands of
    /// keys, which a sorted list would take one insertion (and shift) at a time. Sorted
    /// once, for the percentiles.
    waits: HashMap<u32, i32, FastHash>,
    in_queue: u64,
    oldest_arrival: Option<i64>,
}

impl Scope {
    /// Adds one key's aggregate.
    fn add(&mut self, agg: &Aggregate) {
        self.counters.add(&agg.counters, 1);
        self.add_waits(agg.waits.iter());
    }

    fn add_waits(&mut self, waits: impl Iterator<Item = (u32, i32)>) {
        for (bucket, count) in waits {
            let n = self.waits.entry(bucket).or_default();
            *n = n.wrapping_add(count);
        }
    }

    fn merge(&mut self, other: &Scope) {
        self.counters.add(&other.counters, 1);
        self.add_waits(other.waits.iter().map(|(b, n)| (*b, *n)));
        if let Some(oldest) = other.oldest_arrival {
            self.add_waiting(other.in_queue, oldest);
        }
    }

    fn add_waiting(&mut self, n: u64, arrival_ts: i64) {
        self.in_queue = self.in_queue.saturating_add(n);
        self.oldest_arrival = Some(
            self.oldest_arrival
                .map_or(arrival_ts, |o| o.min(arrival_ts)),
        );
    }

    fn kpis(&self, now: i64) -> Kpis {
        let agg = Aggregate {
            counters: self.counters,
            waits: WaitCounts::from_unsorted(self.waits.iter().map(|(b, n)| (*b, *n))),
        };
        let mut kpis = derive_kpis(&agg);
        kpis.in_queue = self.in_queue;
        kpis.oldest_wait_ms = self.oldest_arrival.map(|a| (now - a).max(0));
        kpis
    }
}

impl Engine {
    /// Deflected contacts in `filter`'s scope since `since_ms`, and how many of those
    /// customers came back on any channel within the repeat horizon.
    pub(crate) fn deflection_effect(
        &self,
        filter: &DimensionFilter,
        since_ms: i64,
    ) -> super::DeflectionEffect {
        let keys = self.symbols.keys();
        let matches = filter.matcher(&self.symbols);
        self.deflections
            .effect(since_ms, |k| keys.get(k as usize).is_some_and(&matches))
    }

    /// Builds the snapshot of `query` over this engine's state.
    pub fn snapshot(&self, query: &SnapshotQuery) -> Result<Snapshot, WindowError> {
        build_snapshot(&[self], query)
    }

    /// Adds this engine's contributions to `[from, to)` into `out`, per key.
    pub(super) fn collect(&self, from: i64, to: i64, out: &mut impl Collect) {
        for store in self.stores.iter() {
            store.lock().collect(from, to, out);
        }
    }
}

/// What a merged view is built from: a partition consumed here, or the replica of a
/// partition another instance consumes (scale-out).
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    Local(&'a Engine),
    Remote(&'a Replica),
}

impl<'a> Source<'a> {
    pub(super) fn watermark(&self) -> Option<i64> {
        match self {
            Source::Local(e) => e.watermark(),
            Source::Remote(r) => r.header.watermark,
        }
    }

    pub(super) fn collect(&self, from: i64, to: i64, out: &mut impl Collect) {
        match self {
            Source::Local(e) => e.collect(from, to, out),
            Source::Remote(r) => r.collect(from, to, out),
        }
    }

    /// Calls `f(key, count, oldest arrival)` for the contacts in queue.
    fn for_each_waiting(&self, mut f: impl FnMut(KeyId, u64, i64)) {
        match self {
            Source::Local(e) => {
                for entry in e.waiting.iter() {
                    let (arrival_ts, key_id) = *entry.value();
                    f(key_id, 1, arrival_ts);
                }
            }
            Source::Remote(r) => {
                for &(key, n, oldest) in r.waiting() {
                    f(key, n, oldest);
                }
            }
        }
    }

    /// Earliest event time of the partition: how far back its baseline goes.
    fn history_from(&self) -> Option<i64> {
        match self {
            Source::Local(e) => e.first_ts(),
            Source::Remote(r) => r.header.history_from,
        }
    }

    /// Adds each baseline key's arrivals in `[from, to)` into `out`.
    fn collect_baseline(&self, from: i64, to: i64, out: &mut HashMap<BaseKey, Share, FastHash>) {
        match self {
            Source::Local(e) => e.baseline.collect(from, to, out),
            Source::Remote(r) => r.baseline.collect(from, to, out),
        }
    }

    /// The agents of the partition.
    pub(super) fn agents(&self) -> &'a super::agents::AgentBook {
        match self {
            Source::Local(e) => &e.agents,
            Source::Remote(r) => &r.agents,
        }
    }

    /// Late events, rejected records, duplicates.
    fn counters(&self) -> [u64; 3] {
        match self {
            Source::Local(e) => {
                let s = &e.stats;
                [&s.late_events, &s.rejected, &s.duplicates].map(|a| a.load(Ordering::Relaxed))
            }
            Source::Remote(r) => [r.header.late_events, r.header.rejected, r.header.duplicates],
        }
    }
}

/// Builds one snapshot over several engines sharing one symbol table (one engine per
/// Kafka partition): their contributions are merged by addition, their counters summed,
/// and the window ends at the newest event time any of them has seen.
pub fn build_snapshot(engines: &[&Engine], query: &SnapshotQuery) -> Result<Snapshot, WindowError> {
    let Some(first) = engines.first() else {
        return Ok(Snapshot::default());
    };
    debug_assert!(
        engines
            .iter()
            .all(|e| Arc::ptr_eq(&e.symbols, &first.symbols)),
        "engines share one symbol table"
    );
    let sources: Vec<Source<'_>> = engines.iter().map(|e| Source::Local(e)).collect();
    build_snapshot_of(&first.cfg, &first.symbols, &sources, query)
}

/// Refuses a window longer than the aggregates are kept (`engine.max_window`).
fn check_window(cfg: &super::EngineConfig, window: WindowSpec) -> Result<(), WindowError> {
    match window {
        WindowSpec::Last(ms) if ms > cfg.max_window_ms => Err(WindowError::TooLong {
            length: window.to_string(),
            max: WindowSpec::Last(cfg.max_window_ms).to_string(),
        }),
        _ => Ok(()),
    }
}

/// Each scope's arrivals in the same window of earlier weeks (week 1 first), for the
/// weeks every partition's history covers.
#[derive(Default)]
struct Baselines {
    on: bool,
    total: Vec<Share>,
    by_channel: BTreeMap<Sym, Vec<Share>>,
    by_queue: BTreeMap<Sym, Vec<Share>>,
}

impl Baselines {
    fn of(
        cfg: &super::EngineConfig,
        symbols: &super::Symbols,
        sources: &[Source<'_>],
        filter: &DimensionFilter,
        bounds: vigie_proto::WindowBounds,
    ) -> Baselines {
        // Kept per channel and queue only: a finer filter has none.
        let finer = [Dimension::Reason, Dimension::Segment, Dimension::Site]
            .iter()
            .any(|d| filter.get(*d).is_some());
        if cfg.baseline_weeks == 0 || finer {
            return Baselines::default();
        }
        let wanted = |d: Dimension| filter.get(d).map(|v| symbols.lookup(v));
        let (channel, queue) = (wanted(Dimension::Channel), wanted(Dimension::Queue));
        let keep = |(c, q): &BaseKey| {
            channel.is_none_or(|w| w == Some(*c)) && queue.is_none_or(|w| w == Some(*q))
        };
        let history_from = sources.iter().filter_map(Source::history_from).max();
        let weeks: Vec<i64> = (1..=i64::from(cfg.baseline_weeks))
            .map(|k| k * WEEK_MS)
            .take_while(|shift| history_from.is_some_and(|h| h <= bounds.from - shift))
            .collect();
        if weeks.is_empty() {
            // Not a week of history yet: nothing to compare with.
            return Baselines::default();
        }
        let mut out = Baselines {
            on: true,
            total: vec![0; weeks.len()],
            ..Baselines::default()
        };
        for (week, shift) in weeks.iter().enumerate() {
            let mut per_key: HashMap<BaseKey, Share, FastHash> = HashMap::default();
            for source in sources {
                source.collect_baseline(bounds.from - shift, bounds.to - shift, &mut per_key);
            }
            for (key, n) in per_key.iter().filter(|(k, _)| keep(k)) {
                out.total[week] += n;
                for (map, slot) in [(&mut out.by_channel, key.0), (&mut out.by_queue, key.1)] {
                    map.entry(slot).or_insert_with(|| vec![0; weeks.len()])[week] += n;
                }
            }
        }
        out
    }

    fn judge(&self, arrivals: u64, weeks: Option<&Vec<Share>>) -> Option<vigie_proto::Baseline> {
        let none = vec![0; self.total.len()];
        self.on.then(|| judge(arrivals, weeks.unwrap_or(&none)))
    }
}

/// [`build_snapshot`] over local engines and replicas interned in `symbols`.
pub(super) fn build_snapshot_of(
    cfg: &super::EngineConfig,
    symbols: &super::Symbols,
    sources: &[Source<'_>],
    query: &SnapshotQuery,
) -> Result<Snapshot, WindowError> {
    check_window(cfg, query.window)?;
    let watermark = sources.iter().filter_map(Source::watermark).max();
    let to = window_end(watermark);
    let bounds = query.window.bounds(to, &cfg.time_zone);

    let mut per_key: HashMap<KeyId, Aggregate, FastHash> = HashMap::default();
    for source in sources {
        source.collect(bounds.from, bounds.to, &mut per_key);
    }
    let keys = symbols.keys();
    let matches = query.filter.matcher(symbols);
    // Each queue's channels (for its agents), from every contact of the window.
    let mut queue_channels = QueueChannels::default();
    let mut note_queue_channel = |key: &DimKey| {
        let channels = queue_channels.entry(key.queue).or_default();
        if !channels.contains(&key.channel) {
            channels.push(key.channel);
        }
    };
    for key_id in per_key.keys() {
        if let Some(key) = keys.get(*key_id as usize) {
            note_queue_channel(key);
        }
    }
    for source in sources {
        source.for_each_waiting(|key_id, _, _| {
            if let Some(key) = keys.get(key_id as usize) {
                note_queue_channel(key);
            }
        });
    }
    let books: Vec<&super::agents::AgentBook> = sources.iter().map(Source::agents).collect();
    let capacity = capacity(
        &books,
        bounds,
        &query.filter,
        symbols,
        &queue_channels,
        &query.breakdown,
    );
    let staffing_of = |tally: Option<&Tally>| {
        if !capacity.any {
            return (None, None);
        }
        let tally = tally.cloned().unwrap_or_default();
        (tally.occupancy(), Some(tally.staffing))
    };

    let mut total = Scope::default();
    let mut by_channel: BTreeMap<Sym, Scope> = BTreeMap::new();
    let mut by_queue: BTreeMap<Sym, Scope> = BTreeMap::new();
    // Each queue's channel, `None` once a second channel is seen in it.
    let mut queue_channel: BTreeMap<Sym, Option<Sym>> = BTreeMap::new();
    let mut note_channel = |key: &DimKey| {
        queue_channel
            .entry(key.queue)
            .and_modify(|c| {
                if *c != Some(key.channel) {
                    *c = None;
                }
            })
            .or_insert(Some(key.channel));
    };
    let mut breakdown: BTreeMap<Vec<Sym>, Scope> = BTreeMap::new();
    let group = |key: &DimKey| -> Vec<Sym> { query.breakdown.iter().map(|d| d.of(key)).collect() };

    for (key_id, agg) in &per_key {
        let Some(key) = keys.get(*key_id as usize).filter(|k| matches(k)) else {
            continue;
        };
        total.add(agg);
        by_channel.entry(key.channel).or_default().add(agg);
        by_queue.entry(key.queue).or_default().add(agg);
        note_channel(key);
        if !query.breakdown.is_empty() {
            breakdown.entry(group(key)).or_default().add(agg);
        }
    }
    for source in sources {
        source.for_each_waiting(|key_id, n, arrival_ts| {
            let Some(key) = keys.get(key_id as usize).filter(|k| matches(k)) else {
                return;
            };
            total.add_waiting(n, arrival_ts);
            by_channel
                .entry(key.channel)
                .or_default()
                .add_waiting(n, arrival_ts);
            by_queue
                .entry(key.queue)
                .or_default()
                .add_waiting(n, arrival_ts);
            note_channel(key);
            if !query.breakdown.is_empty() {
                breakdown
                    .entry(group(key))
                    .or_default()
                    .add_waiting(n, arrival_ts);
            }
        });
    }

    // A queue with agents and no contact yet is listed.
    for q in capacity.by_queue.keys() {
        by_queue.entry(*q).or_default();
    }
    // So is a channel or a queue expected and silent (a dead feed looks like a quiet hour).
    let baselines = Baselines::of(cfg, symbols, sources, &query.filter, bounds);
    let expected = |weeks: &Vec<Share>| weeks.iter().any(|n| *n > 0);
    for (c, weeks) in &baselines.by_channel {
        if expected(weeks) {
            by_channel.entry(*c).or_default();
        }
    }
    for (q, weeks) in &baselines.by_queue {
        if expected(weeks) {
            by_queue.entry(*q).or_default();
        }
    }
    if breakdown_has_agents(&query.breakdown) {
        for row in capacity.breakdown.keys() {
            breakdown.entry(row.clone()).or_default();
        }
    }
    let breakdown = capped(breakdown, query.rows, query.breakdown.len(), symbols);
    let name = |s: Sym| symbols.name(s).to_string();
    let window_ms = bounds.to - bounds.from;
    // Erlang C per queue and channel, once agents are known (without them N is unknown).
    let load_of = |kpis: &Kpis, tally: Option<&Tally>| Load {
        offered: kpis.arrivals.saturating_sub(kpis.deflected),
        window_ms,
        aht_ms: kpis.aht_ms,
        agents: tally.map_or(0, |t| {
            let s = &t.staffing;
            s.available + s.on_contact + s.after_contact_work
        }),
    };
    // Each channel's KPIs once (percentiles cost): for its projection and its entry.
    let channel_kpis: BTreeMap<Sym, Kpis> =
        by_channel.iter().map(|(c, s)| (*c, s.kpis(to))).collect();
    let channel_loads: BTreeMap<Sym, (Load, Option<Rule>)> = channel_kpis
        .iter()
        .map(|(c, kpis)| {
            let load = load_of(kpis, capacity.by_channel.get(c));
            (*c, (load, cfg.service_level_rule(&name(*c))))
        })
        .collect();
    // The channel of a breakdown row: its own, or the filter's.
    let filter_channel = query
        .filter
        .get(Dimension::Channel)
        .and_then(|v| symbols.lookup(v));
    let channel_position = query
        .breakdown
        .iter()
        .position(|d| *d == Dimension::Channel);
    // Saturating: a forged remote header cannot overflow the sum.
    let sum = |i: usize| -> u64 {
        sources
            .iter()
            .fold(0u64, |acc, s| acc.saturating_add(s.counters()[i]))
    };
    Ok(Snapshot {
        window: bounds,
        watermark,
        late_events: sum(0),
        rejected: sum(1),
        duplicates: sum(2),
        total: {
            let mut kpis = total.kpis(to);
            (kpis.occupancy, kpis.staffing) = staffing_of(Some(&capacity.total));
            kpis.baseline = baselines.judge(kpis.arrivals, Some(&baselines.total));
            // A total of one channel (a channel filter) is that channel: its projection.
            if let (true, [(load, rule)]) = (
                capacity.any,
                channel_loads.values().collect::<Vec<_>>().as_slice(),
            ) {
                kpis.projection = Some(load.project(*rule));
            }
            kpis
        },
        by_channel: channel_kpis
            .into_iter()
            .map(|(c, mut kpis)| {
                let c = &c;
                (kpis.occupancy, kpis.staffing) = staffing_of(capacity.by_channel.get(c));
                kpis.baseline = baselines.judge(kpis.arrivals, baselines.by_channel.get(c));
                if capacity.any {
                    kpis.projection = channel_loads.get(c).map(|(load, rule)| load.project(*rule));
                }
                (name(*c), kpis)
            })
            .collect(),
        queues: by_queue
            .iter()
            .map(|(q, s)| {
                let kpis = s.kpis(to);
                let (occupancy, staffing) = staffing_of(capacity.by_queue.get(q));
                let channel = queue_channel.get(q).copied().flatten().map(name);
                let projection = capacity.any.then(|| {
                    let rule = channel.as_deref().and_then(|c| cfg.service_level_rule(c));
                    load_of(&kpis, capacity.by_queue.get(q)).project(rule)
                });
                let status = QueueStatus {
                    channel,
                    in_queue: kpis.in_queue,
                    oldest_wait_ms: kpis.oldest_wait_ms,
                    estimated_wait: estimate_wait(&kpis, window_ms),
                    staffing,
                    occupancy,
                    projection,
                    baseline: baselines.judge(kpis.arrivals, baselines.by_queue.get(q)),
                };
                (name(*q), status)
            })
            .collect(),
        breakdown: breakdown
            .iter()
            .map(|(values, s)| {
                let mut key = DimensionKey::default();
                for (d, v) in query.breakdown.iter().zip(values) {
                    *d.slot(&mut key) = Some(name(*v));
                }
                let mut kpis = s.kpis(to);
                if breakdown_has_agents(&query.breakdown) {
                    (kpis.occupancy, kpis.staffing) = staffing_of(capacity.breakdown.get(values));
                }
                let channel = channel_position.map(|i| values[i]).or(filter_channel);
                if let (true, Some((load, rule))) =
                    (capacity.any, channel.and_then(|c| channel_loads.get(&c)))
                {
                    kpis.what_if =
                        load.what_if(kpis.arrivals.saturating_sub(kpis.deflected), *rule);
                }
                Breakdown { key, kpis }
            })
            .collect(),
    })
}

/// The KPIs of the contacts `filter` keeps over `[from, to)` (whole seconds: `from`
/// rounded up, `to` down), whatever the windows of the snapshots.
pub(super) fn kpis_between(
    symbols: &super::Symbols,
    sources: &[Source<'_>],
    filter: &DimensionFilter,
    from: i64,
    to: i64,
) -> Kpis {
    let (from, to) = (
        (from + 999).div_euclid(1000) * 1000,
        to.div_euclid(1000) * 1000,
    );
    let mut per_key: HashMap<KeyId, Aggregate, FastHash> = HashMap::default();
    if from < to {
        for source in sources {
            source.collect(from, to, &mut per_key);
        }
    }
    let keys = symbols.keys();
    let matches = filter.matcher(symbols);
    let mut scope = Scope::default();
    for (key_id, a) in &per_key {
        if keys.get(*key_id as usize).is_some_and(&matches) {
            scope.add(a);
        }
    }
    scope.kpis(to)
}

/// The agent list of `sources` at the end of `window` (contacts handled over it).
pub(super) fn build_agent_list_of(
    cfg: &super::EngineConfig,
    symbols: &super::Symbols,
    sources: &[Source<'_>],
    window: WindowSpec,
    query: &super::AgentQuery,
) -> Result<vigie_proto::AgentList, WindowError> {
    check_window(cfg, window)?;
    let watermark = sources.iter().filter_map(Source::watermark).max();
    let bounds = window.bounds(window_end(watermark), &cfg.time_zone);
    let books: Vec<&super::agents::AgentBook> = sources.iter().map(Source::agents).collect();
    Ok(super::capacity::agent_list(&books, bounds, query, symbols))
}

impl Engine {
    /// The agent list of this engine at the end of `window`.
    pub fn agent_list(
        &self,
        window: WindowSpec,
        query: &super::AgentQuery,
    ) -> Result<vigie_proto::AgentList, WindowError> {
        build_agent_list_of(
            &self.cfg,
            &self.symbols,
            &[Source::Local(self)],
            window,
            query,
        )
    }
}

/// The rows of a breakdown in the order of their names (`unknown` among them), or, when
/// there are more than `limit`, the busiest (by arrivals, then in queue; ties by names);
/// then, last, the row whose every dimension reads `(other)`: the values the symbol
/// table counted as `(other)`, and, when capped, every row beyond the busiest. Names,
/// not symbol ids: engines applying in parallel intern values in an order that changes
/// from run to run.
fn capped(
    mut rows: BTreeMap<Vec<Sym>, Scope>,
    limit: usize,
    dimensions: usize,
    symbols: &super::Symbols,
) -> Vec<(Vec<Sym>, Scope)> {
    let names = |key: &[Sym]| key.iter().map(|s| symbols.name(*s)).collect::<Vec<_>>();
    let other_key = vec![super::symbols::OTHER; dimensions];
    let mut other = rows.remove(&other_key);
    let capped = rows.len() + usize::from(other.is_some()) > limit;
    let mut named: Vec<_> = rows.into_iter().map(|(k, s)| (names(&k), k, s)).collect();
    if capped {
        named.sort_by(|(na, _, a), (nb, _, b)| {
            (b.counters.arrivals, b.in_queue)
                .cmp(&(a.counters.arrivals, a.in_queue))
                .then_with(|| na.cmp(nb))
        });
        let rest = other.get_or_insert_with(Scope::default);
        let keep = limit.saturating_sub(1).min(named.len());
        for (_, _, scope) in named.drain(keep..) {
            rest.merge(&scope);
        }
    } else {
        named.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut rows: Vec<_> = named.into_iter().map(|(_, k, s)| (k, s)).collect();
    rows.extend(other.map(|scope| (other_key, scope)));
    rows
}

#[cfg(test)]
mod tests {
    use super::super::{Dimension, EngineConfig};
    use super::*;
    use crate::event::{EventKind, EventRecord};

    /// Rows come in the order of their names (of the busiest first, when capped), not in
    /// the order their values were first seen, which parallel engines do not keep.
    #[test]
    fn breakdown_rows_are_ordered_by_name_not_by_first_sight() {
        let engine = Engine::new(EngineConfig::default());
        let t0 = 1_795_600_000_000;
        // First seen: zeta, then mid, alpha, beta; zeta and mid busiest, alpha and beta tied.
        let reasons = ["zeta", "zeta", "mid", "mid", "alpha", "beta", "omega"];
        for (i, reason) in reasons.iter().enumerate() {
            let mut e = EventRecord::new(
                format!("e{i}"),
                EventKind::Arrived,
                t0 + i as i64,
                format!("i{i}"),
            );
            e.channel = Some("chat".into());
            e.reason = Some((*reason).into());
            engine.apply(&e);
        }
        let rows = |rows: usize| {
            let query = SnapshotQuery {
                window: WindowSpec::Last(3_600_000),
                breakdown: vec![Dimension::Reason],
                rows,
                ..SnapshotQuery::default()
            };
            let s = engine.snapshot(&query).expect("snapshot");
            s.breakdown
                .iter()
                .map(|b| (b.key.reason.clone().unwrap_or_default(), b.kpis.arrivals))
                .collect::<Vec<_>>()
        };
        let named = |list: &[(&str, u64)]| {
            list.iter()
                .map(|(n, a)| (n.to_string(), *a))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rows(usize::MAX),
            named(&[
                ("alpha", 1),
                ("beta", 1),
                ("mid", 2),
                ("omega", 1),
                ("zeta", 2)
            ])
        );
        assert_eq!(
            rows(4),
            named(&[("mid", 2), ("zeta", 2), ("alpha", 1), ("(other)", 2)])
        );
    }
}
