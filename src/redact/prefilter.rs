//! Finds where each detector has to run.
//!
//! Every detector declares anchors — literals (`ghp_`, `@`, `://`), "two consecutive digits",
//! or a keyword shortly before an operator (`password =`) — one of which every match contains.
//! Around each anchor occurrence the detector gets a window: at most `max_len` bytes on either
//! side, and — for detectors whose alphabet excludes ordinary prose — no further than the run of
//! alphabet bytes around the anchor, since a match cannot cross a byte outside its alphabet.
//! An assignment's window ends where a value after its operator must end
//! ([`Grammar::reach`]), whatever the alphabet.
//! Windows shorter than the detector's `min_len` are dropped. The matcher runs only inside
//! windows.
//!
//! Finding anchors is the hot loop of clean text. aho-corasick over all anchor literals is slow
//! on English prose (the figure is in the README's Performance section, "Figures behind design
//! choices"): with ~60 literals starting with common letters no SIMD prefilter applies. Instead every anchor contains at least one *trigger* byte — a digit, one
//! of `:;<=>?@`, `+-_~`, or an upper-case letter from `B` to `K` — rare in prose, and the scan
//! tests 8 bytes at a time for trigger bytes with plain integer arithmetic (SWAR). Each trigger
//! byte is then checked against the few literals that chose it (each literal picks its rarest
//! trigger byte), which yields every occurrence, overlapping ones included. Digits only matter
//! where a run of digits starts (the digit-pair anchor), unless a literal's only trigger is a
//! digit; so in number- and token-heavy text most digits are skipped by the same arithmetic.
//!
//! # Why a truncated window is safe
//!
//! The matcher searches `hay[..window.end]`. A match it finds there contains an anchor inside
//! the window; that anchor's own window — which reaches past everything that can decide a match
//! starting before the anchor (`max_len` + look-ahead, the first byte outside the alphabet
//! plus look-ahead, or an assignment's reach plus look-ahead) — was merged into this one. So the truncation never changes a match.

use super::assignment::{identifier_before, is_quote, Grammar};
use super::byteset::{at_least, ceil_boundary, eq_mask, floor_boundary, ByteSet, Openings, HI};
use super::detector::{Anchor, Detector, Matcher, StartRule, LOOKAHEAD};
use super::numbers::Number;

/// Trigger bytes, most rare first (for choosing each literal's trigger; digits last, as a digit
/// trigger makes every digit count); must equal the set [`trigger_lanes`] tests.
const RARITY: &[u8] = b"~_+-;<=>@:?JKGFBHDCEI,0123456789";

/// A byte range of the haystack where detector `det` must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ScanWindow {
    pub det: usize,
    pub start: usize,
    pub end: usize,
}

/// A literal's trigger: its `offset` in the literal, and the byte before it (`None` at offset
/// 0), compared first: many literals share a trigger (`-`, `_`) but rarely the byte before it.
#[derive(Clone, Copy)]
struct Trigger {
    literal: usize,
    offset: usize,
    before: Option<u8>,
}

struct Literal {
    bytes: Box<[u8]>,
    /// `(detector, whether its matches start with this literal)`.
    detectors: Vec<(usize, bool)>,
}

struct Assignment {
    /// Lower-case keywords.
    keywords: Vec<Box<[u8]>>,
    /// Their first bytes, both cases.
    initials: ByteSet,
    suffix: usize,
    lead: usize,
    det: usize,
    /// The detector's grammar, when its matcher is one: it bounds how far a match reaches
    /// past the operator ([`Grammar::reach`]).
    grammar: Option<&'static Grammar>,
}

/// What the prefilter needs to know about a detector's matches.
struct Shape {
    min_len: usize,
    min_digits: usize,
    max_len: usize,
    alphabet: ByteSet,
    /// The index of `alphabet` among the distinct alphabets (runs are shared by alphabet).
    alphabet_id: usize,
    /// Whether alphabet runs bound windows (not for prose-like alphabets: their runs are long).
    bounded: bool,
}

/// What an anchor tells about the matches containing it, besides the detector's `max_len`.
#[derive(Clone, Copy, Default)]
struct Bounds {
    /// Where such a match starts at the earliest.
    earliest: Option<usize>,
    /// Where such a match ends at the latest.
    latest: Option<usize>,
}

/// A maximal run of an alphabet's bytes around an anchor (within `from..`), and the ASCII
/// digits in it (counted the first time a detector asks). Every match containing the anchor
/// lies inside the run, so any later anchor inside it reuses the run instead of walking again:
/// each byte is walked at most once per distinct alphabet — detectors with the same alphabet
/// (most token formats share `A-Za-z0-9_-`) share their runs — however dense the anchors
/// (`a@a@a@…`, the digit groups of a card number).
#[derive(Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    digits: Option<usize>,
}

/// The windows of one [`Prefilter::windows`] call while anchors are found.
struct Collector<'a> {
    hay: &'a str,
    from: usize,
    /// Per detector: the window that later anchors may still extend. Allocated at the first
    /// anchor: most strings a request carries have none, and then cost no allocation.
    open: Vec<Option<ScanWindow>>,
    /// Per distinct alphabet ([`Shape::alphabet_id`]): the last run walked (allocated with
    /// `open`).
    runs: Vec<Option<Run>>,
    out: &'a mut Vec<ScanWindow>,
}

impl Collector<'_> {
    /// Adds detector `det`'s window for an anchor at `at..at + len`, if a match fits in it:
    /// at most `max_len` bytes on either side, inside the alphabet run around the anchor, and
    /// within `bounds`.
    fn push(&mut self, p: &Prefilter, det: usize, bounds: Bounds, at: usize, len: usize) {
        let Some(shape) = p.shapes.get(det) else {
            return;
        };
        if self.open.is_empty() {
            self.open = vec![None; p.shapes.len()];
            self.runs = vec![None; p.alphabets];
        }
        let (Some(run), Some(open)) =
            (self.runs.get_mut(shape.alphabet_id), self.open.get_mut(det))
        else {
            return;
        };
        let bytes = self.hay.as_bytes();
        let mut start = self
            .from
            .max((at + len).saturating_sub(shape.max_len))
            .max(bounds.earliest.unwrap_or(0));
        let mut end = bytes
            .len()
            .min(at + shape.max_len)
            .min(bounds.latest.unwrap_or(usize::MAX));
        if shape.bounded {
            let r = match run {
                Some(r) if r.start <= at && at + len <= r.end => r,
                _ => run.insert(walk(bytes, self.from, at, at + len, &shape.alphabet)),
            };
            if shape.min_digits > 0 {
                let digits = *r.digits.get_or_insert_with(|| {
                    bytes[r.start..r.end]
                        .iter()
                        .filter(|b| b.is_ascii_digit())
                        .count()
                });
                if digits < shape.min_digits {
                    return;
                }
            }
            start = start.max(r.start);
            end = end.min(r.end);
        }
        if end.saturating_sub(start) < shape.min_len {
            return;
        }
        let w = ScanWindow {
            det,
            start: floor_boundary(self.hay, start),
            end: ceil_boundary(self.hay, end + LOOKAHEAD),
        };
        match open {
            Some(o) if w.start <= o.end && w.end >= o.start => {
                o.start = o.start.min(w.start);
                o.end = o.end.max(w.end);
            }
            slot => {
                if let Some(done) = slot.replace(w) {
                    self.out.push(done);
                }
            }
        }
    }
}

/// The run of `alphabet` bytes around `at..end`, not reaching before `from`.
fn walk(bytes: &[u8], from: usize, at: usize, end: usize, alphabet: &ByteSet) -> Run {
    let left = bytes[from..at]
        .iter()
        .rev()
        .take_while(|&&b| alphabet.contains(b))
        .count();
    let right = bytes[end..]
        .iter()
        .take_while(|&&b| alphabet.contains(b))
        .count();
    Run {
        start: at - left,
        end: end + right,
        digits: None,
    }
}

/// Anchor tables for one list of detectors.
pub(crate) struct Prefilter {
    literals: Vec<Literal>,
    /// For each trigger byte, the literals that chose it, sorted by the byte they expect
    /// before it (those that start with it first).
    by_trigger: Vec<Vec<Trigger>>,
    /// For each trigger byte that has literals, 257 ranges of its `by_trigger` list: `[0]`
    /// the literals that start with it, `[p + 1]` those that expect byte `p` before it. A
    /// trigger tries only the literals that fit the byte actually before it: the lists grow
    /// with the catalogue (`_` ends dozens of prefixes), the literals tried do not.
    by_before: Vec<Box<[(u16, u16)]>>,
    /// For each trigger byte, the bytes its triggers expect before it — all bytes when one
    /// of them is its literal's first byte. In dense text most `-`, `_` and upper-case
    /// triggers follow a byte no literal expects, and their lists are skipped at once.
    before: Vec<ByteSet>,
    /// The same for the byte after it — all bytes when one of them is its literal's last
    /// byte. Catches what `before` cannot: literals that start with their trigger (`://`,
    /// `:AA` against the `:` of every `key: value`).
    after: Vec<ByteSet>,
    assignments: Vec<Assignment>,
    /// For each operator byte, the assignment anchors it ends.
    by_operator: Vec<Vec<usize>>,
    /// The first two bytes of every assignment keyword, in any case.
    openings: Openings,
    /// Detectors anchored on digit pairs, with the number test that must pass first, if any
    /// ([`Number::may_start_near`]).
    digit_pair: Vec<(usize, Option<Number>)>,
    /// Detectors without a usable anchor: their matcher runs over all text.
    always: Vec<usize>,
    shapes: Vec<Shape>,
    /// The number of distinct alphabets among the shapes.
    alphabets: usize,
    /// Trigger bytes that can start any work here (a literal's trigger, an operator, a digit
    /// when a detector anchors on digits); the others are skipped at once.
    useful: ByteSet,
    /// Some literal's trigger is a digit: every digit is a trigger, not only run starts.
    all_digits: bool,
}

impl Prefilter {
    /// Tables for `detectors`; indexes in windows refer to positions in this sequence.
    pub(crate) fn new<'a>(detectors: impl IntoIterator<Item = &'a Detector>) -> Prefilter {
        let mut p = Prefilter {
            literals: Vec::new(),
            by_trigger: vec![Vec::new(); 256],
            by_before: vec![Box::default(); 256],
            before: vec![ByteSet::EMPTY; 256],
            after: vec![ByteSet::EMPTY; 256],
            assignments: Vec::new(),
            by_operator: vec![Vec::new(); 256],
            openings: Openings::EMPTY,
            digit_pair: Vec::new(),
            always: Vec::new(),
            shapes: Vec::new(),
            alphabets: 0,
            useful: ByteSet::EMPTY,
            all_digits: false,
        };
        let trigger = trigger_set();
        for (i, det) in detectors.into_iter().enumerate() {
            let alphabet_id = match p.shapes.iter().find(|s| s.alphabet == det.alphabet) {
                Some(s) => s.alphabet_id,
                None => {
                    p.alphabets += 1;
                    p.alphabets - 1
                }
            };
            p.shapes.push(Shape {
                min_len: det.min_len,
                min_digits: det.min_digits,
                max_len: det.max_len,
                alphabet: det.alphabet,
                alphabet_id,
                bounded: !(det.alphabet.contains(b' ') && det.alphabet.contains(b'e')),
            });
            let mut usable = !det.anchors.is_empty();
            for anchor in &det.anchors {
                match anchor {
                    Anchor::DigitPair => p.digit_pair.push((
                        i,
                        match det.matcher {
                            Matcher::Number(n) => Some(n),
                            _ => None,
                        },
                    )),
                    Anchor::Literal(lit) => {
                        let starts = match &det.start {
                            StartRule::Literals { lits, ci: false } => {
                                lits.iter().any(|l| l == lit)
                            }
                            _ => false,
                        };
                        usable &= p.add_literal(lit, i, starts);
                    }
                    Anchor::Assignment {
                        keywords,
                        operators,
                        suffix,
                        lead,
                    } => {
                        usable &= operators.iter().all(|&b| trigger.contains(b));
                        for &op in operators.iter() {
                            p.by_operator[usize::from(op)].push(p.assignments.len());
                        }
                        let mut initials = ByteSet::EMPTY;
                        for k in keywords {
                            p.openings.insert(k);
                            if let Some(&b) = k.first() {
                                initials.insert(b.to_ascii_lowercase());
                                initials.insert(b.to_ascii_uppercase());
                            }
                        }
                        p.assignments.push(Assignment {
                            keywords: keywords.clone(),
                            initials,
                            suffix: *suffix,
                            lead: *lead,
                            det: i,
                            grammar: match det.matcher {
                                Matcher::Assignment(g) => Some(g),
                                _ => None,
                            },
                        });
                    }
                }
            }
            if !usable {
                p.always.push(i);
            }
        }
        for (list, ranges) in p.by_trigger.iter_mut().zip(&mut p.by_before) {
            if list.is_empty() {
                continue;
            }
            let key = |t: &Trigger| t.before.map_or(0, |b| usize::from(b) + 1);
            list.sort_by_key(key);
            // A few hundred literals at most: their positions fit in `u16`.
            let at = |k: usize| u16::try_from(list.partition_point(|t| key(t) < k)).unwrap_or(0);
            *ranges = (0..257).map(|k| (at(k), at(k + 1))).collect();
        }
        for b in 0..=255u8 {
            let i = usize::from(b);
            let digit = b.is_ascii_digit() && !p.digit_pair.is_empty();
            if digit || !p.by_trigger[i].is_empty() || !p.by_operator[i].is_empty() {
                p.useful.insert(b);
            }
        }
        p
    }

    /// Registers a literal anchor; false if it has no trigger byte.
    fn add_literal(&mut self, lit: &[u8], det: usize, starts: bool) -> bool {
        if let Some(l) = self.literals.iter_mut().find(|l| &*l.bytes == lit) {
            l.detectors.push((det, starts));
            return true;
        }
        // The rarest trigger byte; where it occurs more than once (`-----BEGIN`), an
        // occurrence with a neighbour on both sides, so that `before` and `after` can filter.
        let Some((offset, &trigger)) = lit
            .iter()
            .enumerate()
            .filter(|(_, b)| RARITY.contains(b))
            .min_by_key(|&(i, b)| {
                let rarity = RARITY.iter().position(|r| r == b);
                (rarity, i == 0 || i + 1 == lit.len())
            })
        else {
            return false;
        };
        self.all_digits |= trigger.is_ascii_digit();
        let before = &mut self.before[usize::from(trigger)];
        match offset.checked_sub(1) {
            Some(i) => before.insert(lit[i]),
            None => *before = ByteSet::ALL,
        }
        let after = &mut self.after[usize::from(trigger)];
        match lit.get(offset + 1) {
            Some(&b) => after.insert(b),
            None => *after = ByteSet::ALL,
        }
        self.by_trigger[usize::from(trigger)].push(Trigger {
            literal: self.literals.len(),
            offset,
            before: offset.checked_sub(1).map(|i| lit[i]),
        });
        self.literals.push(Literal {
            bytes: lit.into(),
            detectors: vec![(det, starts)],
        });
        true
    }

    /// The windows of `hay[from..]`, merged per detector, sorted by `(det, start)`.
    ///
    /// Window boundaries are char boundaries; an anchor must start at or after `from` (a match
    /// that starts at or after `from` contains one there).
    pub(crate) fn windows(&self, hay: &str, from: usize, out: &mut Vec<ScanWindow>) {
        let bytes = hay.as_bytes();
        let mut c = Collector {
            hay,
            from,
            open: Vec::new(),
            runs: Vec::new(),
            out,
        };
        let mut i = from;
        // Whether the byte before the current word is a digit (lane 0's predecessor).
        let mut carry = if from > 0 && bytes[from - 1].is_ascii_digit() {
            HI & 0xff
        } else {
            0
        };
        let mut words = bytes[from..].chunks_exact(8);
        for chunk in words.by_ref() {
            // Always 8 bytes (`chunks_exact`); the conversion cannot fail.
            let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let (others, digits) = trigger_lanes(u64::from_le_bytes(word));
            if others | digits == 0 {
                // Most words of prose: nothing to look at.
                carry = 0;
                i += 8;
                continue;
            }
            let mut mask = if self.all_digits {
                others | digits
            } else {
                // Digits matter only where a digit pair starts a run: a digit after a digit
                // lane does not, nor one before a non-digit lane. Lane 7's successor is in the
                // next word: it stays in (`on_trigger` looks at the next byte itself).
                others | (digits & !((digits << 8) | carry) & ((digits >> 8) | (HI << 56)))
            };
            carry = (digits >> 56) & 0x80;
            while mask != 0 {
                let lane = (mask.trailing_zeros() / 8) as usize;
                if self.useful.contains(word[lane]) && self.worth(bytes, i + lane) {
                    self.on_trigger(bytes, i + lane, &mut c);
                }
                mask &= mask - 1;
            }
            i += 8;
        }
        for at in i..bytes.len() {
            if self.useful.contains(bytes[at]) && self.worth(bytes, at) {
                self.on_trigger(bytes, at, &mut c);
            }
        }
        let Collector { open, out, .. } = c;
        out.extend(open.into_iter().flatten());
        for &det in &self.always {
            out.push(ScanWindow {
                det,
                start: from,
                end: bytes.len(),
            });
        }
        merge(out);
    }

    /// Whether the trigger byte at `at` can lead anywhere: a `,` only after a quote (the
    /// operator of `("X_TOKEN", "…")`) unless a literal chose it. Commas are frequent in
    /// prose, and this one comparison is all they cost there.
    #[inline]
    fn worth(&self, bytes: &[u8], at: usize) -> bool {
        bytes[at] != b','
            || (at > 0 && is_quote(bytes[at - 1]))
            || !self.by_trigger[usize::from(b',')].is_empty()
    }

    /// Opens the windows of literal `t`'s detectors if the literal occurs around the trigger
    /// at `at` (the byte before it already matches).
    #[inline]
    fn try_literal(&self, bytes: &[u8], at: usize, t: &Trigger, c: &mut Collector<'_>) {
        if at < c.from + t.offset {
            return;
        }
        let start = at - t.offset;
        let literal = &self.literals[t.literal];
        // Literals are short: a plain loop beats a call to memcmp.
        let hit = bytes.len() - start >= literal.bytes.len()
            && literal
                .bytes
                .iter()
                .zip(&bytes[start..])
                .all(|(a, b)| a == b);
        if hit {
            for &(det, starts) in &literal.detectors {
                let bounds = Bounds {
                    earliest: starts.then_some(start),
                    latest: None,
                };
                c.push(self, det, bounds, start, literal.bytes.len());
            }
        }
    }

    fn on_trigger(&self, bytes: &[u8], at: usize, c: &mut Collector<'_>) {
        let from = c.from;
        let b = bytes[at];
        if b.is_ascii_digit()
            && bytes.get(at + 1).is_some_and(u8::is_ascii_digit)
            && !(at > 0 && bytes[at - 1].is_ascii_digit())
        {
            for &(det, number) in &self.digit_pair {
                if number.is_none_or(|n| n.may_start_near(bytes, at)) {
                    c.push(self, det, Bounds::default(), at, 2);
                }
            }
        }
        if b.is_ascii_digit() && !self.all_digits && self.by_operator[usize::from(b)].is_empty() {
            // No literal's trigger and no operator is this digit.
            return;
        }
        let expected = (at == 0 || self.before[usize::from(b)].contains(bytes[at - 1]))
            && bytes
                .get(at + 1)
                .is_none_or(|&n| self.after[usize::from(b)].contains(n));
        let ranges = &self.by_before[usize::from(b)];
        if expected && !ranges.is_empty() {
            let list = &self.by_trigger[usize::from(b)];
            let (s0, e0) = ranges[0];
            if s0 < e0 {
                for t in &list[usize::from(s0)..usize::from(e0)] {
                    self.try_literal(bytes, at, t, c);
                }
            }
            if let Some(&p) = at.checked_sub(1).and_then(|i| bytes.get(i)) {
                let (s, e) = ranges[usize::from(p) + 1];
                for t in &list[usize::from(s)..usize::from(e)] {
                    self.try_literal(bytes, at, t, c);
                }
            }
        }
        let assignments = &self.by_operator[usize::from(b)];
        // A `,` is an operator only after a quoted name (`("X_TOKEN", "…")`): in prose it
        // follows a word, and costs this one comparison.
        let operator = b != b',' || (at > from && is_quote(bytes[at - 1]));
        if operator && !assignments.is_empty() {
            let (id_start, id_end) = identifier_before(bytes, from, at);
            // No keyword starts before the first of its two-byte openings; most identifiers
            // (`ts`, `model`, `10` of `10:22`) have none, and are done in one pass.
            let Some(first) = (id_start..id_end.saturating_sub(1))
                .find(|&i| self.openings.contains(bytes[i], bytes[i + 1]))
            else {
                return;
            };
            for &a in assignments {
                let a = &self.assignments[a];
                if has_keyword(bytes, first, id_end, &a.initials, &a.keywords, a.suffix) {
                    let bounds = Bounds {
                        earliest: Some(id_start.saturating_sub(a.lead).max(from)),
                        latest: a.grammar.map(|g| g.reach(bytes, at)),
                    };
                    c.push(self, a.det, bounds, at, 1);
                }
            }
        }
    }
}

/// Whether one of `keywords` (lower-case; `initials` are their first bytes in both cases)
/// occurs in `bytes[start..end]`, ending at most `suffix` bytes before `end`.
fn has_keyword(
    bytes: &[u8],
    start: usize,
    end: usize,
    initials: &ByteSet,
    keywords: &[Box<[u8]>],
    suffix: usize,
) -> bool {
    (start..end).any(|i| {
        initials.contains(bytes[i])
            && keywords.iter().any(|k| {
                let stop = i + k.len();
                stop <= end && end - stop <= suffix && bytes[i..stop].eq_ignore_ascii_case(k)
            })
    })
}

/// Whether an assignment anchor with these `keywords` ends at the operator `op` of `bytes`.
#[cfg(test)]
pub(crate) fn is_assignment(
    bytes: &[u8],
    op: usize,
    keywords: &[Box<[u8]>],
    suffix: usize,
) -> bool {
    let (start, end) = identifier_before(bytes, 0, op);
    let mut initials = ByteSet::EMPTY;
    for k in keywords {
        initials.insert(k[0].to_ascii_lowercase());
        initials.insert(k[0].to_ascii_uppercase());
    }
    has_keyword(bytes, start, end, &initials, keywords, suffix)
}

/// Sorts windows by `(det, start)` and merges overlapping ones of the same detector.
///
/// Windows arrive grouped by nothing but nearly sorted by start within each detector: a counting
/// sort by detector, then a sort of each detector's (usually already sorted) slice.
fn merge(windows: &mut Vec<ScanWindow>) {
    if windows.is_empty() {
        return;
    }
    let detectors = windows.iter().map(|w| w.det + 1).max().unwrap_or(0);
    let mut offsets = vec![0usize; detectors + 1];
    for w in windows.iter() {
        offsets[w.det + 1] += 1;
    }
    for d in 0..detectors {
        offsets[d + 1] += offsets[d];
    }
    let mut sorted = vec![
        ScanWindow {
            det: 0,
            start: 0,
            end: 0
        };
        windows.len()
    ];
    let mut next = offsets.clone();
    for w in windows.iter() {
        sorted[next[w.det]] = *w;
        next[w.det] += 1;
    }
    for d in 0..detectors {
        let slice = &mut sorted[offsets[d]..offsets[d + 1]];
        if !slice.is_sorted_by_key(|w| w.start) {
            slice.sort_unstable_by_key(|w| w.start);
        }
    }
    windows.clear();
    for w in sorted {
        match windows.last_mut() {
            Some(last) if last.det == w.det && w.start <= last.end => {
                last.end = last.end.max(w.end)
            }
            _ => windows.push(w),
        }
    }
}

fn trigger_set() -> ByteSet {
    let mut set = ByteSet::EMPTY;
    for &b in RARITY {
        set.insert(b);
    }
    set
}

/// Trigger lanes of an 8-byte word: `(non-digit triggers, digits)`. Non-digit triggers are
/// `:;<=>?@`, `B`–`K`, `+-_~` and `,` (the operator of `setProperty("X_TOKEN", "…")`).
#[inline]
fn trigger_lanes(x: u64) -> (u64, u64) {
    let low7 = x & !HI;
    let ascii = !x & HI;
    let digits = at_least(low7, 0x30) & !at_least(low7, 0x3A) & ascii;
    let punct = at_least(low7, 0x3A) & !at_least(low7, 0x41) & ascii;
    let letters = at_least(low7, 0x42) & !at_least(low7, 0x4C) & ascii;
    let others = punct
        | letters
        | eq_mask(x, b'+')
        | eq_mask(x, b'-')
        | eq_mask(x, b'_')
        | eq_mask(x, b'~')
        | eq_mask(x, b',');
    (others, digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_lanes_equal_the_trigger_set() {
        let set = trigger_set();
        for b in 0..=255u8 {
            for lane in 0..8 {
                let spaces = 0x2020_2020_2020_2020u64 & !(0xff << (8 * lane));
                let word = u64::from(b) << (8 * lane) | spaces;
                let (others, digits) = trigger_lanes(word);
                let bit = 0x80u64 << (8 * lane);
                assert_eq!(
                    others & bit != 0,
                    set.contains(b) && !b.is_ascii_digit(),
                    "{b:#x} lane {lane}"
                );
                assert_eq!(digits & bit != 0, b.is_ascii_digit(), "{b:#x} lane {lane}");
                assert_eq!(
                    (others | digits) & !bit & HI,
                    0,
                    "{b:#x} lane {lane}: other lanes"
                );
            }
        }
    }

    #[test]
    fn digits_trigger_only_where_runs_start() {
        let det = |anchors: Vec<Anchor>| Detector {
            name: std::sync::Arc::from("t"),
            label: "T".into(),
            category: super::super::policy::Category::Pii,
            matcher: Matcher::Jwt,
            anchors,
            start: StartRule::Any,
            alphabet: ByteSet::parse("0-9"),
            min_len: 1,
            min_digits: 0,
            max_len: 4,
            check: super::super::match_checks::Check::None,
            allow: Box::default(),
        };
        let p = Prefilter::new([&det(vec![Anchor::DigitPair])]);
        let text = "ab 12345678 x 9 77        123456789012345678901234 z";
        let mut windows = Vec::new();
        p.windows(text, 0, &mut windows);
        let starts: Vec<usize> = windows.iter().map(|w| w.start).collect();
        // Runs start at 3, 16 and 26; the 24-digit run straddles several 8-byte words.
        assert_eq!(starts, [3, 16, 26]);
        let mut windows = Vec::new();
        p.windows(text, 5, &mut windows);
        assert_eq!(
            windows.iter().map(|w| w.start).collect::<Vec<_>>(),
            [16, 26],
            "5 is inside a run"
        );
    }

    /// The built-in detectors whose matcher `keep` accepts, in priority order.
    fn builtins_where(keep: impl Fn(&Matcher) -> bool) -> Vec<&'static Detector> {
        let builtins = super::super::builtin::builtins().unwrap();
        builtins
            .detectors
            .iter()
            .filter(|d| keep(&d.matcher))
            .map(|d| &**d)
            .collect()
    }

    #[test]
    fn number_windows_open_only_where_a_number_can_start() {
        let numbers = builtins_where(|m| matches!(m, Matcher::Number(_)));
        assert_eq!(numbers.len(), 4);
        let p = Prefilter::new(numbers.iter().copied());
        // Digit runs long enough for every number's alphabet and digit count, and none of them
        // a number: a card that fails Luhn, IP addresses, an SKU, an id, a date and a time.
        let noise = "order 2024 0501 1022 3312 at 2024-05-01T10:22:33.123Z from 10.42.71.193 \
            (SKU12345678901234, id 1234567890123, v1.4.2, 12/27, $1,234.56, #88231) ";
        let values = [
            "4111 1111 1111 1111",
            "123-45-6789",
            "DE89 3704 0044 0532 0130 00",
            "(415) 555-2671",
            "1-800-555-1234",
        ];
        let text = format!("{noise}{}", values.join(" or "));
        let mut windows = Vec::new();
        p.windows(&text, 0, &mut windows);
        for w in &windows {
            assert!(
                w.start >= noise.len() - 1,
                "{} window in the noise: {:?}",
                numbers[w.det].name,
                &text[w.start..w.end]
            );
        }
        let expected = [
            (0, values[0]),
            (2, values[1]),
            (1, values[2]),
            (3, values[3]),
            (3, values[4]),
        ];
        for (det, value) in expected {
            let at = text.find(value).unwrap();
            assert!(
                windows
                    .iter()
                    .any(|w| w.det == det && w.start <= at && at + value.len() <= w.end),
                "no {} window over {value}",
                numbers[det].name
            );
        }
    }

    #[test]
    fn assignment_windows_need_a_keyword_in_the_identifier() {
        let generic = builtins_where(|m| matches!(m, Matcher::Assignment(_)));
        let p = Prefilter::new(generic.iter().copied());
        let windows = |text: &str| {
            let mut out = Vec::new();
            p.windows(text, 0, &mut out);
            out.len()
        };
        for keyed in [
            "APP_PROD_DB_PASSWORD = Xk9#mP2$vL8q",
            "\"Secret\": \"Xk9#mP2$vL8q\"",
            "x;Pwd=Xk9#mP2$vL8q",
            // The `,` of a call's arguments, after a quote.
            "System.setProperty(\"API_TOKEN\", \"Xk9#mP2$vL8q\")",
            "os.Setenv('DB_PASSWORD','Xk9#mP2$vL8q')",
        ] {
            assert!(windows(keyed) > 0, "{keyed}");
        }
        for plain in [
            "model: gpt-4o",
            "at 10:22:33 user=jane ip=10.1.2.3",
            "a=b c:d",
            // A comma after a word is prose, whatever the word.
            "the password, the token, and the secret, all of them",
        ] {
            assert_eq!(windows(plain), 0, "{plain}");
        }
    }

    /// A built-in whose anchors have no trigger byte would run over all text: none does.
    #[test]
    fn every_builtin_is_anchored() {
        let all = builtins_where(|_| true);
        let p = Prefilter::new(all.iter().copied());
        let always: Vec<&str> = p.always.iter().map(|&i| &*all[i].name).collect();
        assert_eq!(always, Vec::<&str>::new());
        // Nor does any literal have a digit as its only trigger (`ATATT3`): every digit of
        // every text would then be one, where only the starts of digit runs are.
        assert!(!p.all_digits);
    }

    #[test]
    fn rarity_list_is_the_trigger_set() {
        let set = trigger_set();
        let count = (0..=255u8).filter(|&b| set.contains(b)).count();
        assert_eq!(count, RARITY.len());
        assert_eq!(count, 17 + 10 + 5, "0x30..=0x40, B..=K, +-_~,");
    }
}
