//! The KPI engine: owns all live state (interactions in flight, customers within the
//! repeat horizon, time-bucketed aggregates) and turns it into [`Snapshot`]s. No I/O.
//!
//! # How an event is applied
//! 1. Late (older than the allowed lateness behind the watermark) → counted, dropped.
//! 2. Already seen `event_id` → counted as a duplicate, dropped. Each interaction
//!    remembers the `event_id` of each of its steps; it is forgotten only once no
//!    non-late event can reach it, so a redelivery is always recognised.
//! 3. Joined into its interaction; the interaction's contributions before and after
//!    are compared and only the difference reaches the aggregates, so events may
//!    come in any order (e.g. `answered` before `arrived`).
//! 4. An arrival with a customer is classified against the customer's history; an
//!    arrival reported after a later one re-classifies that later one.
//!
//! State is in `DashMap`s and sharded stores, so several ingest tasks may apply events
//! in parallel; a customer's events must come from one task at a time (Kafka's keying
//! by customer gives that) for the repeat classification to stay exact.

mod agent_entries;
mod agents;
mod aggregate;
mod baseline;
mod buckets;
mod capacity;
mod containment;
mod customer;
pub mod erlang;
mod interaction;
mod key_memo;
pub mod partial;
mod projection;
mod set;
mod snapshot;
mod store;
mod symbol_cache;
mod symbols;
mod trend;
mod window;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

pub use aggregate::{derive_kpis, estimate_wait, new_histogram, Aggregate, Counters};
pub use capacity::AgentQuery;
pub use containment::DeflectionEffect;
pub use interaction::ChannelRules;
pub use set::EngineSet;
pub use snapshot::{build_snapshot, Dimension, DimensionFilter, SnapshotQuery};
pub use symbols::id_hash;
pub use symbols::Symbols;
pub use trend::{build_trend, TrendShape};
pub use window::{window_end, WindowError, WindowSpec};

use crate::config::{ChannelSettings, ConfigError, EngineSettings};
use crate::event::{EventKind, EventRecord};
use customer::{CustomerHistory, PastArrival};
use interaction::{cancel_common, Arrival, Effects, Interaction, Placed, Queued, RepeatClass};
use store::BucketStore;
use symbols::{FastHash, KeyId};

/// Engine rules, in milliseconds. Built from the validated configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How far behind the watermark an event may be and still be applied.
    pub allowed_lateness_ms: i64,
    /// Repeat-contact horizon H.
    pub repeat_horizon_ms: i64,
    /// Longest window a query may ask for; aggregates are kept that long.
    pub max_window_ms: i64,
    /// An unfinished interaction is forgotten this long after its last event.
    pub interaction_ttl_ms: i64,
    /// An abandoned contact is kept this long after its last event, so that an answer
    /// or an end that follows (a failover to another queue) still joins it.
    pub failover_grace_ms: i64,
    /// Time zone of the `today` window.
    pub time_zone: jiff::tz::TimeZone,
    /// Rules per channel name; channels not listed get `default_rules`.
    pub channels: HashMap<String, ChannelRules>,
    pub default_rules: ChannelRules,
    /// Number of aggregate shards: lock striping, so that a snapshot being built holds
    /// up an ingest task only on the shard it is reading.
    pub shards: usize,
    /// Most distinct dimension values kept; more are counted as `(other)`.
    pub max_dimension_values: usize,
    /// Most channels beyond the standard ones and those with rules; more are `(other)`.
    pub max_channels: usize,
    /// Most dimension keys (combinations) in use at once; more go to their channel's
    /// overflow key.
    pub max_dimension_keys: usize,
    /// Most arrivals of one customer held within the lateness (each new one is sorted
    /// among them): a placeholder id shared by every anonymous contact stays cheap.
    pub max_recent_arrivals_per_customer: usize,
    /// Most agents known at once per engine; a new agent beyond is refused (counted).
    pub max_agents: usize,
    /// Most state changes kept per agent within the retention; older ones are folded.
    pub max_agent_changes: usize,
    /// Service-level target (fraction) per channel that has one: what projections aim at.
    pub sl_targets: HashMap<String, f64>,
    /// Weeks of arrivals kept for baselines (0: none).
    pub baseline_weeks: u32,
    /// Most (channel, queue) keys with a baseline per engine; more count under `(other)`.
    pub max_baseline_keys: usize,
}

impl Default for EngineConfig {
    /// The defaults of the domain reference (industry norms quoted by users).
    fn default() -> Self {
        let rules = |sl_s: Option<i64>| ChannelRules {
            sl_threshold_ms: sl_s.map(|s| s * 1000),
            short_abandon_ms: 5_000,
        };
        let channels = [
            ("phone", Some(20)),
            ("chat", Some(40)),
            ("messaging", Some(60)),
            ("social", Some(3_600)),
            ("email", Some(4 * 3_600)),
            ("callback", Some(1_800)),
        ]
        .into_iter()
        .map(|(name, sl)| (name.to_string(), rules(sl)))
        .collect();
        EngineConfig {
            allowed_lateness_ms: 5 * 60_000,
            repeat_horizon_ms: 7 * 86_400_000,
            max_window_ms: 86_400_000,
            interaction_ttl_ms: 86_400_000,
            failover_grace_ms: 3_600_000,
            time_zone: jiff::tz::TimeZone::UTC,
            channels,
            default_rules: rules(None),
            shards: 8,
            max_dimension_values: 10_000,
            max_channels: 64,
            max_dimension_keys: 100_000,
            max_recent_arrivals_per_customer: 1_000,
            max_agents: 50_000,
            max_agent_changes: 5_000,
            sl_targets: [
                ("phone", 0.8),
                ("chat", 0.8),
                ("messaging", 0.8),
                ("social", 1.0),
                ("email", 1.0),
                ("callback", 0.9),
            ]
            .into_iter()
            .map(|(c, t)| (c.to_string(), t))
            .collect(),
            baseline_weeks: 4,
            max_baseline_keys: 2_000,
        }
    }
}

impl EngineConfig {
    /// The rules of validated `[engine]` settings, in milliseconds.
    pub fn from_settings(e: &EngineSettings) -> Result<EngineConfig, ConfigError> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let time_zone = jiff::tz::TimeZone::get(&e.time_zone)
            .map_err(|err| ConfigError(vec![format!("engine.time_zone: {err}")]))?;
        let rules = |c: Option<&ChannelSettings>| ChannelRules {
            sl_threshold_ms: c
                .and_then(|c| c.service_level.as_ref())
                .map(|sl| ms(sl.threshold)),
            short_abandon_ms: ms(c.and_then(|c| c.short_abandon).unwrap_or(e.short_abandon)),
        };
        Ok(EngineConfig {
            allowed_lateness_ms: ms(e.allowed_lateness),
            repeat_horizon_ms: ms(e.repeat_horizon),
            max_window_ms: ms(e.max_window),
            interaction_ttl_ms: ms(e.interaction_ttl),
            failover_grace_ms: ms(e.failover_grace),
            time_zone,
            channels: e
                .channels
                .iter()
                .map(|(n, c)| (n.clone(), rules(Some(c))))
                .collect(),
            default_rules: rules(None),
            max_dimension_values: e.max_dimension_values,
            max_channels: e.max_channels,
            max_dimension_keys: e.max_dimension_keys,
            max_recent_arrivals_per_customer: e.max_recent_arrivals_per_customer,
            max_agents: e.max_agents,
            max_agent_changes: e.max_agent_changes,
            baseline_weeks: e.baseline_weeks,
            max_baseline_keys: e.max_baseline_keys,
            sl_targets: e
                .channels
                .iter()
                .filter_map(|(n, c)| Some((n.clone(), c.service_level.as_ref()?.target)))
                .collect(),
            ..EngineConfig::default()
        })
    }

    /// The channels always kept as themselves: the ten of the contract, and those with
    /// rules of their own.
    pub fn known_channels(&self) -> Vec<&str> {
        let mut channels: Vec<&str> = STANDARD_CHANNELS.to_vec();
        channels.extend(self.channels.keys().map(String::as_str));
        channels.sort_unstable();
        channels.dedup();
        channels
    }

    /// The symbol table's limits: a key is freed once unused for longer than anything
    /// may hold it (an interaction or a deflection follow-up, then the cells its effects
    /// landed in, and the lateness).
    pub fn symbol_limits(&self) -> symbols::SymbolLimits {
        symbols::SymbolLimits {
            values: self.max_dimension_values,
            channels: self.max_channels,
            keys: self.max_dimension_keys,
            key_lifetime_ms: self
                .interaction_ttl_ms
                .max(self.repeat_horizon_ms)
                .saturating_add(self.retention_ms())
                .saturating_add(self.allowed_lateness_ms),
        }
    }

    /// A channel's service-level rule for projections: threshold (ms) and target;
    /// `None` when the channel has no target.
    pub(crate) fn service_level_rule(&self, channel: &str) -> Option<projection::Rule> {
        let threshold = self.channels.get(channel)?.sl_threshold_ms?;
        Some((threshold, *self.sl_targets.get(channel)?))
    }

    /// How long aggregates are kept: the longest window (at least a 25 h "today") plus lateness.
    pub(crate) fn retention_ms(&self) -> i64 {
        self.max_window_ms.max(25 * 3_600_000) + self.allowed_lateness_ms
    }

    /// How long baseline arrivals are kept: the weeks looked back plus the retention (a
    /// window as long as the longest, that many weeks earlier).
    pub(crate) fn baseline_keep_ms(&self) -> i64 {
        i64::from(self.baseline_weeks) * baseline::WEEK_MS + self.retention_ms()
    }

    /// How far back a rebuild reads: the repeat horizon or the baseline's weeks, whichever
    /// is longer, before the retention (an arrival at the start of the longest window
    /// looks back a whole horizon; a window's baseline looks back whole weeks).
    pub fn rebuild_span_ms(&self) -> i64 {
        self.repeat_horizon_ms
            .max(i64::from(self.baseline_weeks) * baseline::WEEK_MS)
            .saturating_add(self.retention_ms())
    }
}

/// The channels of the contract, always kept as themselves.
pub const STANDARD_CHANNELS: [&str; 10] = [
    "phone",
    "callback",
    "voicebot",
    "visual_ivr",
    "chat",
    "chatbot",
    "messaging",
    "email",
    "webform",
    "social",
];

/// The hashes ([`id_hash`]) of the ids an event of an interaction is joined by (its
/// customer's: read on an arrival only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdHashes {
    pub interaction: u64,
    pub customer: Option<u64>,
}

impl IdHashes {
    /// Those of an event of `kind`: `customer` gives its customer's hash, asked for an
    /// arrival only (no other step reads it).
    pub(crate) fn new(
        kind: EventKind,
        interaction: u64,
        customer: impl FnOnce() -> Option<u64>,
    ) -> IdHashes {
        IdHashes {
            interaction,
            customer: if kind == EventKind::Arrived {
                customer()
            } else {
                None
            },
        }
    }

    pub(crate) fn of(ev: &EventRecord<'_>) -> IdHashes {
        IdHashes::new(ev.kind, id_hash(&ev.interaction_id), || {
            ev.customer_id.as_deref().map(id_hash)
        })
    }
}

/// What happened to one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    Late,
    Duplicate,
}

/// Running counters of the engine (also exported as metrics).
#[derive(Debug, Default)]
pub struct EngineStats {
    pub applied: AtomicU64,
    pub late_events: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    /// A second `arrived` (other event_id) for a known interaction: ignored.
    pub conflicting: AtomicU64,
    /// Interactions forgotten without an arrival, or unfinished after the TTL.
    pub expired_interactions: AtomicU64,
    /// Arrivals of one customer id beyond `max_recent_arrivals_per_customer` within the
    /// lateness, settled early (an anonymous placeholder id such as `0`).
    pub customer_arrivals_folded: AtomicU64,
}

/// No event seen yet.
const NO_WATERMARK: i64 = i64::MIN;

/// The KPI engine. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    symbols: Arc<Symbols>,
    /// What this engine knows of the shared table's keys. Its lock is not contended: an
    /// engine's events are applied by one task at a time (one per partition).
    key_memo: Mutex<key_memo::KeyMemo>,
    rules_by_channel: RwLock<Vec<Option<ChannelRules>>>,
    interactions: DashMap<u64, Interaction, FastHash>,
    customers: DashMap<u64, CustomerHistory, FastHash>,
    /// The customers holding arrivals that may still gain a predecessor, each by the
    /// time of its oldest such arrival (about), in the order they came: the sweep settles
    /// them without visiting every customer. One entry per customer holding such
    /// arrivals, plus those of customers forgotten while queued (and seen again).
    unsettled: Mutex<VecDeque<(i64, u64)>>,
    /// Interactions waiting in queue: arrival time and key.
    waiting: DashMap<u64, (i64, KeyId), FastHash>,
    stores: Box<[Mutex<BucketStore>]>,
    /// Deflected contacts of identified customers, followed for the repeat horizon.
    deflections: containment::DeflectionLog,
    /// Every agent's timeline of states (capacity).
    agents: agents::AgentBook,
    /// Arrivals per (channel, queue) per minute, for the weeks of the baseline.
    baseline: baseline::BaselineBook,
    /// Earliest event time applied: how far back the baseline's history goes.
    first_ts: AtomicI64,
    /// Effects placed before this are not kept ([`Engine::expect_end`]; `i64::MIN`:
    /// all are).
    aggregate_floor: AtomicI64,
    /// Shared with the symbol table, which frees no key this engine may still hold.
    watermark: Arc<AtomicI64>,
    next_sweep: AtomicI64,
    next_customer_sweep: AtomicI64,
    next_deflection_sweep: AtomicI64,
    stats: EngineStats,
    /// Scale-out: the epoch of this engine's claim in the partials topic (`NO_WATERMARK`: none).
    partial_epoch: AtomicI64,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let symbols = Arc::new(Symbols::new(cfg.symbol_limits(), &cfg.known_channels()));
        Engine::with_symbols(cfg, symbols)
    }

    /// An engine sharing `symbols` with others, so that their snapshots can be merged
    /// ([`build_snapshot`]): one engine per Kafka partition.
    pub fn with_symbols(cfg: EngineConfig, symbols: Arc<Symbols>) -> Engine {
        let shards = cfg.shards.max(1);
        let watermark = Arc::new(AtomicI64::new(NO_WATERMARK));
        symbols.register_watermark(&watermark);
        Engine {
            symbols,
            key_memo: Mutex::new(key_memo::KeyMemo::default()),
            rules_by_channel: RwLock::new(Vec::new()),
            interactions: DashMap::with_hasher(FastHash::default()),
            customers: DashMap::with_hasher(FastHash::default()),
            unsettled: Mutex::new(VecDeque::new()),
            waiting: DashMap::with_hasher(FastHash::default()),
            stores: (0..shards)
                .map(|_| Mutex::new(BucketStore::default()))
                .collect(),
            deflections: containment::DeflectionLog::default(),
            agents: agents::AgentBook::default(),
            baseline: baseline::BaselineBook::default(),
            first_ts: AtomicI64::new(i64::MAX),
            aggregate_floor: AtomicI64::new(i64::MIN),
            watermark,
            next_sweep: AtomicI64::new(i64::MIN),
            next_customer_sweep: AtomicI64::new(i64::MIN),
            next_deflection_sweep: AtomicI64::new(i64::MIN),
            stats: EngineStats::default(),
            partial_epoch: AtomicI64::new(NO_WATERMARK),
            cfg,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Scale-out: records the epoch of this partition's claim in the partials topic.
    pub(crate) fn set_partial_epoch(&self, epoch: i64) {
        self.partial_epoch.store(epoch, Ordering::Release);
    }

    /// Scale-out: forgets the claim (the partials topic was recreated: claim again).
    pub(crate) fn clear_partial_epoch(&self) {
        self.partial_epoch.store(NO_WATERMARK, Ordering::Release);
    }

    /// The epoch of this partition's claim, once claimed.
    pub(crate) fn partial_epoch(&self) -> Option<i64> {
        let e = self.partial_epoch.load(Ordering::Acquire);
        (e != NO_WATERMARK).then_some(e)
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Newest event time seen, epoch ms.
    pub fn watermark(&self) -> Option<i64> {
        let w = self.watermark.load(Ordering::Acquire);
        (w != NO_WATERMARK).then_some(w)
    }

    /// Counts a record that could not be decoded.
    pub(crate) fn record_rejected(&self) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of customers tracked within the repeat horizon.
    pub fn tracked_customers(&self) -> usize {
        self.customers.len()
    }

    /// Number of agents known.
    pub fn tracked_agents(&self) -> usize {
        self.agents.len()
    }

    /// New agents refused beyond `engine.max_agents`, and agent state changes folded
    /// early beyond `engine.max_agent_changes`.
    pub fn agent_limits_hit(&self) -> (u64, u64) {
        (
            self.agents.refused.load(Ordering::Relaxed),
            self.agents.folded.load(Ordering::Relaxed),
        )
    }

    /// Number of interactions held (in flight or recently finished).
    pub fn tracked_interactions(&self) -> usize {
        self.interactions.len()
    }

    /// Whether the interaction is held (in flight or recently finished).
    #[cfg(test)]
    pub(crate) fn holds_interaction(&self, interaction_id: &str) -> bool {
        self.interactions.contains_key(&id_hash(interaction_id))
    }

    /// Number of logged effects and aggregate cells held, all shards and resolutions.
    pub fn stored_entries(&self) -> usize {
        self.stores.iter().map(|s| s.lock().entry_count()).sum()
    }

    /// Told, before any event is applied, that the watermark will reach at least
    /// `newest_ts` (a lower bound of the stream's newest event time): effects placed
    /// before `newest_ts` less the retention are not kept, since no window ending at or
    /// after `newest_ts` starts that early. A replay of a file with days of history,
    /// read for the repeats and the baselines, then does not aggregate that history only
    /// to evict it. A window starting before that floor would miss them: a `newest_ts`
    /// the stream never reaches makes the windows at its end wrong. An interaction whose
    /// times are all before that floor does not even have its effects worked out: only
    /// its arrival is counted, in the baselines.
    pub fn expect_end(&self, newest_ts: i64) {
        let floor = newest_ts.saturating_sub(self.cfg.retention_ms());
        self.aggregate_floor.store(floor, Ordering::Relaxed);
        for store in self.stores.iter() {
            store.lock().keep_from(floor);
        }
    }

    /// Applies one validated event.
    pub fn apply(&self, ev: &EventRecord<'_>) -> Applied {
        self.apply_hashed(ev, None)
    }

    /// Applies one validated event whose ids' hashes the caller has worked out already
    /// (a parallel replay, to route it): `None` to have them worked out here.
    pub(crate) fn apply_hashed(&self, ev: &EventRecord<'_>, ids: Option<IdHashes>) -> Applied {
        let ts = ev.ts_ms;
        let watermark = self.watermark.load(Ordering::Acquire);
        if watermark != NO_WATERMARK && ts < watermark - self.cfg.allowed_lateness_ms {
            self.stats.late_events.fetch_add(1, Ordering::Relaxed);
            return Applied::Late;
        }
        let watermark = self.watermark.fetch_max(ts, Ordering::AcqRel).max(ts);
        // A read on the hot path; the atomic write only when history goes further back.
        if ts < self.first_ts.load(Ordering::Relaxed) {
            self.first_ts.fetch_min(ts, Ordering::Relaxed);
        }
        if ev.kind == EventKind::AgentState {
            return self.apply_agent(ev, watermark);
        }
        let ids = ids.unwrap_or_else(|| IdHashes::of(ev));
        debug_assert_eq!(ids, IdHashes::of(ev), "the hashes of the event's own ids");
        let iid = ids.interaction;
        let Some(reclassify) = self.join(iid, ids.customer, ev, watermark) else {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return Applied::Duplicate;
        };
        if let Some((successor, class)) = reclassify {
            if let Some(mut it) = self.interactions.get_mut(&successor) {
                let newest = it.newest_ts;
                self.update(successor, &mut it, false, newest, |it| {
                    it.repeat = Some(class);
                });
            }
        }
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        self.maybe_sweep(watermark);
        Applied::Applied
    }

    /// Applies an agent's state change to its timeline.
    fn apply_agent(&self, ev: &EventRecord<'_>, watermark: i64) -> Applied {
        match self.agents.apply(
            ev,
            &self.symbols,
            self.cfg.max_agents,
            self.cfg.max_agent_changes,
        ) {
            Ok(()) => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                self.maybe_sweep(watermark);
                Applied::Applied
            }
            Err(agents::AgentRefusal::Duplicate) => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                Applied::Duplicate
            }
            // Counted by the book (vigie_agents_refused_total): a limit, not bad input.
            Err(agents::AgentRefusal::TooManyAgents) => Applied::Applied,
        }
    }

    /// Joins `ev` into its interaction; returns a re-classification owed to another
    /// arrival, or `None` when the event is a redelivery.
    #[allow(clippy::option_option)] // outer: duplicate or not; inner: re-classification
    fn join(
        &self,
        iid: u64,
        customer: Option<u64>,
        ev: &EventRecord<'_>,
        watermark: i64,
    ) -> Option<Option<(u64, RepeatClass)>> {
        let sym = |v: &Option<std::borrow::Cow<'_, str>>| self.symbols.intern(v.as_deref());
        // Only an arrival or a `queued` carries dimensions.
        let dims = || {
            [
                sym(&ev.queue),
                sym(&ev.reason),
                sym(&ev.segment),
                sym(&ev.site),
            ]
        };
        let mut reclassify = None;
        let mut it = self.interactions.entry(iid).or_default();
        if !it.first_report(ev.kind, id_hash(&ev.event_id)) {
            return None;
        }
        let rekey = matches!(ev.kind, EventKind::Arrived | EventKind::Queued);
        self.update(iid, &mut it, rekey, ev.ts_ms, |it| match ev.kind {
            EventKind::Arrived => {
                let arrival = Arrival {
                    ts: ev.ts_ms,
                    channel: self.symbols.intern_channel(ev.channel.as_deref()),
                    dims: dims(),
                    customer,
                };
                if !it.record_arrival(arrival) {
                    self.stats.conflicting.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if let Some(customer) = customer {
                    let past = PastArrival {
                        ts: ev.ts_ms,
                        interaction: iid,
                        channel: arrival.channel,
                    };
                    let settled = watermark - self.cfg.allowed_lateness_ms;
                    let mut history = self.customers.entry(customer).or_default();
                    // One that has some already is in the queue.
                    let newly_unsettled = history.oldest_recent_ts().is_none();
                    let (class, successor) =
                        history.insert(past, self.cfg.repeat_horizon_ms, settled);
                    let folded = history.cap_recent(self.cfg.max_recent_arrivals_per_customer);
                    drop(history);
                    if newly_unsettled {
                        self.unsettled.lock().push_back((ev.ts_ms, customer));
                    }
                    if folded > 0 {
                        self.stats
                            .customer_arrivals_folded
                            .fetch_add(folded as u64, Ordering::Relaxed);
                    }
                    it.repeat = Some(class);
                    reclassify = successor;
                    self.deflections
                        .arrival(customer, ev.ts_ms, self.cfg.repeat_horizon_ms);
                }
            }
            EventKind::Queued => it.record_queued(Queued {
                ts: ev.ts_ms,
                dims: dims(),
            }),
            EventKind::Deflected => it.record_deflected(ev.ts_ms),
            EventKind::Answered => it.record_answered(ev.ts_ms),
            EventKind::Abandoned => it.record_abandoned(ev.ts_ms),
            EventKind::Ended => it.record_ended(ev.ts_ms, ev.resolved.unwrap_or(false)),
            EventKind::AgentState => {}
        });
        if let (Some(arrival), Some(ts), false) = (it.arrival, it.deflected, it.deflection_followed)
        {
            if let Some(customer) = arrival.customer {
                self.deflections.record(
                    customer,
                    containment::Deflection {
                        ts,
                        key: it.key,
                        came_back: false,
                    },
                );
            }
            it.deflection_followed = true;
        }
        Some(reclassify)
    }

    /// Changes an interaction and brings the aggregates and the queue index in line.
    /// `rekey`: the change may alter the dimensions (an arrival or a `queued`); `ts`: the
    /// time of the event making the change (the interaction's newest time after it is
    /// the later of this and its newest before).
    fn update(
        &self,
        iid: u64,
        it: &mut Interaction,
        rekey: bool,
        ts: i64,
        change: impl FnOnce(&mut Interaction),
    ) {
        // Every effect is placed at one of the interaction's times: when the newest is
        // older than any aggregate kept (the history a replay reads for the repeats and
        // the baselines), none is kept, and only its arrival's count in the baseline
        // may change. Most of a replay of days of history takes this path.
        let history = it.newest_ts.max(ts) < self.aggregate_floor.load(Ordering::Relaxed);
        let arrival_before = it.arrival.map(|a| (it.key, a.ts));
        let before = if history {
            Effects::new()
        } else {
            self.effects(it)
        };
        let was_waiting = it.is_waiting();
        change(it);
        if rekey {
            if let Some(key) = it.dim_key() {
                it.key = self
                    .key_memo
                    .lock()
                    .key_id(&self.symbols, key, it.newest_ts);
            }
        } else if it.arrival.is_some() {
            // Its key is in use as long as it changes (its effects land in its cells).
            self.key_memo
                .lock()
                .touch(&self.symbols, it.key, it.newest_ts);
        }
        if history {
            debug_assert!(it.newest_ts < self.aggregate_floor.load(Ordering::Relaxed));
            let arrival_after = it.arrival.map(|a| (it.key, a.ts));
            if arrival_before != arrival_after && self.cfg.baseline_weeks > 0 {
                if let Some((key, ts)) = arrival_before {
                    self.count_arrival(key, ts, -1);
                }
                if let Some((key, ts)) = arrival_after {
                    self.count_arrival(key, ts, 1);
                }
            }
        } else {
            self.place_effects(iid, it, before);
        }
        match (it.is_waiting(), it.arrival) {
            (true, Some(arrival)) => {
                self.waiting.insert(iid, (arrival.ts, it.key));
            }
            _ if was_waiting => {
                self.waiting.remove(&iid);
            }
            _ => {}
        }
    }

    /// Brings the aggregates in line with the interaction's effects now, `before` being
    /// its effects before the change.
    fn place_effects(&self, iid: u64, it: &mut Interaction, mut before: Effects) {
        let mut after = self.effects(it);
        cancel_common(&mut before, &mut after);
        if before.is_empty() && after.is_empty() {
            return;
        }
        let mut store = self.stores[(iid % self.stores.len() as u64) as usize].lock();
        let is_arrival = |p: &Placed| matches!(p.effect, interaction::Effect::Arrival { .. });
        for placed in &before {
            let slot = it.arrival_logged_at.filter(|_| is_arrival(placed));
            store.apply_at(placed, -1, slot);
        }
        for placed in &after {
            let logged_at = store.apply_at(placed, 1, None);
            if is_arrival(placed) {
                it.arrival_logged_at = logged_at;
            }
        }
        drop(store);
        if self.cfg.baseline_weeks > 0 {
            self.count_arrivals(&before, -1);
            self.count_arrivals(&after, 1);
        }
    }

    /// Counts (or retracts) the arrivals among `placed` in the baseline.
    fn count_arrivals(&self, placed: &Effects, sign: i32) {
        for p in placed {
            if matches!(p.effect, interaction::Effect::Arrival { .. }) {
                self.count_arrival(p.key, p.ts, sign);
            }
        }
    }

    /// Counts (or retracts) an arrival of `key` at `ts` in the baseline.
    fn count_arrival(&self, key: KeyId, ts: i64, sign: i32) {
        if let Some(key) = self.key_memo.lock().key(&self.symbols, key) {
            self.baseline.add(
                (key.channel, key.queue),
                ts,
                sign,
                self.cfg.max_baseline_keys,
            );
        }
    }

    /// Earliest event time applied, if any.
    pub(crate) fn first_ts(&self) -> Option<i64> {
        let t = self.first_ts.load(Ordering::Relaxed);
        (t != i64::MAX).then_some(t)
    }

    /// Baseline keys in use, and arrivals counted under `(other)` beyond the limit.
    pub fn baseline_usage(&self) -> (usize, u64) {
        (
            self.baseline.key_count(),
            self.baseline.overflow.load(Ordering::Relaxed),
        )
    }

    fn effects(&self, it: &Interaction) -> Effects {
        match it.arrival {
            Some(a) => it.effects(self.rules(a.channel)),
            None => Effects::new(),
        }
    }

    /// Rules of a channel, resolved once per interned channel name.
    fn rules(&self, channel: symbols::Sym) -> ChannelRules {
        if let Some(Some(rules)) = self.rules_by_channel.read().get(channel as usize) {
            return *rules;
        }
        let name = self.symbols.name(channel);
        let rules = self
            .cfg
            .channels
            .get(&*name)
            .copied()
            .unwrap_or(self.cfg.default_rules);
        let mut table = self.rules_by_channel.write();
        if table.len() <= channel as usize {
            table.resize(channel as usize + 1, None);
        }
        table[channel as usize] = Some(rules);
        rules
    }

    /// Forgets what can no longer change, once per allowed lateness of event time (at
    /// least a minute): each sweep visits the interactions of about two lateness-worth
    /// of traffic, so the cost per event stays constant.
    fn maybe_sweep(&self, watermark: i64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if watermark < due
            || self
                .next_sweep
                .compare_exchange(
                    due,
                    watermark + self.cfg.allowed_lateness_ms.max(60_000),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let settled = watermark - self.cfg.allowed_lateness_ms;
        let expiry = watermark - self.cfg.interaction_ttl_ms;
        let grace = watermark - self.cfg.failover_grace_ms;
        self.interactions.retain(|iid, it| {
            // Most were changed within the lateness: kept on reading one field.
            if it.newest_ts >= settled && it.newest_ts >= expiry {
                return true;
            }
            // An abandoned contact waits out the grace: an answer may follow (failover).
            let over = it.deflected.is_some()
                || it.ended.is_some()
                || (it.abandoned.is_some() && it.newest_ts < grace);
            let done = it.newest_ts < settled && (over || it.arrival.is_none());
            let keep = !(done || it.newest_ts < expiry);
            if !keep {
                if it.arrival.is_none() || !it.is_finished() {
                    self.stats
                        .expired_interactions
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.waiting.remove(iid);
            }
            keep
        });
        let retention_start = watermark - self.cfg.retention_ms();
        for store in self.stores.iter() {
            store.lock().evict_before(retention_start);
        }
        self.agents.fold_before(retention_start);
        self.baseline
            .evict_before(watermark - self.cfg.baseline_keep_ms());
        self.settle_customers(settled);
        // An arrival still within the lateness may look back a full horizon.
        let horizon_start = watermark - self.cfg.allowed_lateness_ms - self.cfg.repeat_horizon_ms;
        let due = self.next_deflection_sweep.load(Ordering::Relaxed);
        if watermark >= due {
            self.next_deflection_sweep.store(
                watermark + (self.cfg.repeat_horizon_ms / 64).max(60_000),
                Ordering::Relaxed,
            );
            self.deflections.evict_before(horizon_start);
        }
        // Visiting every customer costs; done every 1/16 of the horizon, it keeps at
        // most 1/16 more customers than needed.
        let due = self.next_customer_sweep.load(Ordering::Relaxed);
        if watermark >= due {
            self.next_customer_sweep.store(
                watermark + (self.cfg.repeat_horizon_ms / 16).max(60_000),
                Ordering::Relaxed,
            );
            self.customers.retain(|_, h| h.newest_ts() >= horizon_start);
        }
    }

    /// Settles the customers queued with an arrival older than `settled_before`; those
    /// that still hold newer ones go back to the queue, by the oldest of them.
    fn settle_customers(&self, settled_before: i64) {
        let due: Vec<u64> = {
            let mut queue = self.unsettled.lock();
            let old = queue
                .iter()
                .take_while(|(ts, _)| *ts < settled_before)
                .count();
            queue.drain(..old).map(|(_, customer)| customer).collect()
        };
        let mut again = Vec::new();
        for customer in due {
            if let Some(mut history) = self.customers.get_mut(&customer) {
                history.settle(settled_before);
                if let Some(oldest) = history.oldest_recent_ts() {
                    again.push((oldest, customer));
                }
            }
        }
        if !again.is_empty() {
            self.unsettled.lock().extend(again);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn defaults_match_the_domain_norms() {
        let cfg = EngineConfig::from_settings(&Settings::default().engine).expect("valid");
        assert_eq!(cfg.channels["phone"].sl_threshold_ms, Some(20_000));
        assert_eq!(cfg.channels["email"].sl_threshold_ms, Some(4 * 3_600_000));
        assert_eq!(
            cfg.default_rules.sl_threshold_ms, None,
            "visual_ivr & unknown: no target"
        );
        assert_eq!(cfg.allowed_lateness_ms, 300_000);
        assert_eq!(cfg.repeat_horizon_ms, 7 * 86_400_000);
    }

    #[test]
    fn channel_rules_come_from_their_settings_else_the_defaults() {
        let mut s = Settings::default().engine;
        if let Some(sl) = s
            .channels
            .get_mut("phone")
            .and_then(|c| c.service_level.as_mut())
        {
            sl.threshold = Duration::from_secs(90);
        }
        s.short_abandon = Duration::from_secs(3);
        if let Some(callback) = s.channels.get_mut("callback") {
            callback.short_abandon = Some(Duration::ZERO);
        }
        let cfg = EngineConfig::from_settings(&s).expect("valid");
        assert_eq!(cfg.channels["phone"].sl_threshold_ms, Some(90_000));
        assert_eq!(cfg.channels["chat"].sl_threshold_ms, Some(40_000));
        assert_eq!(cfg.channels["callback"].short_abandon_ms, 0);
        assert_eq!(cfg.channels["chat"].short_abandon_ms, 3_000);
        assert_eq!(cfg.default_rules.short_abandon_ms, 3_000);
        s.time_zone = "Mars/Olympus".into();
        assert!(EngineConfig::from_settings(&s).is_err());
    }
}

#[cfg(test)]
mod failover_tests {
    use super::*;
    use crate::event::{EventKind, EventRecord};

    fn ev(id: &str, kind: EventKind, ts: i64, iid: &str) -> EventRecord<'static> {
        let mut e = EventRecord::new(id.to_string(), kind, ts, iid.to_string());
        if kind == EventKind::Arrived {
            e.channel = Some("phone".into());
            e.queue = Some("sales".into());
        }
        e
    }

    /// Asterisk's failover: a call times out of one queue (an abandon), waits in another
    /// and is answered there 25 minutes later, then ends: one answered contact with its
    /// handling time, although other traffic swept the engine many times in between.
    #[test]
    fn an_answer_after_an_abandon_still_joins_its_contact() {
        let engine = Engine::new(EngineConfig::default());
        let t0 = 1_795_600_000_000;
        engine.apply(&ev("a", EventKind::Arrived, t0, "call"));
        engine.apply(&ev("x", EventKind::Abandoned, t0 + 60_000, "call"));
        for m in 1..30 {
            let other = format!("o{m}");
            engine.apply(&ev(&other, EventKind::Arrived, t0 + m * 60_000, &other));
        }
        engine.apply(&ev("c", EventKind::Answered, t0 + 25 * 60_000, "call"));
        engine.apply(&ev("e", EventKind::Ended, t0 + 30 * 60_000, "call"));
        let s = engine
            .snapshot(&SnapshotQuery {
                window: WindowSpec::Last(3_600_000),
                ..SnapshotQuery::default()
            })
            .expect("snapshot");
        assert_eq!((s.total.answered, s.total.abandoned), (1, 0));
        assert_eq!(s.total.aht_ms, Some(5.0 * 60_000.0));
        assert_eq!(s.total.asa_ms, Some(25.0 * 60_000.0));
        // Past the grace, an abandoned contact is forgotten (memory stays bounded).
        engine.apply(&ev("late", EventKind::Arrived, t0 + 3 * 3_600_000, "late"));
        engine.apply(&ev("y", EventKind::Arrived, t0 + 3 * 3_600_000 + 1, "y"));
        assert_eq!(
            engine.stats().expired_interactions.load(Ordering::Relaxed),
            0
        );
    }
}

#[cfg(test)]
mod customer_tests {
    use super::*;
    use crate::event::{EventKind, EventRecord};

    fn arrival(ts: i64, iid: &str, customer: &str) -> EventRecord<'static> {
        let mut e = EventRecord::new(format!("e-{iid}"), EventKind::Arrived, ts, iid.to_string());
        e.channel = Some("phone".into());
        e.customer_id = Some(customer.to_string().into());
        e
    }

    fn customers_with_recent(engine: &Engine) -> usize {
        engine
            .customers
            .iter()
            .filter(|h| h.oldest_recent_ts().is_some())
            .count()
    }

    /// A customer's arrivals settle once the lateness has passed them, although no
    /// later arrival of that customer comes; a customer silent for a horizon is forgotten.
    #[test]
    fn arrivals_settle_after_the_lateness_and_customers_go_after_the_horizon() {
        let cfg = EngineConfig::default();
        let (lateness, horizon) = (cfg.allowed_lateness_ms, cfg.repeat_horizon_ms);
        let engine = Engine::new(cfg);
        let t0 = 1_795_600_000_000;
        for c in 0..100 {
            engine.apply(&arrival(t0 + c * 1_000, &format!("a{c}"), &format!("c{c}")));
            // A second arrival, reported late: the customer is queued once.
            engine.apply(&arrival(
                t0 + c * 1_000 - 500,
                &format!("b{c}"),
                &format!("c{c}"),
            ));
        }
        assert_eq!(customers_with_recent(&engine), 100);
        assert!(engine.unsettled.lock().len() <= 100);
        // Others keep arriving; one of the hundred comes back while still unsettled.
        let mut t = t0 + 100_000;
        let mut n = 0;
        let mut other = |engine: &Engine, t: i64| {
            n += 1;
            engine.apply(&arrival(t, &format!("o{n}"), &format!("other{n}")));
        };
        other(&engine, t);
        engine.apply(&arrival(t + 1, "again", "c7"));
        // Past the lateness (and the sweep after it), only the newest stay unsettled.
        t += 3 * lateness;
        other(&engine, t);
        t += 1;
        other(&engine, t);
        let recent: Vec<bool> = (0..100)
            .map(|c| {
                engine
                    .customers
                    .get(&id_hash(&format!("c{c}")))
                    .expect("tracked")
                    .oldest_recent_ts()
                    .is_some()
            })
            .collect();
        assert_eq!(recent.iter().filter(|r| **r).count(), 0, "{recent:?}");
        assert!(customers_with_recent(&engine) <= 2);
        assert!(engine.unsettled.lock().len() <= 2);
        // c7's arrival at t0 + 100 s is still its predecessor six days later.
        let s = |engine: &Engine| engine.tracked_customers();
        let before = s(&engine);
        t = t0 + 100_000 + horizon - 86_400_000;
        other(&engine, t);
        engine.apply(&arrival(t + 1, "last", "c7"));
        assert_eq!(
            s(&engine),
            before + 1,
            "nobody forgotten within the horizon"
        );
        // A horizon (and a sixteenth) after, only the customers seen since remain.
        t += horizon / 16 + 2 * lateness + 86_400_000;
        other(&engine, t);
        other(&engine, t + 1);
        assert_eq!(
            s(&engine),
            4,
            "c7 and the other of its last day, and the two newest"
        );
    }
}
