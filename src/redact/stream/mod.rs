//! [`StreamRedactor`]: redacts a streamed (SSE) response incrementally.
//!
//! Each text that arrives in pieces — a choice's content, one tool call's arguments, one
//! Responses output text — is a *channel* with its own [`TextStream`]. An event carrying a
//! delta is re-emitted at once with the part of the text that is final (see `scanner.rs` for
//! what "final" means), possibly an empty string; an event left with an empty delta and
//! nothing else is dropped. Held text goes out with the channel's next delta, or when the
//! channel ends (a `finish_reason`, a `.done` event, `[DONE]`, the end of the stream): inside
//! the finishing event when it carries that text field, otherwise in an event synthesized just
//! before it (from the last event of the channel or stream, so it has the upstream's shape).

mod chat;
mod events;
mod messages;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::error::RedactError;
use super::redactor::Inner;
use super::request_redaction::RequestRedaction;
use super::scanner::{Recorder, Scanner};
use super::text_stream::TextStream;
use crate::wire::chat::ChoiceText;
use crate::wire::sse::{self, Event, Item, Parser, DEFAULT_MAX_EVENT_BYTES};
use crate::wire::{Family, StreamShape};

/// At most this many texts are tracked at once in one stream (choices × fields × tool calls).
pub const MAX_CHANNELS: usize = 1024;

/// At most this many event types with a text `delta` in one stream.
const MAX_STEMS: usize = 256;

/// Which text of an event a channel follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    /// A streamed text of a Chat Completions or Completions choice; the key's `outer` is the
    /// choice, its `inner` the content part or tool call.
    Choice(ChoiceText),
    /// Messages API `text_delta.text`; the key's `outer` is the content block's index.
    BlockText,
    /// Messages API `input_json_delta.partial_json` (a tool's input, as partial JSON).
    BlockJson,
    /// Messages API `thinking_delta.thinking`.
    BlockThinking,
    /// Any other event type whose `delta` is text (`response.output_text.delta`,
    /// `response.mcp_call_arguments.delta`, `transcript.text.delta`, …): the number of the
    /// event type without its `.delta` suffix, interned per stream.
    Named(u32),
}

/// A channel: a choice index or output index (`outer`), a tool call, content or summary index
/// (`inner`), and the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    outer: u64,
    inner: u64,
    field: Field,
}

/// The open channels, sorted by key (a flush ends them in key order). A sorted vector rather
/// than a `BTreeMap`: a stream has one channel or a few, and a map's first node reserves room
/// for eleven (1.6 KB per open stream, `benches/load.sh`'s memory test).
#[derive(Default)]
struct Channels(Vec<(Key, Channel)>);

impl Channels {
    fn find(&self, key: &Key) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn contains_key(&self, key: &Key) -> bool {
        self.find(key).is_ok()
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut Channel> {
        let i = self.find(key).ok()?;
        Some(&mut self.0[i].1)
    }

    /// The channel of `key`, opened if it is not.
    fn open(&mut self, key: Key) -> &mut Channel {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, Channel::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    fn remove(&mut self, key: &Key) -> Option<Channel> {
        let i = self.find(key).ok()?;
        Some(self.0.remove(i).1)
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        self.0.iter().map(|(k, _)| k)
    }

    fn values(&self) -> impl Iterator<Item = &Channel> {
        self.0.iter().map(|(_, c)| c)
    }
}

#[derive(Default)]
struct Channel {
    text: TextStream,
    /// The last event emitted for this channel (Responses): the shape of synthesized events.
    template: Option<Event>,
}

/// One piece of the redacted stream, in order: what the gateway observes (usage), may hide
/// (the usage chunk it asked for) and writes — without framing the SSE a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// An event to send.
    Event(Event),
    /// A bare `:` keep-alive (an upstream comment, without its text).
    KeepAlive,
}

impl Emit {
    /// Appends the SSE bytes of `emitted` to `out`.
    pub fn write_all(emitted: &[Emit], out: &mut Vec<u8>) {
        for e in emitted {
            match e {
                Emit::Event(ev) => sse::write_event(out, ev),
                Emit::KeepAlive => out.extend_from_slice(b":\n\n"),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Finished,
    Failed,
}

/// Redacts one streamed response: feed it the upstream's bytes in any chunking, send the client
/// what it returns. Create it with [`Redactor::stream`](super::Redactor::stream).
///
/// The output is valid SSE; every event's data is valid JSON in the upstream's shape (or
/// `[DONE]`); comments are forwarded as bare `:` keep-alives. After an error the redactor is
/// spent: end the stream (e.g. with an error event: `ApiError::to_sse_event_in`) and drop it.
pub struct StreamRedactor {
    inner: Arc<Inner>,
    family: Family,
    /// How the stream carries text: the family's, or for an unknown API ([`Family::Other`])
    /// read from its events (`None` until one shows it).
    shape: Option<StreamShape>,
    parser: Parser,
    channels: Channels,
    /// Chat/completions: the data of the latest chunk, the envelope of synthesized chunks.
    envelope: Option<String>,
    /// Event types with a text `delta`, without the suffix (`Field::Named` indexes this).
    stems: Vec<String>,
    /// Some delta went through a channel: whole-output events repeat counted text.
    streamed: bool,
    /// Typed events: the `sequence_number` of the next event written, once the gateway has
    /// dropped or added one (`None` until the first numbered event).
    next_sequence: Option<u64>,
    events: u64,
    state: State,
    /// Messages API: thinking blocks in progress, by index, for their seals.
    thinking: BTreeMap<u64, messages::Thinking>,
}

impl fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("family", &self.family)
            .field("events", &self.events)
            .field("channels", &self.channels.len())
            .field("held", &self.held())
            .field("state", &self.state)
            .finish()
    }
}

impl StreamRedactor {
    pub(crate) fn new(inner: Arc<Inner>, family: Family) -> Self {
        StreamRedactor {
            inner,
            family,
            shape: (family != Family::Other).then(|| family.stream_shape()),
            parser: Parser::new(DEFAULT_MAX_EVENT_BYTES),
            channels: Channels::default(),
            envelope: None,
            stems: Vec::new(),
            streamed: false,
            next_sequence: None,
            events: 0,
            state: State::Open,
            thinking: BTreeMap::new(),
        }
    }

    /// Caps single upstream events at `max` bytes instead of
    /// [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn with_max_event_bytes(mut self, max: usize) -> Self {
        self.parser = Parser::new(max);
        self
    }

    /// Bytes of text held back right now, over all channels.
    pub fn held(&self) -> usize {
        self.channels.values().map(|c| c.text.held()).sum()
    }

    /// Feeds raw upstream bytes (any chunking); returns the complete SSE events to send now.
    ///
    /// # Errors
    ///
    /// [`RedactError::Sse`] (framing), [`RedactError::BadEvent`] (an event that is neither JSON
    /// nor `[DONE]`, or has a wrong shape), [`RedactError::Blocked`], and
    /// [`RedactError::Finished`] after an earlier error or [`finish`](Self::finish). Nothing
    /// more may be forwarded after an error.
    pub fn push(
        &mut self,
        chunk: &[u8],
        cx: &mut RequestRedaction,
    ) -> Result<Vec<u8>, RedactError> {
        let emitted = self.push_events(chunk, cx)?;
        let mut out = Vec::with_capacity(chunk.len() + 64);
        Emit::write_all(&emitted, &mut out);
        Ok(out)
    }

    /// [`push`](Self::push), returning the events instead of their bytes.
    ///
    /// # Errors
    ///
    /// As for [`push`](Self::push).
    pub fn push_events(
        &mut self,
        chunk: &[u8],
        cx: &mut RequestRedaction,
    ) -> Result<Vec<Emit>, RedactError> {
        self.guard(|this, out| {
            let mut items = Vec::new();
            this.parser.push(chunk, &mut items)?;
            this.handle_all(items, cx, out)
        })
    }

    /// The upstream ended: returns the last events, with everything held back.
    ///
    /// # Errors
    ///
    /// As for [`push`](Self::push).
    pub fn finish(&mut self, cx: &mut RequestRedaction) -> Result<Vec<u8>, RedactError> {
        let emitted = self.finish_events(cx)?;
        let mut out = Vec::new();
        Emit::write_all(&emitted, &mut out);
        Ok(out)
    }

    /// [`finish`](Self::finish), returning the events instead of their bytes.
    ///
    /// # Errors
    ///
    /// As for [`push`](Self::push).
    pub fn finish_events(&mut self, cx: &mut RequestRedaction) -> Result<Vec<Emit>, RedactError> {
        let result = self.guard(|this, out| {
            let mut items = Vec::new();
            this.parser.finish(&mut items)?;
            this.handle_all(items, cx, out)?;
            let scanner = Arc::clone(&this.inner);
            this.flush_where(&scanner.response, |_| true, cx, out)
        });
        if result.is_ok() {
            self.state = State::Finished;
        }
        result
    }

    fn guard(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Vec<Emit>) -> Result<(), RedactError>,
    ) -> Result<Vec<Emit>, RedactError> {
        if self.state != State::Open {
            return Err(RedactError::Finished);
        }
        let mut out = Vec::new();
        match f(self, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    fn handle_all(
        &mut self,
        items: Vec<Item>,
        cx: &mut RequestRedaction,
        out: &mut Vec<Emit>,
    ) -> Result<(), RedactError> {
        let inner = Arc::clone(&self.inner);
        let scanner = &inner.response;
        for item in items {
            match item {
                // A comment's text is not forwarded: a bare comment keeps the connection alive.
                Item::Comment(_) => out.push(Emit::KeepAlive),
                Item::Event(ev) => {
                    let n = self.events;
                    self.events += 1;
                    self.event(scanner, ev, cx, out)
                        .map_err(|e| e.in_event(n))?;
                }
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        scanner: &Scanner,
        ev: Event,
        cx: &mut RequestRedaction,
        out: &mut Vec<Emit>,
    ) -> Result<(), RedactError> {
        if ev.data.trim() == "[DONE]" {
            self.flush_where(scanner, |_| true, cx, out)?;
            out.push(Emit::Event(ev));
            return Ok(());
        }
        // An unknown API's stream: read as typed events until an event shows its shape.
        if self.shape.is_none() {
            self.shape = StreamShape::sniff(&ev.data);
        }
        let shape = self.shape.unwrap_or(StreamShape::Typed);
        match shape {
            StreamShape::Choices => self.chat_event(scanner, ev, cx, out),
            StreamShape::Blocks => self.messages_event(scanner, ev, cx, out),
            StreamShape::Typed => self.typed_event(scanner, ev, cx, out),
        }
    }

    /// Pushes a delta into a channel; with `finish`, also ends the channel.
    fn push_text(
        &mut self,
        scanner: &Scanner,
        key: Key,
        text: &str,
        finish: bool,
        cx: &mut RequestRedaction,
    ) -> Result<String, RedactError> {
        if !self.channels.contains_key(&key) && self.channels.len() >= MAX_CHANNELS {
            return Err(RedactError::TooManyChannels {
                limit: MAX_CHANNELS,
            });
        }
        self.streamed = true;
        let channel = self.channels.open(key);
        let mut rec = Recorder { cx, count: true };
        let mut emitted = channel.text.push(scanner, text, &mut rec)?;
        if finish {
            emitted.push_str(&channel.text.finish(scanner, &mut rec)?);
            self.channels.remove(&key);
        }
        Ok(emitted)
    }

    /// Ends every channel `which` selects, emitting held text in synthesized events.
    fn flush_where(
        &mut self,
        scanner: &Scanner,
        which: impl Fn(&Key) -> bool,
        cx: &mut RequestRedaction,
        out: &mut Vec<Emit>,
    ) -> Result<(), RedactError> {
        let keys: Vec<Key> = self.channels.keys().copied().filter(|k| which(k)).collect();
        for key in keys {
            let Some(mut channel) = self.channels.remove(&key) else {
                continue;
            };
            let held = channel
                .text
                .finish(scanner, &mut Recorder { cx, count: true })?;
            if held.is_empty() {
                continue;
            }
            match self.shape.unwrap_or(StreamShape::Typed) {
                StreamShape::Choices => {
                    chat::write_synthesized(self.envelope.as_deref(), key, &held, out)?;
                }
                StreamShape::Blocks => {
                    if let Some(template) = channel.template.take() {
                        messages::write_synthesized(&template, key.field, &held, out)?;
                    }
                    if key.field == Field::BlockThinking {
                        self.thinking_flushed(key.outer, &held);
                    }
                }
                StreamShape::Typed => {
                    if let Some(template) = channel.template.take() {
                        events::write_synthesized(&template, &held, &mut self.next_sequence, out)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
