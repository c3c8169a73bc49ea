//! Owns the traffic generator: a realistic, reproducible stream of interaction events
//! (channel mix, per-channel waits and patience, short abandons, deflections, repeat
//! and cross-channel customers, anonymous contacts, some disorder and redeliveries).
//!
//! Contacts arrive as a Poisson process; each contact's events are scheduled, then
//! emitted in order of (event time + transport jitter), so a few arrive out of order
//! (never more than `max_disorder` late) and about 1 % are delivered twice.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::event::{EventKind, EventRecord};

/// Generator settings.
#[derive(Clone, Debug)]
pub struct SimulationConfig {
    pub seed: u64,
    /// Number of contacts (interactions) to generate; `None` = endless.
    pub contacts: Option<u64>,
    /// Event time of the first arrival, epoch ms.
    pub start_ms: i64,
    /// Mean arrivals per second (event time).
    pub contacts_per_second: f64,
    /// Share of contacts without a customer id.
    pub anonymous_share: f64,
    /// Share of identified contacts from a customer seen recently (repeat contacts).
    pub repeat_share: f64,
    /// Share of events delivered twice.
    pub redelivery_share: f64,
    /// Share of events delayed in transport, by up to `max_disorder_ms`.
    pub disorder_share: f64,
    pub max_disorder_ms: i64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            seed: 1,
            contacts: Some(1_000),
            start_ms: 1_795_593_600_000, // 2026-11-25T08:00:00Z
            contacts_per_second: 10.0,
            anonymous_share: 0.2,
            repeat_share: 0.3,
            redelivery_share: 0.01,
            disorder_share: 0.05,
            max_disorder_ms: 60_000,
        }
    }
}

/// Per-channel behaviour: share of traffic, mean wait and patience, handling time.
struct ChannelProfile {
    name: &'static str,
    share: f64,
    mean_wait_s: f64,
    mean_patience_s: f64,
    mean_handle_s: f64,
    deflect_share: f64,
    /// Share of contacts given up within seconds (a caller hanging up at once). Only live
    /// channels have them: nobody "hangs up" an e-mail, a web form, a post or a
    /// requested callback, and a demo wall showing e-mails abandoned would look broken.
    hang_up_share: f64,
}

const CHANNELS: [ChannelProfile; 10] = [
    ChannelProfile {
        name: "phone",
        share: 0.42,
        mean_wait_s: 35.0,
        mean_patience_s: 150.0,
        mean_handle_s: 360.0,
        hang_up_share: 0.04,
        deflect_share: 0.08,
    },
    ChannelProfile {
        name: "chat",
        share: 0.14,
        mean_wait_s: 30.0,
        mean_patience_s: 180.0,
        mean_handle_s: 600.0,
        hang_up_share: 0.04,
        deflect_share: 0.02,
    },
    ChannelProfile {
        name: "email",
        share: 0.11,
        mean_wait_s: 7_200.0,
        mean_patience_s: 1e9,
        mean_handle_s: 420.0,
        hang_up_share: 0.0,
        deflect_share: 0.0,
    },
    ChannelProfile {
        name: "messaging",
        share: 0.10,
        mean_wait_s: 50.0,
        mean_patience_s: 900.0,
        mean_handle_s: 540.0,
        hang_up_share: 0.02,
        deflect_share: 0.01,
    },
    ChannelProfile {
        name: "callback",
        share: 0.06,
        mean_wait_s: 900.0,
        mean_patience_s: 7_200.0,
        mean_handle_s: 300.0,
        hang_up_share: 0.0,
        deflect_share: 0.0,
    },
    ChannelProfile {
        name: "social",
        share: 0.04,
        mean_wait_s: 1_200.0,
        mean_patience_s: 1e9,
        mean_handle_s: 300.0,
        hang_up_share: 0.0,
        deflect_share: 0.0,
    },
    ChannelProfile {
        name: "visual_ivr",
        share: 0.05,
        mean_wait_s: 20.0,
        mean_patience_s: 120.0,
        mean_handle_s: 200.0,
        hang_up_share: 0.04,
        deflect_share: 0.0,
    },
    ChannelProfile {
        name: "voicebot",
        share: 0.04,
        mean_wait_s: 15.0,
        mean_patience_s: 90.0,
        mean_handle_s: 240.0,
        hang_up_share: 0.04,
        deflect_share: 0.05,
    },
    ChannelProfile {
        name: "chatbot",
        share: 0.02,
        mean_wait_s: 10.0,
        mean_patience_s: 120.0,
        mean_handle_s: 300.0,
        hang_up_share: 0.04,
        deflect_share: 0.0,
    },
    ChannelProfile {
        name: "webform",
        share: 0.02,
        mean_wait_s: 3_600.0,
        mean_patience_s: 1e9,
        mean_handle_s: 300.0,
        hang_up_share: 0.0,
        deflect_share: 0.0,
    },
];

const REASONS: [(&str, f64); 6] = [
    ("billing", 0.3),
    ("technical", 0.25),
    ("contract", 0.15),
    ("moving", 0.1),
    ("claim", 0.12),
    ("other", 0.08),
];
const SEGMENTS: [(&str, f64); 3] = [("high", 0.15), ("standard", 0.6), ("low", 0.25)];
const SITES: [(&str, f64); 4] = [
    ("paris", 0.4),
    ("lyon", 0.3),
    ("lille", 0.2),
    ("rabat", 0.1),
];
const DEFLECT_TARGETS: [(&str, f64); 3] = [("visual_ivr", 0.5), ("callback", 0.35), ("chat", 0.15)];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T], share: impl Fn(&T) -> f64) -> &'a T {
    let total: f64 = items.iter().map(&share).sum();
    let mut x = rng.random::<f64>() * total;
    for item in items {
        x -= share(item);
        if x < 0.0 {
            return item;
        }
    }
    &items[items.len() - 1]
}

fn exp_ms(rng: &mut StdRng, mean_s: f64) -> i64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean_s * 1000.0) as i64
}

/// An event waiting to be emitted, ordered by emission time then sequence.
struct Pending {
    emit_at: i64,
    seq: u64,
    event: EventRecord<'static>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.emit_at, self.seq) == (other.emit_at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.emit_at, self.seq).cmp(&(other.emit_at, other.seq))
    }
}

/// Endless or bounded iterator of simulated events, in emission order.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimulationConfig,
    rng: StdRng,
    next_arrival: i64,
    generated: u64,
    seq: u64,
    next_customer: u64,
    /// Recently seen customers with their last channel, for repeat contacts.
    recent: VecDeque<(u64, usize)>,
    heap: BinaryHeap<Reverse<PendingBox>>,
}

/// Boxed to keep heap moves cheap.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct PendingBox(Box<Pending>);

impl std::fmt::Debug for PendingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending@{}", self.0.emit_at)
    }
}

impl Simulator {
    pub fn new(cfg: SimulationConfig) -> Simulator {
        Simulator {
            rng: StdRng::seed_from_u64(cfg.seed),
            next_arrival: cfg.start_ms,
            generated: 0,
            seq: 0,
            next_customer: 0,
            recent: VecDeque::new(),
            heap: BinaryHeap::new(),
            cfg,
        }
    }

    fn push(&mut self, event: EventRecord<'static>) {
        let mut emit_at = event.ts_ms;
        if self.rng.random_bool(self.cfg.disorder_share) {
            emit_at += self.rng.random_range(0..=self.cfg.max_disorder_ms.max(0));
        }
        let redeliver = self.rng.random_bool(self.cfg.redelivery_share);
        if redeliver {
            let again = event.ts_ms + self.rng.random_range(0..=self.cfg.max_disorder_ms.max(0));
            self.enqueue(again, event.clone());
        }
        self.enqueue(emit_at, event);
    }

    fn enqueue(&mut self, emit_at: i64, event: EventRecord<'static>) {
        self.seq += 1;
        self.heap.push(Reverse(PendingBox(Box::new(Pending {
            emit_at,
            seq: self.seq,
            event,
        }))));
    }

    /// Schedules every event of one new contact.
    fn generate_contact(&mut self) {
        let n = self.generated;
        self.generated += 1;
        let t0 = self.next_arrival;
        self.next_arrival +=
            exp_ms(&mut self.rng, 1.0 / self.cfg.contacts_per_second.max(1e-9)).max(1);

        let (customer, channel_ix) = self.pick_customer();
        let profile = &CHANNELS[channel_ix];
        let reason = pick(&mut self.rng, &REASONS, |r| r.1).0;
        let segment = pick(&mut self.rng, &SEGMENTS, |s| s.1).0;
        let site = pick(&mut self.rng, &SITES, |s| s.1).0;
        let iid = format!("s{}-i{n}", self.cfg.seed);
        // Every event of an identified contact carries its customer id: that is the
        // Kafka key, so all of a customer's events land on one partition.
        let customer_id = customer.map(|c| format!("cust-{c}"));
        let mk = |kind: EventKind, ts: i64| EventRecord {
            customer_id: customer_id.clone().map(Cow::Owned),
            ..EventRecord::new(format!("{iid}-{}", kind.as_str()), kind, ts, iid.clone())
        };
        let mut arrived = mk(EventKind::Arrived, t0);
        arrived.channel = Some(Cow::Borrowed(profile.name));
        arrived.reason = Some(Cow::Borrowed(reason));
        arrived.segment = Some(Cow::Borrowed(segment));
        arrived.site = Some(Cow::Borrowed(site));
        self.push(arrived);

        let routing = 2_000 + exp_ms(&mut self.rng, 8.0);
        if self.rng.random_bool(profile.deflect_share) {
            let mut ev = mk(EventKind::Deflected, t0 + routing);
            ev.deflected_to = Some(Cow::Borrowed(
                pick(&mut self.rng, &DEFLECT_TARGETS, |t| t.1).0,
            ));
            self.push(ev);
            return;
        }
        let tq = t0 + routing;
        let mut queued = mk(EventKind::Queued, tq);
        queued.queue = Some(Cow::Owned(format!("{}_{reason}", profile.name)));
        self.push(queued);

        // Waits: mostly exponential, with a 3 % tail of very long ones (queue stuck).
        let mut wait = exp_ms(&mut self.rng, profile.mean_wait_s);
        if self.rng.random_bool(0.03) {
            wait *= 5;
        }
        // Some callers hang up at once (short abandons).
        let patience = if self.rng.random_bool(profile.hang_up_share) {
            self.rng.random_range(0..5_000)
        } else {
            exp_ms(&mut self.rng, profile.mean_patience_s)
        };
        // Wait measured from arrival: routing time counts.
        if routing + wait <= patience {
            let ta = tq + wait;
            self.push(mk(EventKind::Answered, ta));
            let mut ended = mk(
                EventKind::Ended,
                ta + exp_ms(&mut self.rng, profile.mean_handle_s).max(1_000),
            );
            ended.resolved = Some(self.rng.random_bool(0.72));
            self.push(ended);
        } else {
            self.push(mk(EventKind::Abandoned, t0 + patience.max(routing)));
        }
    }

    /// A customer (or none) and the channel of this contact.
    fn pick_customer(&mut self) -> (Option<u64>, usize) {
        let fresh_channel = |rng: &mut StdRng| {
            let p = pick(rng, &CHANNELS, |c| c.share);
            CHANNELS.iter().position(|c| c.name == p.name).unwrap_or(0)
        };
        if self.rng.random_bool(self.cfg.anonymous_share) {
            return (None, fresh_channel(&mut self.rng));
        }
        if !self.recent.is_empty() && self.rng.random_bool(self.cfg.repeat_share) {
            let i = self.rng.random_range(0..self.recent.len());
            let (customer, last_channel) = self.recent[i];
            // Over half of repeat contacts switch channel (57 % of callers tried another channel).
            let channel = if self.rng.random_bool(0.57) {
                fresh_channel(&mut self.rng)
            } else {
                last_channel
            };
            self.recent[i].1 = channel;
            return (Some(customer), channel);
        }
        let customer = self.next_customer;
        self.next_customer += 1;
        let channel = fresh_channel(&mut self.rng);
        self.recent.push_back((customer, channel));
        if self.recent.len() > 5_000 {
            self.recent.pop_front();
        }
        (Some(customer), channel)
    }
}

impl Iterator for Simulator {
    type Item = EventRecord<'static>;

    fn next(&mut self) -> Option<EventRecord<'static>> {
        loop {
            let more = self.cfg.contacts.is_none_or(|n| self.generated < n);
            // Everything scheduled before the next arrival can be emitted: later
            // contacts only add events at or after their own arrival. Once the last
            // contact is generated, the recording ends there: contacts still in
            // progress stay in progress, as in a real capture.
            let ready = self
                .heap
                .peek()
                .is_some_and(|top| top.0 .0.emit_at < self.next_arrival);
            if ready {
                return self.heap.pop().map(|p| p.0 .0.event);
            }
            if !more {
                self.heap.clear();
                return None;
            }
            self.generate_contact();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn sample(contacts: u64, seed: u64) -> Vec<EventRecord<'static>> {
        Simulator::new(SimulationConfig {
            seed,
            contacts: Some(contacts),
            ..SimulationConfig::default()
        })
        .collect()
    }

    #[test]
    fn same_seed_same_stream() {
        assert_eq!(sample(200, 7), sample(200, 7));
        assert_ne!(sample(200, 7), sample(200, 8));
    }

    #[test]
    fn the_stream_has_the_realistic_features_tests_rely_on() {
        let events = sample(5_000, 3);
        let kinds: HashSet<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.len(), 6, "every lifecycle step appears");
        let channels: HashSet<_> = events.iter().filter_map(|e| e.channel.as_deref()).collect();
        assert!(channels.len() >= 8, "{channels:?}");
        let ids: Vec<_> = events.iter().map(|e| &e.event_id).collect();
        let unique: HashSet<_> = ids.iter().collect();
        assert!(unique.len() < ids.len(), "some redeliveries");
        assert!(
            events.windows(2).any(|w| w[1].ts_ms < w[0].ts_ms),
            "some disorder"
        );
        let max_disorder = events
            .iter()
            .scan(i64::MIN, |max, e| {
                *max = (*max).max(e.ts_ms);
                Some(*max - e.ts_ms)
            })
            .max()
            .unwrap_or(0);
        assert!(
            max_disorder <= 60_000,
            "disorder stays within a minute: {max_disorder}"
        );
        let anonymous = events
            .iter()
            .filter(|e| e.kind == EventKind::Arrived && e.customer_id.is_none())
            .count();
        assert!(anonymous > 0);
        let mut per_customer: HashMap<_, HashSet<_>> = HashMap::new();
        for e in events.iter().filter(|e| e.kind == EventKind::Arrived) {
            if let (Some(c), Some(ch)) = (&e.customer_id, &e.channel) {
                per_customer
                    .entry(c.clone())
                    .or_default()
                    .insert(ch.clone());
            }
        }
        assert!(
            per_customer.values().any(|chs| chs.len() > 1),
            "cross-channel customers"
        );
        // Written channels are never abandoned; live ones are, some within seconds.
        let channel_of: HashMap<_, _> = events
            .iter()
            .filter_map(|e| Some((e.interaction_id.clone(), e.channel.clone()?)))
            .collect();
        let abandoned: HashMap<_, usize> = events
            .iter()
            .filter(|e| e.kind == EventKind::Abandoned)
            .filter_map(|e| channel_of.get(&e.interaction_id))
            .fold(HashMap::new(), |mut n, ch| {
                *n.entry(ch.as_ref()).or_default() += 1;
                n
            });
        for written in ["email", "webform", "social"] {
            assert_eq!(abandoned.get(written), None, "{written}: {abandoned:?}");
        }
        assert!(abandoned.get("phone") > Some(&0), "{abandoned:?}");
    }

    #[test]
    fn every_written_event_decodes_back() {
        let events = sample(300, 5);
        let mut jsonl = Vec::new();
        crate::event::write_events(
            events.clone().into_iter(),
            crate::event::Format::Jsonl,
            &mut jsonl,
        )
        .expect("write");
        for (line, original) in jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .zip(&events)
        {
            assert_eq!(
                &crate::event::decode_json(line).expect("valid").into_owned(),
                original
            );
        }
    }
}
