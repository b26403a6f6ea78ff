//! Server-sent events: an incremental parser and the matching serializer.
//!
//! The parser follows the WHATWG "event stream" interpretation: lines end in CRLF, LF or CR (a CR
//! at the end of one chunk and an LF at the start of the next are one line end); `field: value`
//! lines build an event, a blank line dispatches it; several `data` lines are joined with `\n`;
//! lines starting with `:` are comments; a leading byte-order mark is skipped. Bytes arrive in any
//! chunking — [`Parser::push`] returns only complete items and keeps the rest.
//!
//! Every buffer is bounded: an event (all of its lines, including the unterminated one) larger
//! than the configured cap is an error, not an allocation.

/// Default cap on one event: 8 MiB. A Responses API `response.completed` event carries the whole
/// output, so this is sized for long answers rather than for single deltas.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field (the event type), if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `retry:` field, if any.
    pub retry: Option<u64>,
}

impl Event {
    /// An event with only a data field.
    pub fn data(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }
}

/// What the parser yields: an event or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(Event),
    /// A comment line (without the leading `:`), e.g. a keep-alive.
    Comment(String),
}

/// Why a stream cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew beyond the cap given to [`Parser::new`].
    #[error("SSE event exceeds {limit} bytes")]
    EventTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A line is not valid UTF-8.
    #[error("SSE stream is not valid UTF-8")]
    InvalidUtf8,
}

/// An incremental SSE parser with a bounded buffer.
#[derive(Debug)]
pub struct Parser {
    max_event_bytes: usize,
    /// The current line, not yet terminated.
    line: Vec<u8>,
    /// The previous line ended with CR: an LF that follows belongs to that line end.
    after_cr: bool,
    /// No line has been completed yet (a byte-order mark may still lead the stream).
    first_line: bool,
    /// Bytes of the event being assembled, including the current line.
    event_bytes: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Parser {
    /// A parser that refuses events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Parser {
            max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            first_line: true,
            event_bytes: 0,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
        }
    }

    /// Bytes held for an event that is not complete yet.
    pub fn buffered(&self) -> usize {
        self.event_bytes
    }

    /// Feeds bytes in any chunking and appends every completed item to `out`.
    ///
    /// # Errors
    ///
    /// [`SseError::EventTooLarge`] when an event outgrows the cap, [`SseError::InvalidUtf8`] when
    /// a complete line is not UTF-8. After an error the parser's state is unspecified; drop it.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), SseError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.grow(rest.len())?;
                    self.line.extend_from_slice(rest);
                    break;
                }
                Some(i) => {
                    self.grow(i + 1)?;
                    self.line.extend_from_slice(&rest[..i]);
                    self.after_cr = rest[i] == b'\r';
                    rest = &rest[i + 1..];
                    self.end_line(out)?;
                }
            }
        }
        Ok(())
    }

    /// The stream ended: completes a pending line and dispatches a pending event.
    ///
    /// The standard drops an event that lacks its closing blank line; upstreams that end with
    /// `data: [DONE]\n` are common enough that this parser dispatches it instead.
    ///
    /// # Errors
    ///
    /// [`SseError::InvalidUtf8`] when the last line is not UTF-8.
    pub fn finish(&mut self, out: &mut Vec<Item>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        self.after_cr = false;
        Ok(())
    }

    fn grow(&mut self, n: usize) -> Result<(), SseError> {
        self.event_bytes = self.event_bytes.saturating_add(n);
        if self.event_bytes > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<Item>) -> Result<(), SseError> {
        // Reuse the line's allocation: take it, interpret it, put it back empty.
        let mut line = std::mem::take(&mut self.line);
        let result = self.interpret(&line, out);
        line.clear();
        self.line = line;
        result
    }

    fn interpret(&mut self, raw: &[u8], out: &mut Vec<Item>) -> Result<(), SseError> {
        let mut raw = raw;
        if self.first_line {
            self.first_line = false;
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        let line = std::str::from_utf8(raw).map_err(|_| SseError::InvalidUtf8)?;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.to_owned()));
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        self.event_bytes = 0;
        let event = self.event.take();
        let id = self.id.take();
        let retry = self.retry.take();
        if !std::mem::take(&mut self.has_data) {
            // No data line: per the standard, nothing is dispatched.
            self.data.clear();
            return;
        }
        out.push(Item::Event(Event {
            event,
            data: std::mem::take(&mut self.data),
            id,
            retry,
        }));
    }
}

/// The end of the first complete event in `buf`: the index just past the blank line that
/// dispatches it, with the parser's line ends (CRLF, LF or a lone CR). For relaying a stream
/// byte for byte while looking at it event by event; [`Parser`] reads the events themselves.
///
/// A CR that ends `buf` counts as a line end: if an LF follows in the next chunk, that LF is
/// a line end of its own at the start of what follows (an empty line, which dispatches
/// nothing), so the bytes split this way read as the parser reads them whole.
pub fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut from = 0;
    while let Some(p) = memchr::memchr2(b'\r', b'\n', &buf[from..]) {
        let at = from + p;
        let end = if buf[at] == b'\r' && buf.get(at + 1) == Some(&b'\n') {
            at + 2
        } else {
            at + 1
        };
        if at == line_start {
            return Some(end);
        }
        line_start = end;
        from = end;
    }
    None
}

/// Appends `event` in wire form, ending with the blank line that dispatches it.
///
/// Data is split into one `data:` line per line of text (CR, LF and CRLF all end a line, so a
/// lone CR in `data` arrives as `\n`). Line breaks in the event type or id are cut off there:
/// they cannot be represented.
pub fn write_event(out: &mut Vec<u8>, event: &Event) {
    if let Some(name) = &event.event {
        write_field(out, "event", first_line(name));
    }
    if let Some(id) = &event.id {
        write_field(out, "id", first_line(id));
    }
    if let Some(retry) = event.retry {
        write_field(out, "retry", &retry.to_string());
    }
    write_data_lines(out, &event.data);
    out.push(b'\n');
}

/// Appends an event with an optional type and the given data.
pub fn write_data(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(name) = event {
        write_field(out, "event", first_line(name));
    }
    write_data_lines(out, data);
    out.push(b'\n');
}

fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

fn write_data_lines(out: &mut Vec<u8>, data: &str) {
    let mut rest = data;
    loop {
        match rest.find(['\r', '\n']) {
            None => {
                write_field(out, "data", rest);
                return;
            }
            Some(i) => {
                write_field(out, "data", &rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.split(['\r', '\n']).next().unwrap_or("")
}

#[cfg(test)]
mod tests {

    #[test]
    fn event_ends_follow_every_line_end_the_parser_knows() {
        assert_eq!(event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\nx"), Some(11));
        assert_eq!(event_end(b"data: a\r\rdata: b\r\r"), Some(9), "lone CRs");
        assert_eq!(event_end(b"data: a\r\n\n"), Some(10));
        assert_eq!(event_end(b"data: a\n"), None);
        assert_eq!(event_end(b"data: a\r"), None);
        assert_eq!(event_end(b"\n"), Some(1), "a blank line alone");
    }

    proptest::proptest! {
        /// Cut at every `event_end`, the pieces parse to the events of the whole stream.
        #[test]
        fn cutting_at_event_ends_keeps_the_events(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "data: a", "data: {\"x\":1}", "event: e", ": ping", "\n", "\r", "\r\n", "id: 7",
                ]),
                0..40,
            ),
            chunk in 1usize..9,
        ) {
            let stream: Vec<u8> = parts.concat().into_bytes();
            let whole = parse_all(&[&stream]);
            // Split as a relay would, fed in chunks of `chunk` bytes.
            let mut pending: Vec<u8> = Vec::new();
            let mut events: Vec<Vec<u8>> = Vec::new();
            for piece in stream.chunks(chunk) {
                pending.extend_from_slice(piece);
                while let Some(end) = event_end(&pending) {
                    events.push(pending.drain(..end).collect());
                }
            }
            events.push(pending);
            let pieces: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
            let split: Vec<Item> = pieces.iter().flat_map(|p| parse_all(&[p])).collect();
            let events_only = |items: Vec<Item>| -> Vec<Item> {
                items.into_iter().filter(|i| matches!(i, Item::Event(_))).collect()
            };
            proptest::prop_assert_eq!(events_only(split), events_only(whole));
        }
    }

    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Item> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    fn events(items: &[Item]) -> Vec<Event> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e.clone()),
                Item::Comment(_) => None,
            })
            .collect()
    }

    #[test]
    fn line_endings_lf_crlf_cr() {
        for stream in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
        ] {
            let ev = events(&parse_all(&[stream]));
            assert_eq!(ev, vec![Event::data("a"), Event::data("b")], "{stream:?}");
        }
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let ev = events(&parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]));
        assert_eq!(ev, vec![Event::data("a"), Event::data("b")]);
    }

    #[test]
    fn every_byte_split_gives_the_same_events() {
        let stream = b"\xEF\xBB\xBF: hi\r\nevent: x\ndata: {\"a\":\n\ndata:1\r\ndata: 2\rid: 7\nretry: 30\n\n";
        let whole = parse_all(&[stream]);
        for i in 0..stream.len() {
            for j in i..stream.len() {
                let parts = [&stream[..i], &stream[i..j], &stream[j..]];
                assert_eq!(parse_all(&parts), whole, "split at {i},{j}");
            }
        }
        assert_eq!(
            whole,
            vec![
                Item::Comment(" hi".into()),
                Item::Event(Event {
                    event: Some("x".into()),
                    data: "{\"a\":".into(),
                    id: None,
                    retry: None
                }),
                Item::Event(Event {
                    event: None,
                    data: "1\n2".into(),
                    id: Some("7".into()),
                    retry: Some(30)
                }),
            ]
        );
    }

    #[test]
    fn fields_without_space_or_value() {
        let ev = events(&parse_all(&[b"data:x\ndata\ndata:  two\n\n"]));
        assert_eq!(ev, vec![Event::data("x\n\n two")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(events(&parse_all(&[b"event: ping\n\n"])).is_empty());
    }

    #[test]
    fn unterminated_last_event_is_dispatched_at_finish() {
        let ev = events(&parse_all(&[b"data: [DONE]"]));
        assert_eq!(ev, vec![Event::data("[DONE]")]);
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        assert!(p.push(b"data: 0123456", &mut out).is_ok());
        assert_eq!(
            p.push(b"789abcdef", &mut out),
            Err(SseError::EventTooLarge { limit: 16 })
        );
    }

    #[test]
    fn cap_counts_one_event_not_the_stream() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        for _ in 0..100 {
            p.push(b"data: 0123\n\n", &mut out).unwrap();
        }
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        assert_eq!(
            p.push(b"data: \xff\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let s = "data: héllo\n\n".as_bytes();
        let ev = events(&parse_all(&[&s[..8], &s[8..]]));
        assert_eq!(ev, vec![Event::data("héllo")]);
    }

    #[test]
    fn serializer_round_trips() {
        let e = Event {
            event: Some("response.output_text.delta".into()),
            data: "line1\nline2".into(),
            id: Some("9".into()),
            retry: Some(5),
        };
        let mut out = Vec::new();
        write_event(&mut out, &e);
        assert_eq!(
            out,
            b"event: response.output_text.delta\nid: 9\nretry: 5\ndata: line1\ndata: line2\n\n"
        );
        assert_eq!(events(&parse_all(&[&out])), vec![e]);
    }

    #[test]
    fn serializer_never_breaks_framing() {
        let e = Event {
            event: Some("a\nb".into()),
            data: "x\r\ny\rz".into(),
            ..Event::default()
        };
        let mut out = Vec::new();
        write_event(&mut out, &e);
        let back = events(&parse_all(&[&out]));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].event.as_deref(), Some("a"));
        assert_eq!(back[0].data, "x\ny\nz");
    }
}
