//! Owns partials (scale-out): what one partition's engine publishes so that other
//! instances can merge it, and the [`Replica`] an instance keeps of a partition it
//! does not consume.
//!
//! A partial is exactly the engine's own aggregate state, not a summary of it:
//! - the per-second effect log, cut in [`CHUNK_MS`] chunks ([`PartialChunk`]), dimension
//!   keys as strings (each instance interns them in its own symbol table);
//! - a [`PartialHeader`]: owner, epoch, rebuild progress, watermark, counters, and the
//!   live queue state per dimension key (count and oldest arrival, all a snapshot needs).
//!
//! A replica rebuilds the 10-minute and hour cells from the chunks, so a merged snapshot
//! covers a window exactly like a local engine does: the merged view is exact, not an
//! approximation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use vigie_proto::AgentState;

use super::agents::{skills, AgentBase, AgentBook, AgentEntry};
use super::aggregate::{Aggregate, WaitQuantizer};
pub(crate) use super::baseline::WireBaselineHour;
use super::baseline::{BaselineError, BaselineHours};
use super::interaction::{Effect, RepeatClass};
use super::store::{cover, Collect, Exported, CHUNK_MS, LEVELS_MS};
use super::symbols::{DimKey, FastHash, KeyId, Sym, Symbols, UNKNOWN};
use super::Engine;

/// Format version of partial records.
pub(crate) const PARTIAL_VERSION: u32 = 2;

/// A dimension key as strings: channel, queue, reason, segment, site.
pub(crate) type WireKey = [String; 5];

/// The state of one partition, besides its effect log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartialHeader {
    pub v: u32,
    /// Instance that consumes the partition.
    pub owner: String,
    /// Fencing epoch: the offset, in the partials topic, of the owner's claim record.
    /// `None` in the claim itself (its epoch is its own offset).
    pub epoch: Option<i64>,
    /// Share of the rebuild done (0..1) while rebuilding; `None` once live.
    pub rebuilding: Option<f64>,
    pub watermark: Option<i64>,
    pub late_events: u64,
    pub rejected: u64,
    pub duplicates: u64,
    /// Contacts in queue per dimension key: (key, count, oldest arrival ts).
    pub waiting: Vec<(WireKey, u64, i64)>,
    /// Wall-clock time of publication, epoch ms (a dead owner's partial ages).
    pub published_at: i64,
    /// The effect, on this partition, of every deflection switch that is on: the
    /// deflection log is per customer and too large to ship, its counts per switch are not.
    #[serde(default)]
    pub switches: Vec<SwitchShare>,
    /// What each agent's changes older than the owner's retention left (capacity).
    #[serde(default, skip_serializing_if = "WireAgents::is_empty")]
    pub agents: WireAgents,
    /// The owner's earliest event time: how far back its baseline goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_from: Option<i64>,
}

/// Agent state changes on the wire, compact (a centre logging in thousands of agents in
/// the same 10 seconds must fit one record): every string once in `names`, each change
/// a JSON array `[agent, ts, event, state, away_reason, queues, site, interaction]` of
/// indexes into it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireAgents {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Queue lists (skills), each once, as indexes into `names`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<Vec<u32>>,
    /// Times are offsets from this (ms).
    #[serde(default)]
    pub since_ms: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<WireChange>,
    /// Folded states (header): each change's `(until, since)`, in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<(i64, i64)>,
}

/// `(agent, ts − since_ms, event hash, state code, away reason, skills, site, interaction)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireChange(
    u32,
    i64,
    u64,
    u8,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
);

impl WireAgents {
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn name(&mut self, index: &mut HashMap<String, u32>, s: &str) -> u32 {
        if let Some(i) = index.get(s) {
            return *i;
        }
        self.names.push(s.to_string());
        let i = (self.names.len() - 1) as u32;
        index.insert(s.to_string(), i);
        i
    }

    /// Encodes `(agent, change)` pairs (with their `(until, since)` when folded).
    fn encode<'a>(
        symbols: &Symbols,
        changes: impl Iterator<Item = (&'a str, &'a AgentEntry, Option<(i64, i64)>)>,
    ) -> WireAgents {
        let mut out = WireAgents::default();
        let mut index = HashMap::new();
        let mut skills: HashMap<Vec<u32>, u32> = HashMap::new();
        let changes: Vec<_> = changes.collect();
        out.since_ms = changes.iter().map(|(_, e, _)| e.ts).min().unwrap_or(0);
        for (agent, e, folded) in changes {
            let agent = out.name(&mut index, agent);
            let mut sym = |out: &mut WireAgents, s: Sym| out.name(&mut index, &symbols.name(s));
            let reason = (e.away_reason != UNKNOWN).then(|| sym(&mut out, e.away_reason));
            let queues = e.queues.as_ref().map(|q| {
                let set: Vec<u32> = q.iter().map(|s| sym(&mut out, *s)).collect();
                *skills.entry(set.clone()).or_insert_with(|| {
                    out.skills.push(set);
                    (out.skills.len() - 1) as u32
                })
            });
            let site = e.site.map(|s| sym(&mut out, s));
            let interaction = e.interaction.as_ref().map(|i| out.name(&mut index, i));
            let state = AgentState::ALL
                .iter()
                .position(|s| *s == e.state)
                .unwrap_or(0) as u8;
            out.changes.push(WireChange(
                agent,
                e.ts - out.since_ms,
                e.event,
                state,
                reason,
                queues,
                site,
                interaction,
            ));
            if let Some(f) = folded {
                out.folded.push(f);
            }
        }
        out
    }

    /// Decodes every change: `(agent, change)`; any index, state or time out of range
    /// refuses the whole record.
    fn decode(&self, symbols: &Symbols) -> Result<Vec<(String, AgentEntry)>, PartialError> {
        let name = |i: u32| {
            self.names
                .get(i as usize)
                .ok_or(PartialError::OutOfRange("agent name index", i64::from(i)))
        };
        let mut out = Vec::with_capacity(self.changes.len());
        for WireChange(agent, offset, event, state, reason, queues, site, interaction) in
            &self.changes
        {
            let ts = &self.since_ms.saturating_add(*offset);
            check_time("agent change", *ts)?;
            let state = *AgentState::ALL
                .get(usize::from(*state))
                .ok_or(PartialError::OutOfRange("agent state", i64::from(*state)))?;
            let queues = match queues {
                Some(set) => {
                    let q = self
                        .skills
                        .get(*set as usize)
                        .ok_or(PartialError::OutOfRange(
                            "agent skills index",
                            i64::from(*set),
                        ))?;
                    let names = q.iter().map(|i| name(*i)).collect::<Result<Vec<_>, _>>()?;
                    Some(skills(symbols, names.iter().map(|n| n.as_str())))
                }
                None => None,
            };
            out.push((
                name(*agent)?.clone(),
                AgentEntry {
                    ts: *ts,
                    event: *event,
                    state,
                    away_reason: match reason {
                        Some(r) => symbols.intern(Some(name(*r)?)),
                        None => UNKNOWN,
                    },
                    queues,
                    site: match site {
                        Some(s) => Some(symbols.intern(Some(name(*s)?))),
                        None => None,
                    },
                    interaction: match interaction {
                        Some(i) => Some(std::sync::Arc::from(name(*i)?.as_str())),
                        None => None,
                    },
                },
            ));
        }
        Ok(out)
    }
}

/// One switch's effect on one partition: deflections since the switch was turned on,
/// and how many of those customers came back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SwitchShare {
    pub switch: String,
    /// The switch's `changed_at` the counts start from: a share computed before a
    /// later flip is not mixed with the new measurement.
    pub since: i64,
    pub deflected: u64,
    pub came_back: u64,
}

/// The effect log of one partition over `[start, start + CHUNK_MS)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartialChunk {
    pub v: u32,
    pub epoch: i64,
    pub start: i64,
    /// Keys referred to by index in `effects`.
    pub keys: Vec<WireKey>,
    /// `[ms offset of the second in the chunk, key index, code, value]`, see [`encode_effect`].
    pub effects: Vec<[i64; 4]>,
    /// Agent state changes of the chunk's time.
    #[serde(default, skip_serializing_if = "WireAgents::is_empty")]
    pub agents: WireAgents,
}

/// Effect code flag of a retraction whose addition was evicted.
const RETRACT: i64 = 64;

/// Encodes an effect as (code, value): compact in JSON, and the decoder refuses unknown codes.
fn encode_effect(effect: Effect) -> (i64, i64) {
    let b = i64::from;
    match effect {
        Effect::Arrival { repeat: None } => (0, 0),
        Effect::Arrival { repeat: Some(r) } => (1 + b(r.repeat) + 2 * b(r.cross_channel), 0),
        Effect::Deflection => (5, 0),
        Effect::Answer { wait_ms, sl_met } => (6 + sl_met.map_or(0, |m| 1 + b(m)), wait_ms),
        Effect::Abandon {
            wait_ms,
            short,
            sl_eligible,
        } => (9 + b(short) + 2 * b(sl_eligible), wait_ms),
        Effect::End {
            handle_ms,
            once_and_done,
        } => (
            13 + 3 * b(handle_ms.is_some()) + once_and_done.map_or(0, |o| 1 + b(o)),
            handle_ms.unwrap_or(0),
        ),
    }
}

fn decode_effect(code: i64, value: i64) -> Option<Effect> {
    // Waits and handling times as the owner computes them: never beyond the cap.
    if !(0..=super::interaction::MAX_DURATION_MS).contains(&value) {
        return None;
    }
    let opt = |n: i64| match n {
        0 => None,
        n => Some(n == 2),
    };
    Some(match code {
        0 => Effect::Arrival { repeat: None },
        1..=4 => Effect::Arrival {
            repeat: Some(RepeatClass {
                repeat: (code - 1) & 1 == 1,
                cross_channel: (code - 1) & 2 == 2,
            }),
        },
        5 => Effect::Deflection,
        6..=8 => Effect::Answer {
            wait_ms: value,
            sl_met: opt(code - 6),
        },
        9..=12 => Effect::Abandon {
            wait_ms: value,
            short: (code - 9) & 1 == 1,
            sl_eligible: (code - 9) & 2 == 2,
        },
        13..=18 => Effect::End {
            handle_ms: (code >= 16).then_some(value),
            once_and_done: opt((code - 13) % 3),
        },
        _ => return None,
    })
}

fn wire_key(symbols: &Symbols, key: &DimKey) -> WireKey {
    [key.channel, key.queue, key.reason, key.segment, key.site].map(|s| symbols.name(s).to_string())
}

/// The id of a key of another instance's partial, used at `ts` (event time).
fn intern_key(symbols: &Symbols, key: &WireKey, ts: i64) -> KeyId {
    let s = |i: usize| symbols.intern(Some(&key[i]));
    symbols.key_id(
        DimKey {
            channel: symbols.intern_channel(Some(&key[0])),
            queue: s(1),
            reason: s(2),
            segment: s(3),
            site: s(4),
        },
        ts,
    )
}

impl Engine {
    /// Starts remembering which chunks change, for [`Engine::take_changed_chunks`].
    pub(crate) fn track_changes(&self) {
        for store in self.stores.iter() {
            store.lock().track_changes();
        }
        self.agents.track_changes();
        self.baseline.track_changes();
    }

    /// Hours of the baseline changed since the last call.
    pub(crate) fn take_changed_baseline_hours(&self) -> std::collections::BTreeSet<i64> {
        self.baseline.take_changed()
    }

    /// Every hour of the baseline held (to republish it whole).
    pub(crate) fn baseline_hours(&self) -> std::collections::BTreeSet<i64> {
        self.baseline.hour_starts()
    }

    /// One hour of the baseline for the partials topic.
    pub(crate) fn export_baseline_hour(&self, hour: i64, epoch: i64) -> WireBaselineHour {
        self.baseline.export(&self.symbols, hour, epoch)
    }

    /// Starts of the chunks changed since the last call.
    pub(crate) fn take_changed_chunks(&self) -> std::collections::BTreeSet<i64> {
        let mut all = std::collections::BTreeSet::new();
        for store in self.stores.iter() {
            all.append(&mut store.lock().take_changed());
        }
        all.append(&mut self.agents.take_changed());
        all
    }

    /// Starts of every chunk of the effect log (to republish it whole under a new epoch).
    pub(crate) fn chunk_starts(&self) -> std::collections::BTreeSet<i64> {
        let mut all = std::collections::BTreeSet::new();
        for store in self.stores.iter() {
            all.append(&mut store.lock().chunk_starts());
        }
        all.append(&mut self.agents.chunk_starts());
        all
    }

    /// The chunk of the effect log starting at `start` (a multiple of [`CHUNK_MS`]).
    pub(crate) fn export_chunk(&self, start: i64, epoch: i64) -> PartialChunk {
        let mut exported = Vec::new();
        for store in self.stores.iter() {
            store.lock().export(start, start + CHUNK_MS, &mut exported);
        }
        exported.sort_by_key(|e| e.0);
        let keys_table = self.symbols.keys();
        let mut index: HashMap<KeyId, i64, FastHash> = HashMap::default();
        let mut keys = Vec::new();
        let effects = exported
            .into_iter()
            .map(|(second, key, retract, effect)| {
                let i = *index.entry(key).or_insert_with(|| {
                    let wire = keys_table
                        .get(key as usize)
                        .map_or_else(Default::default, |k| wire_key(&self.symbols, k));
                    keys.push(wire);
                    keys.len() as i64 - 1
                });
                let (code, value) = encode_effect(effect);
                [
                    second - start,
                    i,
                    code + if retract { RETRACT } else { 0 },
                    value,
                ]
            })
            .collect();
        let changes = self.agents.entries_between(start, start + CHUNK_MS);
        let agents = WireAgents::encode(
            &self.symbols,
            changes.iter().map(|(agent, e)| (&**agent, e, None)),
        );
        PartialChunk {
            v: PARTIAL_VERSION,
            epoch,
            start,
            keys,
            effects,
            agents,
        }
    }

    /// The header of this engine's partial (owner, epoch, progress and time are the caller's).
    pub(crate) fn partial_header(&self) -> PartialHeader {
        let keys_table = self.symbols.keys();
        let mut per_key: BTreeMap<KeyId, (u64, i64)> = BTreeMap::new();
        for entry in self.waiting.iter() {
            let (arrival, key) = *entry.value();
            let slot = per_key.entry(key).or_insert((0, arrival));
            slot.0 += 1;
            slot.1 = slot.1.min(arrival);
        }
        let stat = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        PartialHeader {
            v: PARTIAL_VERSION,
            watermark: self.watermark(),
            history_from: self.first_ts(),
            late_events: stat(&self.stats.late_events),
            rejected: stat(&self.stats.rejected),
            duplicates: stat(&self.stats.duplicates),
            waiting: per_key
                .into_iter()
                .filter_map(|(key, (n, oldest))| {
                    Some((
                        wire_key(&self.symbols, keys_table.get(key as usize)?),
                        n,
                        oldest,
                    ))
                })
                .collect(),
            agents: {
                let bases = self.agents.bases();
                WireAgents::encode(
                    &self.symbols,
                    bases
                        .iter()
                        .map(|(agent, b)| (&**agent, &b.last, Some((b.until, b.since)))),
                )
            },
            ..PartialHeader::default()
        }
    }
}

type Cells = HashMap<KeyId, Aggregate, FastHash>;

/// What an instance knows of a partition another instance consumes: the owner's last
/// header and effect log, with the 10-minute and hour cells rebuilt from it.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    /// Highest epoch seen; anything older is a former owner's and ignored.
    pub epoch: i64,
    pub header: PartialHeader,
    /// The header of `epoch` was seen (a chunk may come first).
    pub has_header: bool,
    chunks: BTreeMap<i64, Vec<Exported>>,
    cells: [BTreeMap<i64, Cells>; 2],
    waiting: Vec<(KeyId, u64, i64)>,
    quantizer: WaitQuantizer,
    /// The owner's agents: bases from the header, changes from the chunks.
    pub(super) agents: AgentBook,
    /// The agent changes of each chunk: (agent, event), to replace them with the chunk.
    agent_chunks: BTreeMap<i64, Vec<(String, u64)>>,
    /// The owner's baseline, hour by hour.
    pub(super) baseline: BaselineHours,
}

/// Why a partial record was not applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PartialError {
    #[error("partial format version {0} is not supported (expected {PARTIAL_VERSION})")]
    Version(u32),
    #[error("chunk start {0} is not a multiple of {CHUNK_MS} ms")]
    Misaligned(i64),
    #[error("effect {0} of the chunk is malformed (unknown code, key index, second or value)")]
    BadEffect(usize),
    #[error("{0} {1} is out of range")]
    OutOfRange(&'static str, i64),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
}

/// A time of a partial: within the dates an event may carry.
fn check_time(what: &'static str, ms: i64) -> Result<(), PartialError> {
    if (0..=crate::event::MAX_TS_MS).contains(&ms) {
        Ok(())
    } else {
        Err(PartialError::OutOfRange(what, ms))
    }
}

/// Most contacts one key may have waiting in a header (far beyond any queue; keeps sums
/// of forged counts from overflowing).
const MAX_WAITING: u64 = 1 << 32;

impl Replica {
    /// Moves to `epoch` if it is newer, forgetting the former owner's state; `false` if
    /// `epoch` is older than the current one (a stale owner: ignore its record).
    fn enter(&mut self, epoch: i64) -> bool {
        if epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            *self = Replica {
                epoch,
                ..Replica::default()
            };
        }
        true
    }

    /// Applies a header; `epoch` is the record's (from the claim's offset when absent).
    /// Returns `false` for a stale owner's header.
    pub(crate) fn apply_header(
        &mut self,
        header: PartialHeader,
        epoch: i64,
        symbols: &Symbols,
    ) -> Result<bool, PartialError> {
        if header.v != PARTIAL_VERSION {
            return Err(PartialError::Version(header.v));
        }
        // Forged or corrupted numbers are refused here, before any arithmetic on them.
        if let Some(w) = header.watermark {
            check_time("watermark", w)?;
        }
        check_time("published_at", header.published_at)?;
        for (_, n, oldest) in &header.waiting {
            check_time("oldest waiting arrival", *oldest)?;
            if *n > MAX_WAITING {
                return Err(PartialError::OutOfRange("waiting count", *n as i64));
            }
        }
        let changes = header.agents.decode(symbols)?;
        if header.agents.folded.len() != changes.len() {
            return Err(PartialError::OutOfRange(
                "folded agent states",
                header.agents.folded.len() as i64,
            ));
        }
        let mut bases = Vec::with_capacity(changes.len());
        for ((agent, last), &(until, since)) in changes.into_iter().zip(&header.agents.folded) {
            check_time("agent base", until)?;
            check_time("agent state start", since)?;
            bases.push((
                std::sync::Arc::from(agent.as_str()),
                AgentBase { until, last, since },
            ));
        }
        if !self.enter(epoch) {
            return Ok(false);
        }
        self.agents.set_bases(bases);
        self.waiting = header
            .waiting
            .iter()
            .map(|(key, n, oldest)| (intern_key(symbols, key, *oldest), *n, *oldest))
            .collect();
        self.header = header;
        self.has_header = true;
        Ok(true)
    }

    /// Replaces one chunk of the effect log; `false` for a stale owner's chunk.
    pub(crate) fn apply_chunk(
        &mut self,
        chunk: &PartialChunk,
        symbols: &Symbols,
    ) -> Result<bool, PartialError> {
        if chunk.v != PARTIAL_VERSION {
            return Err(PartialError::Version(chunk.v));
        }
        if chunk.start.rem_euclid(CHUNK_MS) != 0 {
            return Err(PartialError::Misaligned(chunk.start));
        }
        check_time("chunk start", chunk.start)?;
        let keys: Vec<KeyId> = chunk
            .keys
            .iter()
            .map(|k| intern_key(symbols, k, chunk.start + CHUNK_MS))
            .collect();
        let mut decoded = Vec::with_capacity(chunk.effects.len());
        for (i, &[offset, key, code, value]) in chunk.effects.iter().enumerate() {
            let key = usize::try_from(key).ok().and_then(|k| keys.get(k));
            let effect = decode_effect(code & !RETRACT, value);
            match (key, effect) {
                (Some(&key), Some(effect))
                    if (0..CHUNK_MS).contains(&offset) && offset % 1_000 == 0 =>
                {
                    decoded.push((chunk.start + offset, key, code & RETRACT != 0, effect));
                }
                _ => return Err(PartialError::BadEffect(i)),
            }
        }
        let agents = chunk.agents.decode(symbols)?;
        if let Some((_, e)) = agents
            .iter()
            .find(|(_, e)| !(chunk.start..chunk.start + CHUNK_MS).contains(&e.ts))
        {
            return Err(PartialError::OutOfRange("agent change time", e.ts));
        }
        if !self.enter(chunk.epoch) {
            return Ok(false);
        }
        self.remove_chunk(chunk.start);
        self.place(&decoded, 1);
        if !decoded.is_empty() {
            self.chunks.insert(chunk.start, decoded);
        }
        if !agents.is_empty() {
            let held = agents.iter().map(|(a, e)| (a.clone(), e.event)).collect();
            for (agent, entry) in agents {
                self.agents.insert(&agent, entry);
            }
            self.agent_chunks.insert(chunk.start, held);
        }
        Ok(true)
    }

    /// Replaces one hour of the owner's baseline; `false` for a stale owner's record.
    pub(crate) fn apply_baseline_hour(
        &mut self,
        record: &WireBaselineHour,
        symbols: &Symbols,
    ) -> Result<bool, PartialError> {
        if record.v != PARTIAL_VERSION {
            return Err(PartialError::Version(record.v));
        }
        check_time("baseline hour", record.hour)?;
        // Checked whole before the replica moves to a new epoch.
        let mut hour = BaselineHours::default();
        hour.replace(record, symbols)?;
        if !self.enter(record.epoch) {
            return Ok(false);
        }
        self.baseline.replace(record, symbols)?;
        Ok(true)
    }

    /// Forgets one chunk (a tombstone).
    pub(crate) fn remove_chunk(&mut self, start: i64) {
        if let Some(old) = self.chunks.remove(&start) {
            self.place(&old, -1);
        }
        for (agent, event) in self.agent_chunks.remove(&start).unwrap_or_default() {
            self.agents.remove(&agent, event);
        }
    }

    fn place(&mut self, effects: &[Exported], sign: i32) {
        for &(ts, key, retract, effect) in effects {
            let sign = if retract { -sign } else { sign };
            for (level, width) in self.cells.iter_mut().zip(&LEVELS_MS[1..]) {
                let start = ts.div_euclid(*width) * width;
                let cells = level.entry(start).or_default();
                let cell = cells.entry(key).or_default();
                effect.apply(cell, sign, &self.quantizer);
                if cell.is_zero() {
                    cells.remove(&key);
                    if cells.is_empty() {
                        level.remove(&start);
                    }
                }
            }
        }
    }

    /// Drops what ends at or before `before` (the owner's retention), and the baseline's
    /// hours before `baseline_before`.
    pub(crate) fn evict_before(&mut self, before: i64, baseline_before: i64) {
        self.baseline.evict_before(baseline_before);
        let first = before.div_euclid(CHUNK_MS) * CHUNK_MS;
        self.chunks = self.chunks.split_off(&first);
        let kept = self.agent_chunks.split_off(&first);
        for (agent, event) in std::mem::replace(&mut self.agent_chunks, kept)
            .into_values()
            .flatten()
        {
            self.agents.remove(&agent, event);
        }
        for (level, width) in self.cells.iter_mut().zip(&LEVELS_MS[1..]) {
            *level = level.split_off(&(before.div_euclid(*width) * width));
        }
    }

    /// Adds every contribution of `[from, to)` (whole seconds) into `out`, per key.
    pub(super) fn collect(&self, from: i64, to: i64, out: &mut impl Collect) {
        for (level, start, end) in cover(from, to) {
            if level == 0 {
                let first = start.div_euclid(CHUNK_MS) * CHUNK_MS;
                for chunk in self.chunks.range(first..end).map(|(_, c)| c) {
                    for &(ts, key, retract, effect) in chunk {
                        if ts >= start && ts < end {
                            let sign = if retract { -1 } else { 1 };
                            out.effect(key, &effect, sign, &self.quantizer);
                        }
                    }
                }
            } else {
                for cells in self.cells[level - 1].range(start..end).map(|(_, c)| c) {
                    for (key, cell) in cells {
                        out.cell(*key, cell);
                    }
                }
            }
        }
    }

    /// Contacts in queue per key: (key, count, oldest arrival).
    pub(super) fn waiting(&self) -> &[(KeyId, u64, i64)] {
        &self.waiting
    }

    /// Chunks held (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{
        Dimension, DimensionFilter, EngineConfig, EngineSet, SnapshotQuery, TrendShape, WindowSpec,
    };
    use crate::simulate::{SimulationConfig, Simulator};

    /// Ships what changed in `from`'s engines to `to`'s replicas, through JSON.
    fn ship(from: &EngineSet, to: &EngineSet, epoch: i64) {
        for p in from.partitions() {
            let engine = from.get(p).expect("engine");
            for start in engine.take_changed_chunks() {
                let chunk = engine.export_chunk(start, epoch);
                let chunk: PartialChunk =
                    serde_json::from_slice(&serde_json::to_vec(&chunk).expect("encode"))
                        .expect("decode");
                let applied = to.update_replica(p, |r, s| r.apply_chunk(&chunk, s));
                assert_eq!(applied, Ok(true));
            }
            for hour in engine.take_changed_baseline_hours() {
                let record = engine.export_baseline_hour(hour, epoch);
                let record: WireBaselineHour =
                    serde_json::from_slice(&serde_json::to_vec(&record).expect("encode"))
                        .expect("decode");
                let applied = to.update_replica(p, |r, s| r.apply_baseline_hour(&record, s));
                assert_eq!(applied, Ok(true));
            }
            let header = PartialHeader {
                v: PARTIAL_VERSION,
                owner: "a".into(),
                epoch: Some(epoch),
                ..engine.partial_header()
            };
            let header: PartialHeader =
                serde_json::from_slice(&serde_json::to_vec(&header).expect("encode"))
                    .expect("decode");
            assert_eq!(
                to.update_replica(p, |r, s| r.apply_header(header, epoch, s)),
                Ok(true)
            );
        }
    }

    fn queries() -> Vec<SnapshotQuery> {
        ["5m", "15m", "1h", "24h", "today"]
            .into_iter()
            .map(|w| SnapshotQuery {
                window: w.parse::<WindowSpec>().expect("window"),
                breakdown: vec![Dimension::Channel, Dimension::Queue, Dimension::Segment],
                ..SnapshotQuery::default()
            })
            .collect()
    }

    /// An instance consuming three partitions (publishing partials), and another that
    /// only merges what the first ships.
    fn owner_and_follower() -> (EngineSet, EngineSet) {
        let local = EngineSet::new(EngineConfig::default());
        local.enable_partials();
        for p in 0..3 {
            local.assign(p);
        }
        (local, EngineSet::new(EngineConfig::default()))
    }

    /// Applies `events` to `set`'s partition of each (keyed as Kafka producers key them).
    fn apply_keyed(set: &EngineSet, events: &[crate::event::EventRecord<'static>]) {
        for ev in events {
            let p = (crate::engine::id_hash(crate::event::event_key(ev)) % 3) as i32;
            set.get(p).expect("assigned").apply(ev);
        }
    }

    /// The snapshots of `query` on both instances, breakdown rows sorted (they come in
    /// interning order, which differs between instances).
    fn both_snapshots(
        local: &EngineSet,
        remote: &EngineSet,
        query: &SnapshotQuery,
    ) -> (vigie_proto::Snapshot, vigie_proto::Snapshot) {
        let (mut a, mut b) = (
            local.snapshot(query).expect("local"),
            remote.snapshot(query).expect("merged"),
        );
        a.breakdown.sort_by_key(|r| format!("{:?}", r.key));
        b.breakdown.sort_by_key(|r| format!("{:?}", r.key));
        (a, b)
    }

    #[test]
    fn a_replica_merges_to_exactly_the_local_view() {
        let (local, remote) = owner_and_follower();
        let events: Vec<_> = Simulator::new(SimulationConfig {
            contacts: Some(6_000),
            contacts_per_second: 2.0,
            seed: 5,
            ..SimulationConfig::default()
        })
        .collect();
        let (first, second) = events.split_at(events.len() / 2);
        for (round, batch) in [first, second].into_iter().enumerate() {
            apply_keyed(&local, batch);
            ship(&local, &remote, 7);
            for query in queries() {
                let (a, b) = both_snapshots(&local, &remote, &query);
                assert!(
                    a.total.arrivals > 0,
                    "round {round}: the window holds traffic"
                );
                assert!(
                    a.total.in_queue > 0 || round == 1,
                    "round {round}: contacts waiting"
                );
                assert_eq!(a, b, "round {round}, window {}", query.window);
            }
            let query = SnapshotQuery::default();
            assert_eq!(
                local.trend(&query, TrendShape::default()).expect("trend"),
                remote.trend(&query, TrendShape::default()).expect("trend")
            );
        }
    }

    #[test]
    fn baselines_compare_with_the_same_window_of_earlier_weeks_and_merge_exactly() {
        use crate::event::{EventKind, EventRecord};
        use vigie_proto::WindowBounds;
        let (local, remote) = owner_and_follower();
        let week = 7 * 86_400_000;
        let base = 1_795_597_200_000;
        let mut seed = 3u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        // 23 days of arrivals on two phone queues and chat, at random seconds (edge
        // minutes of windows are cut), busier in the last hour (a spike), some re-queued.
        let mut events = Vec::new();
        let mut arrivals: Vec<(i64, &str, &str)> = Vec::new();
        let end = base + 23 * 86_400_000;
        let mut ts = base;
        let mut i = 0;
        while ts < end {
            let (channel, queue) =
                [("phone", "billing"), ("phone", "sales"), ("chat", "web")][next(3) as usize];
            let mut ev = EventRecord::new(format!("a{i}"), EventKind::Arrived, ts, format!("i{i}"));
            ev.channel = Some(channel.into());
            ev.queue = Some(queue.into());
            events.push(ev);
            let mut final_queue = queue;
            if channel == "phone" && next(10) == 0 {
                // Moved to another queue: counted there, not twice.
                let mut q = EventRecord::new(
                    format!("q{i}"),
                    EventKind::Queued,
                    ts + 500,
                    format!("i{i}"),
                );
                q.queue = Some("retention".into());
                events.push(q);
                final_queue = "retention";
            }
            arrivals.push((ts, channel, final_queue));
            let gap = if ts > end - 3_600_000 { 20_000 } else { 60_000 };
            ts += 1 + next(gap) as i64;
            i += 1;
        }
        apply_keyed(&local, &events);
        ship(&local, &remote, 7);
        // Brute force: arrivals of a scope in a window, and with whole minutes cut by
        // proportion at the edges.
        let expected = |from: i64, to: i64, keep: &dyn Fn(&str, &str) -> bool| -> f64 {
            let minute = 60_000;
            let mut per_minute: BTreeMap<i64, f64> = BTreeMap::new();
            for (ts, c, q) in &arrivals {
                if keep(c, q) {
                    *per_minute
                        .entry(ts.div_euclid(minute) * minute)
                        .or_default() += 1.0;
                }
            }
            per_minute
                .iter()
                .map(|(m, n)| {
                    n * ((to.min(m + minute) - from.max(*m)).max(0) as f64) / minute as f64
                })
                .sum()
        };
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        for window in ["15m", "1h", "24h"] {
            let query = SnapshotQuery {
                window: window.parse().expect("window"),
                ..SnapshotQuery::default()
            };
            let (a, b) = both_snapshots(&local, &remote, &query);
            assert_eq!(a, b, "window {window}: the merged view is exact");
            let WindowBounds { from, to } = a.window;
            let total = a.total.baseline.expect("baseline");
            // 23 days of history: three whole weeks back.
            assert_eq!(total.weeks, 3, "window {window}");
            let weeks: Vec<f64> = (1..=3)
                .map(|k| expected(from - k * week, to - k * week, &|_, _| true))
                .collect();
            assert!(
                close(total.last_week, weeks[0]),
                "{window}: {total:?} vs {weeks:?}"
            );
            assert!(
                close(total.mean, weeks.iter().sum::<f64>() / 3.0),
                "{window}"
            );
            let billing = a.queues["billing"].baseline.expect("queue baseline");
            let last = expected(from - week, to - week, &|_, q| q == "billing");
            assert!(
                close(billing.last_week, last),
                "{window}: {billing:?} vs {last}"
            );
            let retention = a.queues["retention"].baseline.expect("re-queued");
            let last = expected(from - week, to - week, &|_, q| q == "retention");
            assert!(close(retention.last_week, last), "{window}");
            let phone = a.by_channel["phone"].baseline.expect("channel baseline");
            let last = expected(from - week, to - week, &|c, _| c == "phone");
            assert!(close(phone.last_week, last), "{window}");
            if window == "1h" {
                assert!(
                    total.vs_last_week.is_some_and(|v| v > 1.0),
                    "three times busier in the last hour: {total:?}"
                );
            }
        }
        // A filter on channel and queue keeps its baseline; on a reason it has none.
        let filtered = local
            .snapshot(&SnapshotQuery {
                filter: DimensionFilter(vec![(Dimension::Queue, "sales".into())]),
                ..SnapshotQuery::default()
            })
            .expect("snapshot");
        let WindowBounds { from, to } = filtered.window;
        let sales = expected(from - week, to - week, &|_, q| q == "sales");
        assert!(close(
            filtered.total.baseline.and_then(|b| b.last_week),
            sales
        ));
        let by_reason = local
            .snapshot(&SnapshotQuery {
                filter: DimensionFilter(vec![(Dimension::Reason, "x".into())]),
                ..SnapshotQuery::default()
            })
            .expect("snapshot");
        assert_eq!(by_reason.total.baseline, None);
    }

    #[test]
    fn agents_merge_exactly_including_what_was_folded_into_bases() {
        use crate::engine::AgentQuery;
        use crate::event::{AgentState, EventKind, EventRecord};
        let (local, remote) = owner_and_follower();
        let base = 1_795_597_200_000;
        let mut seed = 11u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let queues = ["billing", "sales", "tech"];
        // 30 hours of 40 agents changing state every 1 to 40 minutes (the oldest
        // changes are folded into bases, which must travel too).
        let mut events = Vec::new();
        for a in 0..40 {
            let mut ts = base + a * 977;
            let mut i = 0;
            while ts < base + 30 * 3_600_000 {
                let state = AgentState::ALL[next(5) as usize];
                let mut ev = EventRecord::agent(format!("e{a}-{i}"), ts, format!("ag{a}"), state);
                if i == 0 || next(6) == 0 {
                    ev.queues = Some(vec![
                        queues[next(3) as usize].into(),
                        queues[next(3) as usize].into(),
                    ]);
                    ev.site = Some(["lyon", "lille"][next(2) as usize].into());
                }
                if state == AgentState::Away {
                    ev.away_reason = Some(["lunch", "break"][next(2) as usize].into());
                }
                events.push(ev);
                ts += 60_000 * (1 + next(40) as i64);
                i += 1;
            }
        }
        events.sort_by_key(|e| e.ts_ms);
        let mut contact = EventRecord::new("k", EventKind::Arrived, base + 30 * 3_600_000, "k");
        contact.channel = Some("phone".into());
        let mut queued = EventRecord::new("kq", EventKind::Queued, base + 30 * 3_600_000, "k");
        queued.queue = Some("billing".into());
        events.extend([contact, queued]);
        let (first, second) = events.split_at(events.len() * 2 / 3);
        for (round, batch) in [first, second].into_iter().enumerate() {
            apply_keyed(&local, batch);
            ship(&local, &remote, 7);
            let mut queries = queries();
            queries.push(SnapshotQuery {
                breakdown: vec![Dimension::Queue, Dimension::Site],
                ..SnapshotQuery::default()
            });
            for query in queries {
                let (a, b) = both_snapshots(&local, &remote, &query);
                let staffed = a.total.staffing.as_ref().map_or(0, |s| s.staffed);
                assert!(staffed > 0, "round {round}: agents on the wall");
                assert_eq!(a, b, "round {round}, window {}", query.window);
            }
            let list = |set: &EngineSet| {
                set.agent_list(
                    WindowSpec::Last(3_600_000),
                    &AgentQuery {
                        limit: 100,
                        ..AgentQuery::default()
                    },
                )
                .expect("list")
            };
            assert_eq!(list(&local), list(&remote), "round {round}");
        }
        let folded = (0..3)
            .map(|p| {
                local
                    .get(p)
                    .expect("assigned")
                    .partial_header()
                    .agents
                    .folded
                    .len()
            })
            .sum::<usize>();
        assert!(folded > 0, "some changes were folded into bases");
    }

    /// A shift start: thousands of agents logging in within one chunk still make one
    /// record well under Kafka's 1 MB (names once, changes as arrays of indexes).
    #[test]
    fn thousands_of_logins_in_one_chunk_fit_a_record() {
        use crate::event::{AgentState, EventRecord};
        let engine = Engine::new(EngineConfig::default());
        let start = 1_795_597_200_000;
        for a in 0..10_000 {
            let mut ev = EventRecord::agent(
                format!("billing-{a:05}-1"),
                start + a % 10_000,
                format!("billing-{a:05}"),
                AgentState::Available,
            );
            ev.queues = Some(vec!["phone_billing".into(), "phone_general".into()]);
            ev.site = Some("lille".into());
            engine.apply(&ev);
        }
        let chunk = engine.export_chunk(start, 1);
        let bytes = serde_json::to_vec(&chunk).expect("json");
        assert_eq!(chunk.agents.changes.len(), 10_000);
        assert!(bytes.len() < 700_000, "{} bytes", bytes.len());
        let back: PartialChunk = serde_json::from_slice(&bytes).expect("decode");
        let symbols = Symbols::default();
        let mut replica = Replica::default();
        assert_eq!(replica.apply_chunk(&back, &symbols), Ok(true));
        let mut forged = back.clone();
        forged.agents.changes[0].0 = 99_999_999;
        assert!(matches!(
            Replica::default().apply_chunk(&forged, &symbols),
            Err(PartialError::OutOfRange("agent name index", _))
        ));
    }

    #[test]
    fn a_former_owner_is_fenced_and_a_new_owner_replaces_its_state() {
        let symbols = Symbols::default();
        let engine = Engine::new(EngineConfig::default());
        engine.track_changes();
        for ev in Simulator::new(SimulationConfig {
            contacts: Some(200),
            ..SimulationConfig::default()
        }) {
            engine.apply(&ev);
        }
        let starts = engine.take_changed_chunks();
        assert!(!starts.is_empty());
        let mut replica = Replica::default();
        for &start in &starts {
            assert_eq!(
                replica.apply_chunk(&engine.export_chunk(start, 10), &symbols),
                Ok(true)
            );
        }
        assert_eq!(replica.chunk_count(), starts.len());
        let header = PartialHeader {
            v: PARTIAL_VERSION,
            ..PartialHeader::default()
        };
        assert_eq!(replica.apply_header(header.clone(), 10, &symbols), Ok(true));
        // A zombie (epoch 9) publishing after the new claim is ignored.
        let first = *starts.first().expect("chunk");
        assert_eq!(
            replica.apply_chunk(&engine.export_chunk(first, 9), &symbols),
            Ok(false)
        );
        assert_eq!(replica.apply_header(header.clone(), 9, &symbols), Ok(false));
        // A new owner's claim (epoch 12) drops everything of epoch 10.
        assert_eq!(replica.apply_header(header, 12, &symbols), Ok(true));
        assert_eq!(replica.chunk_count(), 0);
        let mut bad = engine.export_chunk(first, 12);
        bad.effects[0][2] = 40;
        assert_eq!(
            replica.apply_chunk(&bad, &symbols),
            Err(PartialError::BadEffect(0))
        );
    }

    #[test]
    fn forged_numbers_are_refused_before_any_arithmetic() {
        let symbols = Symbols::default();
        let engine = Engine::new(EngineConfig::default());
        engine.track_changes();
        for ev in Simulator::new(SimulationConfig {
            contacts: Some(200),
            ..SimulationConfig::default()
        }) {
            engine.apply(&ev);
        }
        let is_answer = |e: &[i64; 4]| (6..=8).contains(&(e[2] & !RETRACT));
        let good = engine
            .take_changed_chunks()
            .into_iter()
            .map(|start| engine.export_chunk(start, 3))
            .find(|c| c.effects.iter().any(is_answer))
            .expect("a chunk with an answer");
        let answer = good.effects.iter().position(is_answer).expect("answer");
        let mut replica = Replica::default();
        for value in [-1, i64::MAX, super::super::interaction::MAX_DURATION_MS + 1] {
            let mut forged = good.clone();
            forged.effects[answer][3] = value;
            assert_eq!(
                replica.apply_chunk(&forged, &symbols),
                Err(PartialError::BadEffect(answer)),
                "wait {value}"
            );
        }
        let mut far = good.clone();
        far.start = (i64::MAX / CHUNK_MS) * CHUNK_MS;
        assert!(matches!(
            replica.apply_chunk(&far, &symbols),
            Err(PartialError::OutOfRange("chunk start", _))
        ));
        let header = PartialHeader {
            v: PARTIAL_VERSION,
            ..PartialHeader::default()
        };
        for (what, forged) in [
            (
                "watermark",
                PartialHeader {
                    watermark: Some(i64::MIN),
                    ..header.clone()
                },
            ),
            (
                "published_at",
                PartialHeader {
                    published_at: i64::MIN,
                    ..header.clone()
                },
            ),
            (
                "waiting count",
                PartialHeader {
                    waiting: vec![(WireKey::default(), u64::MAX, 0)],
                    ..header.clone()
                },
            ),
        ] {
            assert!(
                matches!(
                    replica.apply_header(forged, 3, &symbols),
                    Err(PartialError::OutOfRange(w, _)) if w == what
                ),
                "{what}"
            );
        }
        assert_eq!(
            replica.apply_chunk(&good, &symbols),
            Ok(true),
            "the real one"
        );
    }

    #[test]
    fn every_effect_survives_the_wire() {
        let mut all = vec![Effect::Deflection, Effect::Arrival { repeat: None }];
        for (repeat, cross_channel) in [(false, false), (true, false), (true, true), (false, true)]
        {
            all.push(Effect::Arrival {
                repeat: Some(RepeatClass {
                    repeat,
                    cross_channel,
                }),
            });
        }
        for sl_met in [None, Some(false), Some(true)] {
            all.push(Effect::Answer {
                wait_ms: 1234,
                sl_met,
            });
        }
        for short in [false, true] {
            for sl_eligible in [false, true] {
                all.push(Effect::Abandon {
                    wait_ms: 77,
                    short,
                    sl_eligible,
                });
            }
        }
        for handle_ms in [None, Some(9_000)] {
            for once_and_done in [None, Some(false), Some(true)] {
                all.push(Effect::End {
                    handle_ms,
                    once_and_done,
                });
            }
        }
        let mut codes = std::collections::BTreeSet::new();
        for effect in all {
            let (code, value) = encode_effect(effect);
            assert!(codes.insert(code), "code {code} used twice");
            assert!(code < RETRACT);
            assert_eq!(decode_effect(code, value), Some(effect));
        }
        assert_eq!(codes.len(), 19);
        assert_eq!(decode_effect(19, 0), None);
    }
}
