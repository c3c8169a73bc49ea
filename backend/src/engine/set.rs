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
            symbols: Arc::new(Symbols::with_limit(cfg.max_dimension_values)),
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
}
