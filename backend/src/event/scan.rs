//! Owns the fast paths of decoding: a scanner for the flat JSON object of the contract
//! and a parser for the usual shape of its timestamps.
//!
//! Both take only what they are sure of, and say `None` for anything else (an escape
//! in a string, a number, a nested object, a duplicate key, an unusual timestamp); the
//! general decoders (serde_json, jiff) then decide, and report the errors. So a fast
//! path never accepts what the general one refuses nor reads anything differently: the
//! unit tests compare them on random and mutated records.

use std::borrow::Cow;
use std::cell::Cell;

use super::EventRecord;

/// What a line says that the record keeps only once read (its type, its time, its
/// agent state) or required (its ids).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Head<'a> {
    pub(super) event_id: Option<Cow<'a, str>>,
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) ts: Option<Cow<'a, str>>,
    /// The time, when written the usual way (then `ts` is not kept).
    pub(super) ts_ms: Option<i64>,
    pub(super) interaction_id: Option<Cow<'a, str>>,
    pub(super) state: Option<Cow<'a, str>>,
}

/// The object of one JSON line, when it is a flat object of plain strings, booleans,
/// nulls and arrays of plain strings (no escapes), with no duplicate key: fills `head`
/// and the record's optional fields in `out` (both start empty, `out` blank: a
/// field the line does not have is left as it is). On `None` they may hold part of
/// the line. The fields go straight to their place in the record, which the caller
/// keeps in its vector: a record through an intermediate struct cost a tenth of
/// decoding.
pub(super) fn scan_event<'a>(
    bytes: &'a [u8],
    head: &mut Head<'a>,
    out: &mut EventRecord<'a>,
) -> Option<()> {
    // Checked once for the whole line: every string sliced from it is then valid.
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut seen = 0u32;
    s.expect(b'{')?;
    if s.peek()? == b'}' {
        s.at += 1;
    } else {
        loop {
            s.expect(b'"')?;
            let field = match s.usual_key() {
                Some(field) => field,
                None => {
                    let key = s.string_rest()?;
                    s.expect(b':')?;
                    Field::of(key)
                }
            };
            // A bit of `seen` per field: a duplicate key is left to serde, which reports it.
            macro_rules! field {
                ($bit:expr, $slot:expr, $read:expr) => {{
                    if seen & (1 << $bit) != 0 {
                        return None;
                    }
                    seen |= 1 << $bit;
                    $slot = $read;
                }};
            }
            match field {
                Field::EventId => field!(0, head.event_id, s.nullable_string()?),
                Field::Kind => field!(1, head.kind, s.nullable_string()?),
                Field::Ts => match s.usual_time() {
                    Some(ms) => field!(2, head.ts_ms, Some(ms)),
                    None => field!(2, head.ts, s.nullable_string()?),
                },
                Field::InteractionId => field!(3, head.interaction_id, s.nullable_string()?),
                Field::CustomerId => field!(4, out.customer_id, s.nullable_string()?),
                Field::Channel => field!(5, out.channel, s.nullable_string()?),
                Field::Queue => field!(6, out.queue, s.nullable_string()?),
                Field::Reason => field!(7, out.reason, s.nullable_string()?),
                Field::Segment => field!(8, out.segment, s.nullable_string()?),
                Field::Site => field!(9, out.site, s.nullable_string()?),
                Field::DeflectedTo => field!(10, out.deflected_to, s.nullable_string()?),
                Field::Resolved => field!(11, out.resolved, s.nullable_bool()?),
                Field::AgentId => field!(12, out.agent_id, s.nullable_string()?),
                Field::State => field!(13, head.state, s.nullable_string()?),
                Field::AwayReason => field!(14, out.away_reason, s.nullable_string()?),
                Field::Queues => field!(15, out.queues, s.nullable_strings()?),
                Field::Other => s.skip_simple_value()?,
            }
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.at == s.bytes.len()).then_some(())
}

/// A field of the contract, by its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    EventId,
    Kind,
    Ts,
    InteractionId,
    CustomerId,
    Channel,
    Queue,
    Reason,
    Segment,
    Site,
    DeflectedTo,
    Resolved,
    AgentId,
    State,
    AwayReason,
    Queues,
    /// Not one of the contract's: its value is skipped.
    Other,
}

impl Field {
    fn of(key: &str) -> Field {
        match key {
            "event_id" => Field::EventId,
            "type" => Field::Kind,
            "ts" => Field::Ts,
            "interaction_id" => Field::InteractionId,
            "customer_id" => Field::CustomerId,
            "channel" => Field::Channel,
            "queue" => Field::Queue,
            "reason" => Field::Reason,
            "segment" => Field::Segment,
            "site" => Field::Site,
            "deflected_to" => Field::DeflectedTo,
            "resolved" => Field::Resolved,
            "agent_id" => Field::AgentId,
            "state" => Field::State,
            "away_reason" => Field::AwayReason,
            "queues" => Field::Queues,
            _ => Field::Other,
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not white space, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        // Compact JSON has none: one comparison for the usual case (white space is
        // at most b' ').
        let b = *self.bytes.get(self.at)?;
        if b > b' ' {
            return Some(b);
        }
        self.skip_ws();
        self.bytes.get(self.at).copied()
    }

    /// The next byte that is not white space, consumed.
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// After a key's opening quote: its field, when the key is one of the contract's
    /// written the usual way (its bytes, the closing quote and the colon, nothing
    /// between), read at once past the colon; else `None`, nothing read. The first byte
    /// leaves one to three keys to compare, with no search for the quote.
    #[inline(always)]
    fn usual_key(&mut self) -> Option<Field> {
        let rest = self.bytes.get(self.at..)?;
        macro_rules! one_of {
            ($($key:literal => $field:expr),+) => {{
                $(
                    if rest.starts_with($key) {
                        self.at += $key.len();
                        return Some($field);
                    }
                )+
                None
            }};
        }
        match rest.first()? {
            b'e' => one_of!(b"event_id\":" => Field::EventId),
            b't' => one_of!(b"type\":" => Field::Kind, b"ts\":" => Field::Ts),
            b'i' => one_of!(b"interaction_id\":" => Field::InteractionId),
            b'c' => {
                one_of!(b"customer_id\":" => Field::CustomerId, b"channel\":" => Field::Channel)
            }
            b'q' => one_of!(b"queue\":" => Field::Queue, b"queues\":" => Field::Queues),
            b'r' => one_of!(b"reason\":" => Field::Reason, b"resolved\":" => Field::Resolved),
            b's' => one_of!(
                b"segment\":" => Field::Segment,
                b"site\":" => Field::Site,
                b"state\":" => Field::State
            ),
            b'd' => one_of!(b"deflected_to\":" => Field::DeflectedTo),
            b'a' => {
                one_of!(b"agent_id\":" => Field::AgentId, b"away_reason\":" => Field::AwayReason)
            }
            _ => None,
        }
    }

    /// A time written the usual way ([`parse_usual_timestamp`]) in its quotes, read
    /// with no search for the closing one; else `None`, nothing read.
    #[inline(always)]
    fn usual_time(&mut self) -> Option<i64> {
        let [b'"', time @ .., b'"'] = self.bytes.get(self.at..self.at + 26)? else {
            return None;
        };
        let ms = parse_usual_timestamp(time)?;
        self.at += 26;
        Some(ms)
    }

    /// A string without escapes or control characters.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.string_rest()
    }

    /// The rest of a string whose opening quote was read.
    #[inline(always)]
    fn string_rest(&mut self) -> Option<&'a str> {
        let start = self.at;
        let end = find_special(self.bytes, start);
        if *self.bytes.get(end)? != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// `null` or a plain string. The outer `None`: not one of those.
    #[allow(clippy::option_option)]
    #[inline(always)]
    fn nullable_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.string()?)))
    }

    #[allow(clippy::option_option)]
    fn nullable_bool(&mut self) -> Option<Option<bool>> {
        match self.peek()? {
            b'n' => self.literal("null").map(|()| None),
            b't' => self.literal("true").map(|()| Some(true)),
            b'f' => self.literal("false").map(|()| Some(false)),
            _ => None,
        }
    }

    /// `null` or an array of plain strings.
    #[allow(clippy::option_option)]
    fn nullable_strings(&mut self) -> Option<Option<Vec<Cow<'a, str>>>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        self.expect(b'[')?;
        let mut out = Vec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Some(out));
        }
        loop {
            out.push(Cow::Borrowed(self.string()?));
            match self.next()? {
                b',' => continue,
                b']' => return Some(Some(out)),
                _ => return None,
            }
        }
    }

    /// The value of an unknown field, when it is a plain string, a number, a boolean or
    /// null.
    fn skip_simple_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'n' => self.literal("null"),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let digits = |s: &mut Self| {
            let start = s.at;
            while s.bytes.get(s.at).is_some_and(u8::is_ascii_digit) {
                s.at += 1;
            }
            s.at > start
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            digits(self).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            digits(self).then_some(())?;
        }
        Some(())
    }
}

/// The first quote, backslash or control character of `bytes` from `at` (or the end):
/// a word of 8 bytes at a time (SWAR) while 8 remain, then a byte at a time. In a word,
/// the bit tests may flag bytes after the first such byte (a borrow runs upwards),
/// never one before it nor miss it: the lowest flagged byte is the one. Inlined, so
/// that the scanner's position stays in a register.
#[inline(always)]
fn find_special(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        let w = u64::from_le_bytes(le);
        // Flipping bit 1 maps the control characters onto themselves and the quote
        // (0x22) onto 0x20: one test below 0x21 finds both.
        let quote_or_control = w ^ (ONES * 0x02);
        let special = (quote_or_control.wrapping_sub(ONES * 0x21) & !quote_or_control & HIGHS)
            | zero_byte(w ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(b) = bytes.get(at) {
        if matches!(b, b'"' | b'\\' | 0..=0x1f) {
            return at;
        }
        at += 1;
    }
    at
}

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` for years 1970 to
/// 9999, as jiff reads it (the fraction truncated to milliseconds); `None` for any other
/// shape, left to jiff.
pub(super) fn parse_timestamp(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if let Some(ms) = parse_usual_timestamp(b) {
        return Some(ms);
    }
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = date_days(b.get(..10)?)?;
    let num = |range: std::ops::Range<usize>| digits_value(b.get(range)?);
    let clock = seconds_of_day(num(11..13)?, num(14..16)?, num(17..19)?)?;
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        let scale = [100, 10, 1];
        for (i, d) in b[at + 1..at + 1 + digits.min(3)].iter().enumerate() {
            millis += i64::from(d - b'0') * scale[i];
        }
        at += 1 + digits;
    }
    let offset_minutes = match b.get(at..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |d: &u8| d.is_ascii_digit().then(|| i64::from(d - b'0'));
            let (h, m) = (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + clock - offset_minutes * 60;
    let ms = seconds * 1_000 + millis;
    // Before the epoch once the offset is applied: jiff's (floor) rounding is not ours.
    (ms >= 0).then_some(ms)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, what producers usually write, its time checked and read
/// a word at a time with no search; the day's first millisecond is kept from the last
/// call on this thread (a stream's events come day after day), else worked out by the
/// general path's rules. `None` for any other shape.
fn parse_usual_timestamp(b: &[u8]) -> Option<i64> {
    thread_local! {
        /// The date (`YYYY-MM-DD`, as read in words) last read, and its day's first
        /// millisecond.
        static LAST_DAY: Cell<(u64, u16, i64)> = const { Cell::new((0, 0, 0)) };
    }
    let b: &[u8; 24] = b.try_into().ok()?;
    if b[10] != b'T' || b[19] != b'.' {
        return None;
    }
    // `HH:MM:SS` and `mmmZ` as words (little-endian: the first byte lowest), their
    // separators and digits checked a word at a time: a digit's high nibble is 3 and
    // its low one, plus 6, stays within the nibble.
    // (Sliced, not gathered byte by byte: one load each.)
    let time = u64::from_le_bytes(b[11..19].try_into().ok()?);
    let fraction = u32::from_le_bytes(b[20..24].try_into().ok()?);
    const TIME_DIGITS: u64 = 0x0F0F_000F_0F00_0F0F;
    const FRACTION_DIGITS: u32 = 0x000F_0F0F;
    // The separators whole, the digits' high nibbles.
    if time & 0xF0F0_FFF0_F0FF_F0F0 != 0x3030_3A30_303A_3030
        || (time & TIME_DIGITS).wrapping_add(TIME_DIGITS / 0xF * 6) & (TIME_DIGITS << 4) != 0
        || fraction & !FRACTION_DIGITS != 0x5A30_3030
        || (fraction & FRACTION_DIGITS).wrapping_add(FRACTION_DIGITS / 0xF * 6)
            & (FRACTION_DIGITS << 4)
            != 0
    {
        return None;
    }
    let digit = |word: u64, byte: u32| ((word >> (8 * byte)) & 0xF) as i64;
    let clock = seconds_of_day(
        digit(time, 0) * 10 + digit(time, 1),
        digit(time, 3) * 10 + digit(time, 4),
        digit(time, 6) * 10 + digit(time, 7),
    )?;
    let fraction = u64::from(fraction);
    let millis = digit(fraction, 0) * 100 + digit(fraction, 1) * 10 + digit(fraction, 2);
    let date = (
        u64::from_le_bytes(b[..8].try_into().ok()?),
        u16::from_le_bytes(b[8..10].try_into().ok()?),
    );
    let (last, last_day, last_start) = LAST_DAY.get();
    let day_start = if (last, last_day) == date {
        last_start
    } else {
        // Only a valid date is kept.
        let start = date_days(&b[..10])? * 86_400_000;
        LAST_DAY.set((date.0, date.1, start));
        start
    };
    Some(day_start + clock * 1_000 + millis)
}

/// Seconds since midnight of a time of day, `None` out of range.
fn seconds_of_day(hour: i64, minute: i64, second: i64) -> Option<i64> {
    // A leap second (60) is jiff's to clamp.
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some((hour * 60 + minute) * 60 + second)
}

/// Days since 1970-01-01 of `YYYY-MM-DD`, a valid date of year 1970 or later.
fn date_days(b: &[u8]) -> Option<i64> {
    let [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = *b else {
        return None;
    };
    let (year, month, day) = (
        digits_value(&[y1, y2, y3, y4])?,
        digits_value(&[m1, m2])?,
        digits_value(&[d1, d2])?,
    );
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// The number written with the decimal digits `b` (all digits).
fn digits_value(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn jiff_ms(value: &str) -> Option<i64> {
        value
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
    }

    /// A byte at a time, as the scanner did before it skipped whole words.
    fn string_byte_by_byte(text: &str) -> Option<(&str, usize)> {
        let inner = text.strip_prefix('"')?;
        for (i, b) in inner.bytes().enumerate() {
            match b {
                b'"' => return Some((&inner[..i], i + 2)),
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
        None
    }

    #[test]
    fn strings_end_where_a_byte_by_byte_scan_ends_them() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet: [&str; 14] = [
            "a", "Z", "-", "é", "€", "\"", "\\", "\u{1f}", "\u{7f}", "\u{0}", "!", "#", "[", "]",
        ];
        for _ in 0..100_000 {
            let len = rng.random_range(0..40);
            let mut text = String::from("\"");
            for _ in 0..len {
                // Mostly plain bytes, so that whole words are skipped before a special one.
                let pick = if rng.random_range(0..8) == 0 {
                    rng.random_range(0..alphabet.len())
                } else {
                    0
                };
                text.push_str(alphabet[pick]);
            }
            if rng.random_bool(0.8) {
                text.push('"');
            }
            let mut s = Scanner {
                text: &text,
                bytes: text.as_bytes(),
                at: 0,
            };
            let scanned = s.string().map(|found| (found, s.at));
            assert_eq!(scanned, string_byte_by_byte(&text), "{text:?}");
        }
    }

    #[test]
    fn a_key_written_the_usual_way_is_read_as_its_string_would_be() {
        let keys = [
            "event_id",
            "type",
            "ts",
            "interaction_id",
            "customer_id",
            "channel",
            "queue",
            "reason",
            "segment",
            "site",
            "deflected_to",
            "resolved",
            "agent_id",
            "state",
            "away_reason",
            "queues",
        ];
        let usual = |text: &str| {
            let mut s = Scanner {
                text,
                bytes: text.as_bytes(),
                at: 0,
            };
            s.usual_key().map(|field| (field, s.at))
        };
        for key in keys {
            assert_ne!(Field::of(key), Field::Other, "{key}");
            let text = format!("{key}\":\"x\"");
            assert_eq!(usual(&text), Some((Field::of(key), key.len() + 2)), "{key}");
            // Anything else is left to the general path: a space before the colon, a
            // longer or shorter key, an unclosed one.
            for other in [
                format!("{key}\" :"),
                format!("{key}s\":"),
                format!("{}\":", &key[..key.len() - 1]),
                key.to_string(),
            ] {
                if let Some((field, _)) = usual(&other) {
                    let named = other.split('"').next().expect("a key");
                    assert_eq!(field, Field::of(named), "{other}");
                }
            }
        }
        assert_eq!(usual("note\":1"), None);
        assert_eq!(Field::of("note"), Field::Other);
    }

    #[test]
    fn timestamps_read_as_jiff_reads_them_or_are_left_to_it() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut fast = 0;
        for _ in 0..200_000 {
            let ms = rng.random_range(-1_000_000_000_000i64..253_402_300_799_999);
            let t = jiff::Timestamp::from_millisecond(ms).expect("in range");
            let offset = rng.random_range(-14 * 60..=14 * 60i32);
            let offset = jiff::tz::Offset::from_seconds(offset * 60).expect("offset");
            let mut text = match rng.random_range(0..5) {
                0 => format!("{t}"),
                1 => format!("{t:.3}"),
                2 => format!("{t:.9}"),
                3 => format!("{:.3}", t.display_with_offset(offset)),
                _ => format!("{}", t.display_with_offset(offset)),
            };
            // Mutations: one byte changed, or cut short.
            match rng.random_range(0..6) {
                0 if !text.is_empty() => {
                    let i = rng.random_range(0..text.len());
                    let c = *b"0123456789:-+.TZtz 9"
                        .get(rng.random_range(0..20))
                        .expect("byte");
                    let mut bytes = text.into_bytes();
                    bytes[i] = c;
                    text = String::from_utf8(bytes).expect("ascii");
                }
                1 => text.truncate(rng.random_range(0..text.len())),
                _ => {}
            }
            if let Some(ms) = parse_timestamp(&text) {
                fast += 1;
                assert_eq!(Some(ms), jiff_ms(&text), "{text}");
            }
        }
        assert!(fast > 100_000, "the fast path took only {fast}");
        for odd in [
            "2026-11-25T09:00:60Z",
            "2026-02-29T09:00:00Z",
            "2024-02-29T09:00:00Z",
            "2026-11-25t09:00:00z",
            "2026-11-25 09:00:00Z",
            "2026-11-25T09:00:00.Z",
            "2026-11-25T09:00:00.1234567891Z",
            "2026-11-25T09:00:00+24:00",
            "1970-01-01T00:30:00+01:00",
        ] {
            if let Some(ms) = parse_timestamp(odd) {
                assert_eq!(Some(ms), jiff_ms(odd), "{odd}");
            }
        }
        assert_eq!(
            parse_timestamp("2024-02-29T09:00:00Z"),
            jiff_ms("2024-02-29T09:00:00Z")
        );
    }

    /// The usual shape read day after day (the day's start kept from call to call),
    /// back and forth across midnights and month ends, as jiff reads it.
    #[test]
    fn usual_timestamps_in_a_row_read_as_jiff_reads_them() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut ms = 1_772_236_800_000_i64; // 2026-02-28T00:00:00Z
        for _ in 0..20_000 {
            ms += rng.random_range(-7_200_000..=10_800_000);
            let text = format!(
                "{:.3}",
                jiff::Timestamp::from_millisecond(ms).expect("in range")
            );
            assert_eq!(text.len(), 24, "{text}");
            assert_eq!(parse_usual_timestamp(text.as_bytes()), Some(ms), "{text}");
            assert_eq!(parse_timestamp(&text), jiff_ms(&text), "{text}");
        }
        for odd in [
            "2026-02-29T10:00:00.000Z",
            "2026-11-25T24:00:00.000Z",
            "2026-11-25T10:60:00.000Z",
            "2026-11-25T10:00:60.000Z",
            "2026-11-25T10:00:00.00aZ",
            "2026-11-25T10:0a:00.000Z",
            "2026-11-25T1?:00:00.000Z",
            "2026-11-25T10:00:00.000z",
            "2026-11-25T10-00:00.000Z",
            "2026-11-25T10:00:00,000Z",
            "2026-11-25T10:00:00.0:0Z",
            "2026-11-2aT10:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            assert_eq!(parse_usual_timestamp(odd.as_bytes()), None, "{odd}");
        }
    }

    use crate::event::json::JsonEvent;

    /// What serde reads of a line (the reference).
    fn serde_reads(line: &[u8]) -> Option<JsonEvent<'_>> {
        serde_json::from_slice(line).ok()
    }

    /// What the scanner reads of a line, as serde's struct.
    fn scan(line: &[u8]) -> Option<JsonEvent<'_>> {
        let (mut head, mut out) = (Head::default(), EventRecord::blank());
        scan_event(line, &mut head, &mut out)?;
        // A time read the usual way is written back the same way.
        let usual = |ms: i64| {
            let t = jiff::Timestamp::from_millisecond(ms).ok()?;
            Some(Cow::Owned(format!("{t:.3}")))
        };
        Some(JsonEvent {
            event_id: head.event_id,
            kind: head.kind,
            ts: head.ts.or(head.ts_ms.and_then(usual)),
            interaction_id: head.interaction_id,
            customer_id: out.customer_id,
            channel: out.channel,
            queue: out.queue,
            reason: out.reason,
            segment: out.segment,
            site: out.site,
            deflected_to: out.deflected_to,
            resolved: out.resolved,
            agent_id: out.agent_id,
            state: head.state,
            away_reason: out.away_reason,
            queues: out.queues,
        })
    }

    #[test]
    fn the_scanner_reads_what_serde_reads_or_leaves_it_to_serde() {
        let lines = [
            r#"{"event_id":"e1","type":"arrived","ts":"2026-11-25T09:00:00Z","interaction_id":"i1","customer_id":"c1","channel":"phone","queue":"billing","reason":"invoice","segment":"vip","site":"lyon","extra":1}"#,
            r#" { "event_id" : "a1", "type":"agent_state","ts":"2026-11-25T09:00:00Z","agent_id":"ag7","state":"away","away_reason":"lunch","queues":["billing", "sales"],"site":"lyon", "note": null } "#,
            r#"{"event_id":"e2","type":"ended","ts":"2026-11-25T09:00:00.250+01:00","interaction_id":"i2","resolved":false,"customer_id":null,"queues":[]}"#,
            r#"{"event_id":"é3","type":"deflected","ts":"2026-11-25T09:00:00Z","interaction_id":"i3","deflected_to":"visual_ivr","x":"y","t":true}"#,
            r#"{"event_id":"e4","n":-0.5e+3,"m":10,"type":"queued","ts":"2026-11-25T09:00:00Z","interaction_id":"i4","queue":"q"}"#,
            r#"{"event_id":"e6","type":"answered","ts":"2026-11-25T09:00:07.250Z","interaction_id":"i6","agent_id":"a1"}"#,
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut fast = 0;
        for _ in 0..100_000 {
            let mut line = lines[rng.random_range(0..lines.len())].as_bytes().to_vec();
            for _ in 0..rng.random_range(0..3) {
                let i = rng.random_range(0..line.len());
                match rng.random_range(0..3) {
                    0 => {
                        line[i] = *b"\"\\{}[],: 01nulltruefalse\x01\xff-.eE+"
                            .get(rng.random_range(0..31))
                            .expect("byte")
                    }
                    1 => {
                        line.remove(i);
                    }
                    _ => line.insert(i, *b"\",:{} \\a".get(rng.random_range(0..8)).expect("byte")),
                }
            }
            if let Some(scanned) = scan(&line) {
                fast += 1;
                let reference = serde_reads(&line);
                assert!(
                    reference.as_ref() == Some(&scanned),
                    "{}\nscanned {scanned:?}\nserde {reference:?}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
        assert!(fast > 10_000, "the scanner took only {fast}");
        for line in lines {
            assert!(scan(line.as_bytes()).is_some(), "{line}");
        }
        // A second time, read the usual way or not, is a duplicate key (serde's to report).
        for second in ["2026-11-25T09:00:07.250Z", "2026-11-25T09:00:07Z"] {
            for first in ["2026-11-25T09:00:07.250Z", "2026-11-25T09:00:07Z"] {
                let line = format!(
                    r#"{{"event_id":"e","type":"answered","ts":"{first}","interaction_id":"i","ts":"{second}"}}"#
                );
                assert!(scan(line.as_bytes()).is_none(), "{line}");
                assert!(serde_reads(line.as_bytes()).is_none(), "{line}");
            }
        }
    }
}
