//! Owns which engine (partition) each event of a parallel replay goes to.
//!
//! The rule is the Kafka key's (`customer_id`, else `interaction_id`; an agent's
//! state change by `agent_id`), with one refinement a file allows: an interaction stays
//! on the engine of its first event. Producers often put `customer_id` on the arrival
//! only; keyed event by event, the interaction's later steps would land elsewhere and
//! never join it. Following the interaction keeps every interaction whole. Only a step
//! without `customer_id` read *before* its interaction's first step with one can leave
//! that customer's history split (its repeat classification may then differ from a
//! one-thread replay); such events are counted and reported.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::engine::id_hash;
use crate::event::{EventKind, EventRecord};

/// Keys here are already xxh3 hashes: used as they are.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The engine of every interaction seen within the last `keep_ms` of event time.
pub(super) struct Router {
    engines: u64,
    owners: HashMap<u64, Owner, BuildHasherDefault<Prehashed>>,
    keep_ms: i64,
    newest: i64,
    next_sweep: i64,
    /// Events with a `customer_id` whose interaction was already placed on another
    /// engine (by an earlier step without one).
    pub(super) split_customers: u64,
}

#[derive(Clone, Copy)]
struct Owner {
    engine: u32,
    newest_ts: i64,
}

impl Router {
    /// Routes among `engines`, remembering an interaction for `keep_ms` after its last
    /// event (the engine's interaction lifetime and lateness: a later step would find
    /// no interaction to join anyway).
    pub(super) fn new(engines: usize, keep_ms: i64) -> Router {
        Router {
            engines: engines.max(1) as u64,
            owners: HashMap::default(),
            keep_ms,
            newest: i64::MIN,
            next_sweep: i64::MIN,
            split_customers: 0,
        }
    }

    /// The engines routed among.
    pub(super) fn engines(&self) -> usize {
        self.engines as usize
    }

    /// Interactions remembered (bounded by the traffic of `keep_ms`).
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.owners.len()
    }

    /// The engine of `event`.
    pub(super) fn route(&mut self, event: &EventRecord<'_>) -> usize {
        if self.engines == 1 {
            return 0;
        }
        let engines = self.engines;
        let engine_of = move |id: &str| (id_hash(id) % engines) as u32;
        if event.kind == EventKind::AgentState {
            if let Some(agent) = event.agent_id.as_deref() {
                return engine_of(agent) as usize;
            }
        }
        self.sweep(event.ts_ms);
        let interaction = id_hash(&event.interaction_id);
        let wanted = event.customer_id.as_deref().map(engine_of);
        let owner = self.owners.entry(interaction).or_insert(Owner {
            engine: wanted.unwrap_or((interaction % self.engines) as u32),
            newest_ts: event.ts_ms,
        });
        owner.newest_ts = owner.newest_ts.max(event.ts_ms);
        if wanted.is_some_and(|w| w != owner.engine) {
            self.split_customers += 1;
        }
        owner.engine as usize
    }

    /// Forgets interactions idle for `keep_ms`, every sixteenth of it.
    fn sweep(&mut self, ts: i64) {
        self.newest = self.newest.max(ts);
        if self.newest < self.next_sweep {
            return;
        }
        let oldest = self.newest.saturating_sub(self.keep_ms);
        self.owners.retain(|_, o| o.newest_ts >= oldest);
        self.next_sweep = self.newest.saturating_add((self.keep_ms / 16).max(1_000));
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn event<'a>(interaction: &'a str, customer: Option<&'a str>, ts: i64) -> EventRecord<'a> {
        let mut ev = EventRecord::new(
            Cow::Owned(format!("{interaction}-{ts}")),
            EventKind::Queued,
            ts,
            interaction,
        );
        ev.customer_id = customer.map(Cow::Borrowed);
        ev
    }

    /// An interaction id and a customer id whose hashes fall on different engines.
    fn apart(engines: u64) -> (String, String) {
        let customer = "alice".to_string();
        let c = id_hash(&customer) % engines;
        let interaction = (0..)
            .map(|i| format!("c{i}"))
            .find(|i| id_hash(i) % engines != c)
            .expect("one");
        (interaction, customer)
    }

    #[test]
    fn an_interaction_follows_its_first_event_and_a_customer_its_key() {
        let (interaction, customer) = apart(2);
        let mut router = Router::new(2, 86_400_000);
        let home = (id_hash(&customer) % 2) as usize;
        // The arrival names the customer; the later steps do not.
        assert_eq!(router.route(&event(&interaction, Some(&customer), 0)), home);
        assert_eq!(router.route(&event(&interaction, None, 1_000)), home);
        assert_eq!(router.route(&event(&interaction, None, 2_000)), home);
        assert_eq!(router.split_customers, 0);
        // A step without the customer read first places the interaction by its own id:
        // the customer's later step follows it, and is counted.
        let (other, _) = apart(2);
        let other = format!("{other}-x");
        let first = router.route(&event(&other, None, 3_000));
        assert_eq!(first, (id_hash(&other) % 2) as usize);
        assert_eq!(router.route(&event(&other, Some(&customer), 4_000)), first);
        assert_eq!(
            router.split_customers,
            u64::from(first != home),
            "counted only when the engines differ"
        );
    }

    #[test]
    fn interactions_are_forgotten_once_idle_for_the_lifetime() {
        let mut router = Router::new(3, 60_000);
        for i in 0..10_000 {
            let id = format!("i{i}");
            router.route(&event(&id, Some("bob"), i * 1_000));
        }
        // 10,000 s of traffic, one a second, kept 60 s (plus up to a sweep's period).
        assert!(router.remembered() <= 60 + 4, "{}", router.remembered());
        let mut one = Router::new(1, 60_000);
        assert_eq!(one.route(&event("x", Some("bob"), 0)), 0);
    }
}
