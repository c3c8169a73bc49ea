//! Owns the engines of the partitions this instance consumes: one [`Engine`] per
//! Kafka partition, all sharing one symbol table, merged into one snapshot.
//!
//! A partition's state is created empty when the partition is assigned (then rebuilt
//! by replaying it) and dropped when it is revoked, so a rebalance never double
//! counts or keeps a stale share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use vigie_proto::Snapshot;

use vigie_proto::Trend;

use super::symbols::Sym;
use super::{
    build_snapshot, build_trend, Dimension, Engine, EngineConfig, SnapshotQuery, Symbols,
    TrendShape, WindowError,
};

#[derive(Debug)]
pub struct EngineSet {
    cfg: EngineConfig,
    symbols: Arc<Symbols>,
    partitions: RwLock<BTreeMap<i32, Arc<Engine>>>,
    /// Bumped on every assignment and revocation.
    generation: AtomicU64,
}

impl EngineSet {
    pub fn new(cfg: EngineConfig) -> EngineSet {
        EngineSet {
            cfg,
            symbols: Arc::default(),
            partitions: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A fresh, empty engine for `partition` (replacing any previous one).
    pub fn assign(&self, partition: i32) -> Arc<Engine> {
        let engine = Arc::new(Engine::with_symbols(self.cfg.clone(), self.symbols.clone()));
        self.partitions.write().insert(partition, engine.clone());
        self.generation.fetch_add(1, Ordering::Relaxed);
        engine
    }

    /// Drops the state of `partition`.
    pub fn revoke(&self, partition: i32) {
        self.partitions.write().remove(&partition);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes whenever a snapshot may have changed: an event applied, found late,
    /// duplicate or rejected, or a partition assigned or revoked. Cheap to poll.
    pub fn change_counter(&self) -> u64 {
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

    pub fn get(&self, partition: i32) -> Option<Arc<Engine>> {
        self.partitions.read().get(&partition).cloned()
    }

    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.read().keys().copied().collect()
    }

    /// Deflection follow-up over every partition held (see [`Engine::deflection_effect`]).
    pub fn deflection_effect(
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

    /// The last hour of `query`'s flow KPIs over every partition held.
    pub fn trend(&self, query: &SnapshotQuery, shape: TrendShape) -> Result<Trend, WindowError> {
        let engines: Vec<Arc<Engine>> = self.partitions.read().values().cloned().collect();
        if engines.is_empty() {
            self.check_window(query)?;
        }
        build_trend(
            &engines.iter().map(|e| &**e).collect::<Vec<_>>(),
            query,
            shape,
        )
    }

    /// Values seen so far per dimension, sorted, at most `limit` per dimension.
    pub fn dimension_values(&self, limit: usize) -> BTreeMap<String, Vec<String>> {
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
        let engines: Vec<Arc<Engine>> = self.partitions.read().values().cloned().collect();
        if engines.is_empty() {
            // Same shape as an engine that has seen nothing (and the same window checks).
            return Engine::with_symbols(self.cfg.clone(), self.symbols.clone()).snapshot(query);
        }
        build_snapshot(&engines.iter().map(|e| &**e).collect::<Vec<_>>(), query)
    }
}
