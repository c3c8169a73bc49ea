//! Owns Asterisk's `queue_log`: parsing its lines (`epoch|callid|queue|agent|EVENT|data…`,
//! whatever the version writes) and turning them into contract events, contacts and
//! agent states, with the reasons a line was left out.
//!
//! Mapping (README "Connecting your ACD"): a call is one `phone` contact, its id the call
//! id, counted in the queue it first entered; `ENTERQUEUE` = arrived and queued (the
//! caller id as customer); `CONNECT` = answered by the agent; `ABANDON` and the
//! unanswered exits (`EXITWITHTIMEOUT`, `EXITEMPTY`, `EXITWITHKEY`) = abandoned (an
//! answer after a failover to another queue makes it answered: the engine keeps an
//! abandoned contact for `engine.failover_grace`); `COMPLETEAGENT`, `COMPLETECALLER` and
//! the transfers = ended. Agents: `ADDMEMBER` / `REMOVEMEMBER` change the queues they
//! serve (logged out with none left), `AGENTLOGIN` / `AGENTLOGOFF`, `PAUSE*` = away with
//! the pause reason, `UNPAUSE*` = available, `CONNECT` = on contact, the end of a call =
//! available again (the log says nothing of wrap-up). Each event's id derives from its
//! line, so reading a line twice only makes redeliveries.

use std::collections::{BTreeSet, HashMap};

use vigie_proto::AgentState;

use crate::event::{EventKind, EventRecord};

/// Why a line was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("fewer than 5 fields (epoch|callid|queue|agent|EVENT)")]
    TooShort,
    #[error("the time {0:?} is not a Unix epoch in seconds")]
    BadEpoch(String),
    #[error("unknown event {0:?}")]
    UnknownVerb(String),
}

/// One line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogLine<'a> {
    pub epoch: i64,
    pub callid: &'a str,
    pub queue: &'a str,
    pub agent: &'a str,
    pub verb: &'a str,
    pub data: Vec<&'a str>,
}

/// Splits a line (without its end of line).
pub fn parse_line(line: &str) -> Result<QueueLogLine<'_>, LineError> {
    let mut fields = line.split('|');
    let (Some(epoch), Some(callid), Some(queue), Some(agent), Some(verb)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(LineError::TooShort);
    };
    let epoch = epoch
        .trim()
        .parse::<i64>()
        .ok()
        // Up to the year 2200: beyond, not a queue_log time (nor one the engine takes).
        .filter(|e| (0..7_258_118_400).contains(e))
        .ok_or_else(|| LineError::BadEpoch(epoch.chars().take(40).collect()))?;
    Ok(QueueLogLine {
        epoch,
        callid: callid.trim(),
        queue: queue.trim(),
        agent: agent.trim(),
        verb: verb.trim(),
        data: fields.map(str::trim).collect(),
    })
}

/// Verbs known and deliberately not mapped (queue and system housekeeping).
const IGNORED: [&str; 8] = [
    "CONFIGRELOAD",
    "DID",
    "INFO",
    "SYSCOMPAT",
    "PENALTY",
    "RINGCANCELED",
    "ENTERQUEUEUNANSWERED",
    "REASON",
];

/// What became of the lines read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertReport {
    pub lines: u64,
    /// Blank lines (skipped silently).
    pub blank: u64,
    pub events: u64,
    /// Calls that entered a queue.
    pub calls: u64,
    /// ENTERQUEUE lines of a call already in: a failover to another queue (counted in
    /// the first) or the same line twice.
    pub failovers: u64,
    /// Lines of a call whose ENTERQUEUE is not in the log: in no KPI.
    pub orphan_lines: u64,
    /// Known verbs that change no KPI (QUEUESTART, DID…).
    pub ignored: u64,
    /// An agent rang and did not answer.
    pub ring_no_answer: u64,
    /// Calls in progress when Asterisk restarted (`QUEUESTART`): ended then.
    pub cut_by_restart: u64,
    /// Unknown verbs and malformed lines.
    pub refused: u64,
    /// The first refused lines: (line number, why).
    pub first_refused: Vec<(u64, LineError)>,
}

/// The refused lines with their number, then what became of all of them (what the
/// commands say on stderr).
impl std::fmt::Display for ConvertReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (line, why) in &self.first_refused {
            writeln!(f, "line {line}: refused: {why}")?;
        }
        if self.refused > self.first_refused.len() as u64 {
            writeln!(f, "... {} refused lines in all", self.refused)?;
        }
        write!(
            f,
            "queue_log: {} lines, {} calls ({} failovers), {} events; {} lines of calls not entered in the log, {} ignored, {} refused, {} rings unanswered",
            self.lines, self.calls, self.failovers, self.events, self.orphan_lines, self.ignored, self.refused, self.ring_no_answer
        )
    }
}

/// At most this many refused lines are kept with their number.
const KEPT_REFUSALS: usize = 100;

#[derive(Debug, Clone)]
struct Call {
    /// The caller id: on every event of the call, which the key convention then keeps
    /// on one partition.
    customer: Option<String>,
    answered: bool,
    ended: bool,
    /// Its latest line (ms): calls silent for a day are forgotten.
    last: i64,
}

impl Call {
    /// An event of this call (`callid`), with its key: the caller id.
    fn event(&self, id: String, kind: EventKind, ts: i64, callid: &str) -> EventRecord<'static> {
        let mut ev = EventRecord::new(id, kind, ts, callid.to_string());
        ev.customer_id = self.customer.clone().map(Into::into);
        ev
    }
}

/// A call silent this long is forgotten (the engine's interaction TTL).
const CALL_TTL_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Default)]
struct Agent {
    queues: BTreeSet<String>,
    state: Option<AgentState>,
    /// The call it was last connected to.
    call: Option<String>,
}

/// Turns queue_log lines into events, in the order of the file.
#[derive(Debug, Default)]
pub struct AsteriskConverter {
    calls: HashMap<String, Call>,
    /// Newest line time seen (ms).
    newest: i64,
    agents: HashMap<String, Agent>,
    pub report: ConvertReport,
}

/// A call id that names no call (member changes from the CLI or the manager).
fn is_call(callid: &str) -> bool {
    !callid.is_empty() && !matches!(callid, "NONE" | "MANAGER" | "CLI" | "REALTIME" | "AUTO")
}

/// A field that says nothing (`NONE`, empty).
fn given(field: &str) -> Option<&str> {
    (!field.is_empty() && field != "NONE" && field != "unknown").then_some(field)
}

impl AsteriskConverter {
    pub fn new() -> AsteriskConverter {
        AsteriskConverter::default()
    }

    /// Converts line `number` (1-based) into `out`; a refused line is counted (and its
    /// reason returned) and changes nothing.
    pub fn convert(
        &mut self,
        number: u64,
        line: &str,
        out: &mut Vec<EventRecord<'static>>,
    ) -> Result<(), LineError> {
        self.report.lines += 1;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            self.report.blank += 1;
            return Ok(());
        }
        let before = out.len();
        let result = parse_line(line).and_then(|l| {
            if let Some(c) = self.calls.get_mut(l.callid) {
                c.last = c.last.max(l.epoch * 1_000);
            }
            self.newest = self.newest.max(l.epoch * 1_000);
            self.apply(&l, line, out)
        });
        // Bounded memory: calls silent for a day are forgotten, every 10,000 lines.
        if self.report.lines.is_multiple_of(10_000) {
            let horizon = self.newest - CALL_TTL_MS;
            self.calls.retain(|_, c| c.last >= horizon);
        }
        if let Err(error) = &result {
            self.report.refused += 1;
            if self.report.first_refused.len() < KEPT_REFUSALS {
                self.report.first_refused.push((number, error.clone()));
            }
        }
        self.report.events += (out.len() - before) as u64;
        result
    }

    fn apply(
        &mut self,
        l: &QueueLogLine<'_>,
        raw: &str,
        out: &mut Vec<EventRecord<'static>>,
    ) -> Result<(), LineError> {
        let ts = l.epoch * 1_000;
        let hash = crate::engine::id_hash(raw);
        let mut n = 0u8;
        let mut id = || {
            n += 1;
            format!("ast-{hash:016x}-{n}")
        };
        let call =
            |kind: EventKind, id: String| EventRecord::new(id, kind, ts, l.callid.to_string());
        match l.verb {
            "ENTERQUEUE" => {
                if !is_call(l.callid) {
                    self.report.orphan_lines += 1;
                    return Ok(());
                }
                if self.calls.contains_key(l.callid) {
                    // Failover: the call stays one contact, in the queue it first entered.
                    self.report.failovers += 1;
                    return Ok(());
                }
                // data: url|callerid[|position]
                let customer = l.data.get(1).and_then(|c| given(c)).map(str::to_string);
                self.calls.insert(
                    l.callid.to_string(),
                    Call {
                        customer: customer.clone(),
                        answered: false,
                        ended: false,
                        last: ts,
                    },
                );
                self.report.calls += 1;
                let mut arrived = call(EventKind::Arrived, id());
                arrived.channel = Some("phone".into());
                arrived.queue = given(l.queue).map(|q| q.to_string().into());
                arrived.customer_id = customer.map(Into::into);
                let mut queued = call(EventKind::Queued, id());
                queued.queue = arrived.queue.clone();
                queued.customer_id = arrived.customer_id.clone();
                out.push(arrived);
                out.push(queued);
            }
            "CONNECT" => {
                self.agent_state(l, ts, AgentState::OnContact, None, id(), out);
                if let Some(agent) = given(l.agent).and_then(|a| self.agents.get_mut(a)) {
                    agent.call = Some(l.callid.to_string());
                }
                match self.calls.get_mut(l.callid) {
                    Some(c) if !c.answered => {
                        c.answered = true;
                        let mut answered = c.event(id(), EventKind::Answered, ts, l.callid);
                        answered.agent_id = given(l.agent).map(|a| a.to_string().into());
                        out.push(answered);
                    }
                    Some(_) => {}
                    None => self.report.orphan_lines += 1,
                }
            }
            "ABANDON" | "EXITWITHTIMEOUT" | "EXITEMPTY" | "EXITWITHKEY" => {
                match self.calls.get(l.callid) {
                    Some(c) if !c.answered && !c.ended => {
                        out.push(c.event(id(), EventKind::Abandoned, ts, l.callid));
                    }
                    Some(_) => {}
                    None => self.report.orphan_lines += 1,
                }
            }
            "COMPLETEAGENT" | "COMPLETECALLER" | "TRANSFER" | "BLINDTRANSFER"
            | "ATTENDEDTRANSFER" => {
                // An attended transfer is logged with the consult call's id: the
                // agent's own call ends too.
                let agents_call = given(l.agent)
                    .and_then(|a| self.agents.get_mut(a))
                    .and_then(|a| a.call.take())
                    .filter(|c| c != l.callid);
                self.agent_state(l, ts, AgentState::Available, None, id(), out);
                let mut known = false;
                for callid in std::iter::once(l.callid.to_string()).chain(agents_call) {
                    if let Some(c) = self.calls.get_mut(&callid) {
                        known = true;
                        if !c.ended {
                            c.ended = true;
                            out.push(c.event(id(), EventKind::Ended, ts, &callid));
                        }
                    }
                }
                if !known {
                    self.report.orphan_lines += 1;
                }
            }
            "QUEUESTART" => {
                // Asterisk (re)started: the calls in progress were cut.
                let mut cut: Vec<(&String, &Call)> =
                    self.calls.iter().filter(|(_, c)| !c.ended).collect();
                cut.sort_unstable_by_key(|(id, _)| *id);
                for (callid, c) in cut {
                    out.push(c.event(id(), EventKind::Ended, ts, callid));
                    self.report.cut_by_restart += 1;
                }
                for c in self.calls.values_mut() {
                    c.ended = true;
                }
                self.report.ignored += 1;
            }
            "RINGNOANSWER" => self.report.ring_no_answer += 1,
            "ADDMEMBER" | "REMOVEMEMBER" => {
                let Some(name) = given(l.agent) else {
                    self.report.orphan_lines += 1;
                    return Ok(());
                };
                let agent = self.agents.entry(name.to_string()).or_default();
                if let Some(q) = given(l.queue) {
                    if l.verb == "ADDMEMBER" {
                        agent.queues.insert(q.to_string());
                    } else {
                        agent.queues.remove(q);
                    }
                }
                let state = match (agent.queues.is_empty(), agent.state) {
                    (true, _) => AgentState::LoggedOut,
                    (false, None | Some(AgentState::LoggedOut)) => AgentState::Available,
                    (false, Some(s)) => s,
                };
                let queues = agent.queues.iter().cloned().collect();
                self.agent_state(l, ts, state, Some(queues), id(), out);
            }
            "AGENTLOGIN" => self.agent_state(l, ts, AgentState::Available, None, id(), out),
            "AGENTLOGOFF" => self.agent_state(l, ts, AgentState::LoggedOut, None, id(), out),
            "PAUSE" | "PAUSEALL" => {
                let reason = l.data.first().and_then(|r| given(r)).map(str::to_string);
                self.agent_state(l, ts, AgentState::Away, None, id(), out);
                if let (Some(reason), Some(ev)) = (reason, out.last_mut()) {
                    if ev.kind == EventKind::AgentState {
                        ev.away_reason = Some(reason.into());
                    }
                }
            }
            "UNPAUSE" | "UNPAUSEALL" => {
                self.agent_state(l, ts, AgentState::Available, None, id(), out)
            }
            verb if IGNORED.contains(&verb) => self.report.ignored += 1,
            verb => return Err(LineError::UnknownVerb(verb.chars().take(40).collect())),
        }
        Ok(())
    }

    /// An agent's new state (its queues if they changed); nothing for a line without
    /// an agent.
    fn agent_state(
        &mut self,
        l: &QueueLogLine<'_>,
        ts: i64,
        state: AgentState,
        queues: Option<Vec<String>>,
        id: String,
        out: &mut Vec<EventRecord<'static>>,
    ) {
        let Some(name) = given(l.agent) else {
            return;
        };
        let agent = self.agents.entry(name.to_string()).or_default();
        agent.state = Some(state);
        // An agent first seen on a call (no ADDMEMBER in the log yet) serves that queue.
        let queues = queues.or_else(|| {
            let q = given(l.queue)?;
            agent
                .queues
                .insert(q.to_string())
                .then(|| agent.queues.iter().cloned().collect())
        });
        let mut ev = EventRecord::agent(id, ts, name.to_string(), state);
        ev.queues = queues.map(|q: Vec<String>| q.into_iter().map(Into::into).collect());
        out.push(ev);
    }
}

/// Why reading a queue_log stopped.
#[derive(Debug, thiserror::Error)]
pub enum QueueLogError {
    #[error("reading the queue_log: {0}")]
    Io(#[from] std::io::Error),
    #[error("--strict: line {0}: {1}")]
    Strict(u64, LineError),
}

/// Reads a whole queue_log, handing each event to `each`; with `strict`, stops at the
/// first refused line.
pub fn read_queue_log(
    mut reader: impl std::io::BufRead,
    strict: bool,
    mut each: impl FnMut(EventRecord<'static>),
) -> Result<ConvertReport, QueueLogError> {
    let mut converter = AsteriskConverter::new();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        number += 1;
        let line = String::from_utf8_lossy(&buf);
        if let Err(e) = converter.convert(number, &line, &mut events) {
            if strict {
                return Err(QueueLogError::Strict(number, e));
            }
        }
        events.drain(..).for_each(&mut each);
    }
    Ok(converter.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(lines: &str) -> (Vec<EventRecord<'static>>, ConvertReport) {
        let mut c = AsteriskConverter::new();
        let mut out = Vec::new();
        for (i, line) in lines.lines().enumerate() {
            let _ = c.convert(i as u64 + 1, line, &mut out);
        }
        (out, c.report)
    }

    fn kinds<'a>(events: &'a [EventRecord<'_>]) -> Vec<(EventKind, &'a str, i64)> {
        events
            .iter()
            .filter(|e| e.kind != EventKind::AgentState)
            .map(|e| (e.kind, &*e.interaction_id, e.ts_ms))
            .collect()
    }

    #[test]
    fn a_call_answered_then_completed() {
        let (events, report) = convert(
            "1000000000|c1|billing|NONE|ENTERQUEUE||0612345678|1\n\
             1000000012|c1|billing|SIP/101|CONNECT|12|c1.2|3\n\
             1000000100|c1|billing|SIP/101|COMPLETECALLER|12|88|1\n",
        );
        assert_eq!(
            kinds(&events),
            [
                (EventKind::Arrived, "c1", 1_000_000_000_000),
                (EventKind::Queued, "c1", 1_000_000_000_000),
                (EventKind::Answered, "c1", 1_000_000_012_000),
                (EventKind::Ended, "c1", 1_000_000_100_000),
            ]
        );
        let arrived = &events[0];
        assert_eq!(arrived.channel.as_deref(), Some("phone"));
        assert_eq!(arrived.queue.as_deref(), Some("billing"));
        assert_eq!(arrived.customer_id.as_deref(), Some("0612345678"));
        let agent: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::AgentState)
            .map(|e| (e.agent_state, e.queues.clone()))
            .collect();
        assert_eq!(
            agent,
            [
                (Some(AgentState::OnContact), Some(vec!["billing".into()])),
                (Some(AgentState::Available), None),
            ]
        );
        assert_eq!((report.calls, report.events, report.refused), (1, 6, 0));
        // Every event of the call has the caller's key: one partition, one engine.
        let keys: Vec<&str> = events
            .iter()
            .filter(|e| e.kind != EventKind::AgentState)
            .map(crate::event::event_key)
            .collect();
        assert_eq!(keys, ["0612345678"; 4]);
    }

    #[test]
    fn exits_are_abandons_and_a_failover_answer_keeps_one_contact() {
        let (events, report) = convert(
            "100000000|c2|sales|NONE|ENTERQUEUE||NONE|1\n\
             100000060|c2|sales|NONE|EXITWITHTIMEOUT|1|1|60\n\
             100000060|c2|overflow|NONE|ENTERQUEUE||NONE|1\n\
             100000075|c2|overflow|Agent/7|CONNECT|15|x|2\n\
             100000200|c2|overflow|Agent/7|COMPLETEAGENT|15|125|1\n\
             100000300|c3|sales|NONE|ENTERQUEUE|url|555\n\
             100000309|c3|sales|NONE|EXITWITHKEY|5|1|1|9\n",
        );
        assert_eq!(
            kinds(&events)
                .iter()
                .map(|(k, i, _)| (*k, *i))
                .collect::<Vec<_>>(),
            [
                (EventKind::Arrived, "c2"),
                (EventKind::Queued, "c2"),
                (EventKind::Abandoned, "c2"),
                (EventKind::Answered, "c2"),
                (EventKind::Ended, "c2"),
                (EventKind::Arrived, "c3"),
                (EventKind::Queued, "c3"),
                (EventKind::Abandoned, "c3"),
            ]
        );
        assert_eq!(events[0].customer_id, None, "NONE is no caller id");
        assert_eq!(events[0].queue.as_deref(), Some("sales"), "the first queue");
        assert_eq!((report.calls, report.failovers), (2, 1));
    }

    #[test]
    fn agents_follow_members_logins_and_pauses() {
        let (events, _) = convert(
            "100|MANAGER|sales|SIP/5|ADDMEMBER|\n\
             101|MANAGER|support|SIP/5|ADDMEMBER|\n\
             102|NONE|sales|SIP/5|PAUSE|lunch\n\
             103|NONE|NONE|SIP/5|UNPAUSEALL|\n\
             104|MANAGER|sales|SIP/5|REMOVEMEMBER|\n\
             105|MANAGER|support|SIP/5|REMOVEMEMBER|\n\
             106|NONE|NONE|Agent/9|AGENTLOGIN|SIP/9\n\
             107|NONE|NONE|Agent/9|AGENTLOGOFF|SIP/9|120\n",
        );
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.agent_id.as_deref().unwrap_or_default().to_string(),
                    e.agent_state,
                    e.away_reason.as_deref().map(str::to_string),
                    e.queues
                        .as_ref()
                        .map(|q| q.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                )
            })
            .collect();
        let s = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            seen,
            [
                (
                    "SIP/5".into(),
                    Some(AgentState::Available),
                    None,
                    s(&["sales"])
                ),
                (
                    "SIP/5".into(),
                    Some(AgentState::Available),
                    None,
                    s(&["sales", "support"])
                ),
                (
                    "SIP/5".into(),
                    Some(AgentState::Away),
                    Some("lunch".into()),
                    None
                ),
                ("SIP/5".into(), Some(AgentState::Available), None, None),
                (
                    "SIP/5".into(),
                    Some(AgentState::Available),
                    None,
                    s(&["support"])
                ),
                ("SIP/5".into(), Some(AgentState::LoggedOut), None, s(&[])),
                ("Agent/9".into(), Some(AgentState::Available), None, None),
                ("Agent/9".into(), Some(AgentState::LoggedOut), None, None),
            ]
        );
    }

    #[test]
    fn messy_lines_are_counted_with_their_number_and_never_fatal() {
        let (events, report) = convert(
            "1000|NONE|NONE|NONE|QUEUESTART|\n\
             \n\
             garbage\n\
             12x|c|q|NONE|ENTERQUEUE||1\n\
             1500000000|c9|q|NONE|FROBNICATE|1\n\
             1500000000|c8|q|SIP/1|CONNECT|1|x|1\n\
             1500000001|c8|q|SIP/1|COMPLETEAGENT|1|2|1\n",
        );
        assert_eq!(report.blank, 1);
        assert_eq!(report.ignored, 1);
        assert_eq!(report.refused, 3);
        assert_eq!(
            report.first_refused,
            [
                (3, LineError::TooShort),
                (4, LineError::BadEpoch("12x".into())),
                (5, LineError::UnknownVerb("FROBNICATE".into())),
            ]
        );
        // A call whose ENTERQUEUE is not in the log counts in no KPI (its agent's
        // states still count).
        assert_eq!(report.orphan_lines, 2);
        assert!(events.iter().all(|e| e.kind == EventKind::AgentState));
    }

    #[test]
    fn the_same_line_twice_gives_the_same_event_ids() {
        let line = "1546015415|1546015415.757927|201|NONE|ENTERQUEUE||+13238679471|1";
        let (a, _) = convert(line);
        let mut c = AsteriskConverter::new();
        let mut b = Vec::new();
        c.convert(9, line, &mut b).expect("converted");
        assert_eq!(
            a.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(),
            b.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>()
        );
        assert_ne!(a[0].event_id, a[1].event_id);
    }
}
