//! Owns the follow-up of deflected contacts: for each identified customer deflected,
//! whether they came back on any channel within the repeat horizon. This is what tells a
//! supervisor if a deflection switch contained demand or only pushed it elsewhere.

use dashmap::DashMap;
use smallvec::SmallVec;

use super::symbols::{FastHash, KeyId};

/// One deflected contact of a customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflection {
    /// Event time of the deflection.
    pub ts: i64,
    /// Dimension key of the deflected contact.
    pub key: KeyId,
    /// The customer arrived again, on any channel, within the horizon after `ts`.
    pub came_back: bool,
}

/// Deflections of identified customers, kept for the repeat horizon.
#[derive(Debug, Default)]
pub(crate) struct DeflectionLog {
    by_customer: DashMap<u64, SmallVec<[Deflection; 1]>, FastHash>,
}

/// Deflected contacts and returns, for one scope and period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeflectionEffect {
    /// Contacts of identified customers deflected in the period.
    pub deflected: u64,
    /// Of those, customers who arrived again on any channel within the horizon.
    pub came_back: u64,
}

impl DeflectionLog {
    pub fn record(&self, customer: u64, deflection: Deflection) {
        self.by_customer
            .entry(customer)
            .or_default()
            .push(deflection);
    }

    /// An arrival of `customer` at `ts`: earlier deflections within `horizon_ms` came back.
    pub fn arrival(&self, customer: u64, ts: i64, horizon_ms: i64) {
        if let Some(mut deflections) = self.by_customer.get_mut(&customer) {
            for d in deflections.iter_mut() {
                if d.ts < ts && ts - d.ts <= horizon_ms {
                    d.came_back = true;
                }
            }
        }
    }

    /// Deflections at or after `since`, of keys that `matches` accepts.
    pub fn effect(&self, since: i64, matches: impl Fn(KeyId) -> bool) -> DeflectionEffect {
        let mut effect = DeflectionEffect::default();
        for entry in self.by_customer.iter() {
            for d in entry
                .value()
                .iter()
                .filter(|d| d.ts >= since && matches(d.key))
            {
                effect.deflected += 1;
                effect.came_back += u64::from(d.came_back);
            }
        }
        effect
    }

    /// Forgets deflections older than `before` (their horizon has passed).
    pub(crate) fn evict_before(&self, before: i64) {
        self.by_customer.retain(|_, deflections| {
            deflections.retain(|d| d.ts >= before);
            !deflections.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 7 * 86_400_000;

    #[test]
    fn a_customer_arriving_again_within_the_horizon_came_back() {
        let log = DeflectionLog::default();
        log.record(
            1,
            Deflection {
                ts: 1_000,
                key: 7,
                came_back: false,
            },
        );
        log.record(
            2,
            Deflection {
                ts: 1_000,
                key: 7,
                came_back: false,
            },
        );
        log.record(
            3,
            Deflection {
                ts: 1_000,
                key: 8,
                came_back: false,
            },
        );
        log.arrival(1, 500, H); // before the deflection: its own contact, not a return
        assert_eq!(
            log.effect(0, |_| true),
            DeflectionEffect {
                deflected: 3,
                came_back: 0
            }
        );
        log.arrival(1, 60_000, H);
        log.arrival(2, 1_000 + H + 1, H); // too late
        assert_eq!(
            log.effect(0, |k| k == 7),
            DeflectionEffect {
                deflected: 2,
                came_back: 1
            }
        );
        assert_eq!(
            log.effect(2_000, |_| true),
            DeflectionEffect::default(),
            "since the flip only"
        );
        log.evict_before(2_000);
        assert_eq!(log.effect(0, |_| true), DeflectionEffect::default());
    }
}
