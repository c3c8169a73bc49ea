//! Owns the engines of the partitions this instance consumes: one [`Engine`] per
//! Kafka partition, all sharing one symbol table, merged into one snapshot.
//!
//! A partition's state is created empty when the partition is assigned (then rebuilt
//! by replaying it) and dropped when it is revoked, so a rebalance never double
//! counts or keeps a stale share.
//!
//! Scale-out: it also owns the [`Replica`]s of partitions other instances consume
//! (fed from the partials topic). Snapshots and trends merge, per partition, exactly
//! one source: the local engine when this instance consumes it, else the replica, so
//! the merged view never counts a partition twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use vigie_proto::Snapshot;

use vigie_proto::Trend;

use super::partial::Replica;
use super::snapshot::{build_snapshot_of, Source};
use super::symbols::Sym;
use super::trend::build_trend_of;
use super::{Dimension, Engine, EngineConfig, SnapshotQuery, Symbols, TrendShape, WindowError};

#[derive(Debug)]
pub struct EngineSet {
    cfg: EngineConfig,
    symbols: Arc<Symbols>,
    partitions: RwLock<BTreeMap<i32, Arc<Engine>>>,
    /// Bumped on every assignment and revocation, and every change of a replica.
    generation: AtomicU64,
    /// Replicas of partitions, from the partials topic (scale-out only).
    replicas: RwLock<BTreeMap<i32, Replica>>,
    /// New engines track their changed chunks, for publishing partials.
    partials: AtomicBool,
}

impl EngineSet {
    pub fn new(cfg: EngineConfig) -> EngineSet {
        EngineSet {
            symbols: Arc::new(Symbols::new(cfg.symbol_limits(), &cfg.known_channels())),
            partitions: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            replicas: RwLock::new(BTreeMap::new()),
            partials: AtomicBool::new(false),
            cfg,
        }
    }

    /// Scale-out: engines track what changed, so it can be published as partials.
    pub(crate) fn enable_partials(&self) {
        self.partials.store(true, Ordering::Relaxed);
        for engine in self.partitions.read().values() {
            engine.track_changes();
        }
    }

    /// Scale-out: forgets every replica and every claim of the partitions consumed here
    /// (the partials topic was recreated: its offsets, the epochs, started over).
    pub(crate) fn reset_partials(&self) {
        self.replicas.write().clear();
        self.symbols.set_remote_floor(i64::MAX);
        for engine in self.partitions.read().values() {
            engine.clear_partial_epoch();
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The symbol table shared by every engine and replica.
    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// Changes the replica of `partition` (from the partials topic); the merged view
    /// uses it while this instance does not consume the partition.
    pub(crate) fn update_replica<T>(
        &self,
        partition: i32,
        change: impl FnOnce(&mut Replica, &Symbols) -> T,
    ) -> T {
        let mut replicas = self.replicas.write();
        let out = change(replicas.entry(partition).or_default(), &self.symbols);
        // No key a replica may hold is freed: the oldest replica bounds them (one
        // without a watermark yet holds everything back).
        let oldest = replicas
            .values()
            .map(|r| r.header.watermark.unwrap_or(i64::MIN))
            .min()
            .unwrap_or(i64::MAX);
        self.symbols.set_remote_floor(oldest);
        self.generation.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Reads the replica of `partition`, if any.
    pub(crate) fn with_replica<T>(
        &self,
        partition: i32,
        read: impl FnOnce(&Replica) -> T,
    ) -> Option<T> {
        self.replicas.read().get(&partition).map(read)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A fresh, empty engine for `partition` (replacing any previous one).
    pub fn assign(&self, partition: i32) -> Arc<Engine> {
        let engine = Arc::new(Engine::with_symbols(self.cfg.clone(), self.symbols.clone()));
        if self.partials.load(Ordering::Relaxed) {
            engine.track_changes();
        }
        self.partitions.write().insert(partition, engine.clone());
        self.generation.fetch_add(1, Ordering::Relaxed);
        engine
    }

    /// Drops the state of `partition`.
    pub(crate) fn revoke(&self, partition: i32) {
        self.partitions.write().remove(&partition);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes whenever a snapshot may have changed: an event applied, found late,
    /// duplicate or rejected, or a partition assigned or revoked. Cheap to poll.
    pub(crate) fn change_counter(&self) -> u64 {
        let events: u64 = self
            .partitions
            .read()
            .values()
            .map(|e| {
                let s = e.stats();
                s.applied.load(Ordering::Relaxed)
                    + s.late_events.load(Ordering::Relaxed)
                    + s.duplicates.load(Ordering::Relaxed)
                    + s.rejected.load(Ordering::Relaxed)
            })
            .sum();
        events + self.generation.load(Ordering::Relaxed)
    }

    /// Changes whenever a partition is assigned or revoked (or a replica changes): an
    /// engine looked up for a partition is still its engine while this stays the same.
    pub(crate) fn assignment_generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn local(&self) -> BTreeMap<i32, Arc<Engine>> {
        self.partitions.read().clone()
    }

    pub fn get(&self, partition: i32) -> Option<Arc<Engine>> {
        self.partitions.read().get(&partition).cloned()
    }

    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.read().keys().copied().collect()
    }

    /// Deflection follow-up over every partition held (see [`Engine::deflection_effect`]).
    pub(crate) fn deflection_effect(
        &self,
        filter: &super::DimensionFilter,
        since_ms: i64,
    ) -> super::DeflectionEffect {
        let mut total = super::DeflectionEffect::default();
        for engine in self.partitions.read().values() {
            let e = engine.deflection_effect(filter, since_ms);
            total.deflected += e.deflected;
            total.came_back += e.came_back;
        }
        total
    }

    /// The shares of switch `switch` (on since `since`) published by the owners of the
    /// partitions this instance does not consume (scale-out; zero otherwise).
    pub(crate) fn remote_switch_share(&self, switch: &str, since: i64) -> super::DeflectionEffect {
        let engines = self.partitions.read();
        let mut total = super::DeflectionEffect::default();
        for (_, replica) in self
            .replicas
            .read()
            .iter()
            .filter(|(p, r)| r.has_header && !engines.contains_key(p))
        {
            for share in replica
                .header
                .switches
                .iter()
                .filter(|s| s.switch == switch && s.since == since)
            {
                total.deflected += share.deflected;
                total.came_back += share.came_back;
            }
        }
        total
    }

    /// The last hour of `query`'s flow KPIs over every partition held.
    pub fn trend(&self, query: &SnapshotQuery, shape: TrendShape) -> Result<Trend, WindowError> {
        let engines = self.local();
        let replicas = self.replicas.read();
        let sources = merged(&engines, &replicas);
        if sources.is_empty() {
            self.check_window(query)?;
            return Ok(Trend::default());
        }
        build_trend_of(&self.cfg, &self.symbols, &sources, query, shape)
    }

    /// Values seen so far per dimension, sorted, at most `limit` per dimension.
    pub(crate) fn dimension_values(&self, limit: usize) -> BTreeMap<String, Vec<String>> {
        let mut seen: BTreeMap<Dimension, std::collections::BTreeSet<Sym>> = BTreeMap::new();
        for key in self.symbols.keys() {
            for d in Dimension::ALL {
                seen.entry(d).or_default().insert(d.of(&key));
            }
        }
        seen.into_iter()
            .map(|(d, syms)| {
                let mut names: Vec<String> = syms
                    .into_iter()
                    .map(|s| self.symbols.name(s).to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                names.sort();
                names.truncate(limit);
                (d.as_str().to_string(), names)
            })
            .collect()
    }

    fn check_window(&self, query: &SnapshotQuery) -> Result<(), WindowError> {
        Engine::with_symbols(self.cfg.clone(), self.symbols.clone())
            .snapshot(query)
            .map(|_| ())
    }

    /// One snapshot over every partition held.
    pub fn snapshot(&self, query: &SnapshotQuery) -> Result<Snapshot, WindowError> {
        let engines = self.local();
        let replicas = self.replicas.read();
        let sources = merged(&engines, &replicas);
        if sources.is_empty() {
            // Same shape as an engine that has seen nothing (and the same window checks).
            return Engine::with_symbols(self.cfg.clone(), self.symbols.clone()).snapshot(query);
        }
        build_snapshot_of(&self.cfg, &self.symbols, &sources, query)
    }

    /// The service level of `channel` over `[from, to)` (any times, not only a window
    /// ending now): a switch's measured effect since its flip.
    pub fn service_level_between(&self, channel: &str, from: i64, to: i64) -> Option<f64> {
        let engines = self.local();
        let replicas = self.replicas.read();
        let filter = super::DimensionFilter(vec![(Dimension::Channel, channel.to_string())]);
        super::snapshot::kpis_between(
            &self.symbols,
            &merged(&engines, &replicas),
            &filter,
            from,
            to,
        )
        .service_level
    }

    /// What deflecting `scope` (a channel and maybe a reason, segment or queue) would do to
    /// its channel's projection over `window`: `None` without agents or a projection.
    pub fn what_if(
        &self,
        scope: &super::DimensionFilter,
        window: super::WindowSpec,
    ) -> Result<Option<vigie_proto::WhatIf>, WindowError> {
        let Some(channel) = scope.get(Dimension::Channel) else {
            return Ok(None);
        };
        let channel_only = super::DimensionFilter(vec![(Dimension::Channel, channel.to_string())]);
        let whole = self.snapshot(&SnapshotQuery {
            window,
            filter: channel_only,
            ..SnapshotQuery::default()
        })?;
        let part = self.snapshot(&SnapshotQuery {
            window,
            filter: scope.clone(),
            ..SnapshotQuery::default()
        })?;
        let Some(projection) = whole.total.projection else {
            return Ok(None);
        };
        let rule = self.cfg.service_level_rule(channel);
        let load = super::projection::Load {
            offered: projection.offered,
            window_ms: whole.window.to - whole.window.from,
            aht_ms: projection.aht_ms,
            agents: projection.agents,
        };
        let part_offered = part.total.arrivals.saturating_sub(part.total.deflected);
        Ok(load.what_if(part_offered, rule))
    }

    /// The agent list over every partition held, at the end of `window`.
    pub fn agent_list(
        &self,
        window: super::WindowSpec,
        query: &super::AgentQuery,
    ) -> Result<vigie_proto::AgentList, WindowError> {
        let engines = self.local();
        let replicas = self.replicas.read();
        let sources = merged(&engines, &replicas);
        super::snapshot::build_agent_list_of(&self.cfg, &self.symbols, &sources, window, query)
    }

    /// Newest event time of the merged view.
    pub fn watermark(&self) -> Option<i64> {
        let engines = self.local();
        let replicas = self.replicas.read();
        merged(&engines, &replicas)
            .iter()
            .filter_map(Source::watermark)
            .max()
    }
}

/// One source per partition: the local engine if consumed here, else its replica
/// (once its owner's header was seen).
fn merged<'a>(
    engines: &'a BTreeMap<i32, Arc<Engine>>,
    replicas: &'a BTreeMap<i32, Replica>,
) -> Vec<Source<'a>> {
    let mut sources: Vec<Source<'a>> = engines.values().map(|e| Source::Local(e)).collect();
    sources.extend(
        replicas
            .iter()
            .filter(|(p, r)| r.has_header && !engines.contains_key(p))
            .map(|(_, r)| Source::Remote(r)),
    );
    sources
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Dimension, WindowSpec};
    use crate::event::{EventKind, EventRecord};
    use crate::simulate::{SimulationConfig, Simulator};

    /// A stream whose dimension values overflow the table: nothing is lost, the values
    /// beyond the limit are counted under `(other)`.
    #[test]
    fn values_beyond_the_dimension_limit_are_counted_as_other() {
        let events: Vec<_> = Simulator::new(SimulationConfig {
            contacts: Some(3_000),
            seed: 3,
            ..SimulationConfig::default()
        })
        .collect();
        let snapshot = |limit: usize| {
            let set = EngineSet::new(EngineConfig {
                max_dimension_values: limit,
                ..EngineConfig::default()
            });
            let engine = set.assign(0);
            for ev in &events {
                engine.apply(ev);
            }
            let query = SnapshotQuery {
                window: WindowSpec::Last(set.config().max_window_ms),
                breakdown: vec![Dimension::Queue],
                ..SnapshotQuery::default()
            };
            let overflowed = set.symbols().overflowed.load(Ordering::Relaxed);
            (set.snapshot(&query).expect("snapshot"), overflowed)
        };
        let (whole, none) = snapshot(usize::MAX);
        let (bounded, overflowed) = snapshot(12);
        assert_eq!(none, 0);
        assert!(overflowed > 0, "the stream has more than 12 values");
        assert_eq!(bounded.total, whole.total, "totals are unchanged");
        assert_eq!(bounded.by_channel.len(), whole.by_channel.len());
        let other = bounded
            .breakdown
            .iter()
            .find(|b| b.key.queue.as_deref() == Some(super::super::symbols::OTHER_NAME))
            .expect("an (other) queue row");
        assert!(other.kpis.arrivals > 0);
        let arrivals = |s: &Snapshot| s.breakdown.iter().map(|b| b.kpis.arrivals).sum::<u64>();
        assert_eq!(arrivals(&bounded), arrivals(&whole));
        assert!(bounded.breakdown.len() < whole.breakdown.len());
    }

    /// A producer bug putting an id in `channel`: the channels beyond the limit count as
    /// `(other)`, the snapshot stays small, the totals exact.
    #[test]
    fn channels_beyond_the_limit_are_counted_as_other() {
        let set = EngineSet::new(EngineConfig {
            max_channels: 5,
            ..EngineConfig::default()
        });
        let engine = set.assign(0);
        for n in 0..2_000 {
            let mut ev = EventRecord::new(
                format!("e{n}"),
                EventKind::Arrived,
                1_795_593_600_000 + n,
                format!("i{n}"),
            );
            ev.channel = Some(if n % 2 == 0 {
                "phone".into()
            } else {
                format!("bug-{n}").into()
            });
            engine.apply(&ev);
        }
        let s = set.snapshot(&SnapshotQuery::default()).expect("snapshot");
        assert_eq!(s.total.arrivals, 2_000, "totals never change");
        assert_eq!(
            s.by_channel["phone"].arrivals, 1_000,
            "a known channel stays whole"
        );
        assert_eq!(
            s.by_channel.len(),
            1 + 5 + 1,
            "phone, five more, and (other)"
        );
        assert_eq!(
            s.by_channel[super::super::symbols::OTHER_NAME].arrivals,
            1_000 - 5
        );
        assert_eq!(
            set.symbols().channels_overflowed.load(Ordering::Relaxed),
            995
        );
    }

    /// Ever new combinations of dimensions: the keys in use stay within the limit (the
    /// new ones counted under their channel's overflow key), unused ones are freed as
    /// time passes, and the totals stay exact.
    #[test]
    fn dimension_keys_stay_within_their_limit_and_unused_ones_are_freed() {
        let cfg = EngineConfig {
            max_dimension_keys: 200,
            repeat_horizon_ms: 60_000,
            interaction_ttl_ms: 60_000,
            max_window_ms: 60_000,
            allowed_lateness_ms: 1_000,
            ..EngineConfig::default()
        };
        let lifetime = cfg.symbol_limits().key_lifetime_ms;
        let set = EngineSet::new(cfg);
        let engine = set.assign(0);
        let start = 1_795_593_600_000;
        let n = 3_000;
        for i in 0..n {
            // Each contact a new combination, time moving so that old keys fall out of use.
            let mut ev = EventRecord::new(
                format!("e{i}"),
                EventKind::Arrived,
                start + i * (3 * lifetime / n),
                format!("i{i}"),
            );
            ev.channel = Some("chat".into());
            ev.queue = Some(format!("q{}", i % 97).into());
            ev.reason = Some(format!("r{i}").into());
            engine.apply(&ev);
            assert!(
                set.symbols().key_count() <= 200 + 2,
                "at most the limit and the overflow keys"
            );
        }
        assert!(
            set.symbols().keys_freed.load(Ordering::Relaxed) > 0,
            "unused keys were freed"
        );
        let s = set
            .snapshot(&SnapshotQuery {
                window: WindowSpec::Last(60_000),
                ..SnapshotQuery::default()
            })
            .expect("snapshot");
        let reference = {
            let e = Engine::new(EngineConfig {
                max_dimension_keys: usize::MAX,
                ..set.config().clone()
            });
            for i in 0..n {
                let mut ev = EventRecord::new(
                    format!("e{i}"),
                    EventKind::Arrived,
                    start + i * (3 * lifetime / n),
                    format!("i{i}"),
                );
                ev.channel = Some("chat".into());
                ev.queue = Some(format!("q{}", i % 97).into());
                ev.reason = Some(format!("r{i}").into());
                e.apply(&ev);
            }
            e.snapshot(&SnapshotQuery {
                window: WindowSpec::Last(60_000),
                ..SnapshotQuery::default()
            })
            .expect("snapshot")
        };
        assert_eq!(s.total, reference.total, "totals never change");
        assert_eq!(s.by_channel, reference.by_channel);
    }
}
