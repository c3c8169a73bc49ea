//! Owns the engines of the partitions this instance consumes: one [`Engine`] per
//! Kafka partition, all sharing one symbol table, merged into one snapshot.
//!
//! A partition's state is created empty when the partition is assigned (then rebuilt
//! by replaying it) and dropped when it is revoked, so a rebalance never double
//! counts or keeps a stale share.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use vigie_proto::Snapshot;

use super::{build_snapshot, Engine, EngineConfig, SnapshotQuery, Symbols, WindowError};

#[derive(Debug)]
pub struct EngineSet {
    cfg: EngineConfig,
    symbols: Arc<Symbols>,
    partitions: RwLock<BTreeMap<i32, Arc<Engine>>>,
}

impl EngineSet {
    pub fn new(cfg: EngineConfig) -> EngineSet {
        EngineSet {
            cfg,
            symbols: Arc::default(),
            partitions: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A fresh, empty engine for `partition` (replacing any previous one).
    pub fn assign(&self, partition: i32) -> Arc<Engine> {
        let engine = Arc::new(Engine::with_symbols(self.cfg.clone(), self.symbols.clone()));
        self.partitions.write().insert(partition, engine.clone());
        engine
    }

    /// Drops the state of `partition`.
    pub fn revoke(&self, partition: i32) {
        self.partitions.write().remove(&partition);
    }

    pub fn get(&self, partition: i32) -> Option<Arc<Engine>> {
        self.partitions.read().get(&partition).cloned()
    }

    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.read().keys().copied().collect()
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
