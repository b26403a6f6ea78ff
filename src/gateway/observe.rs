//! Watching an upstream answer go by: usage, finish reasons and the answering model, for
//! budgets and telemetry — without holding any byte back from the client.
//!
//! A stream is framed once. On a redacting route the stream redactor frames it and hands over
//! its events ([`StreamObserver::emit`]): each is observed, the usage chunk the gateway asked
//! for is hidden, and the rest is written. Otherwise the observer frames it itself
//! ([`StreamObserver::feed`]) and passes every event on byte for byte.

use serde_json::Value;

use crate::redact::Emit;
use crate::wire::sse;
use crate::wire::usage::{StreamUsage, Usage};
use crate::wire::Family;

/// Longest SSE event buffered while looking for its end; a longer one is not inspected
/// (usage is then estimated from what was seen).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Relays a streamed (SSE) answer event by event: passes every complete event on, learns
/// usage from it, and drops the usage-only chunk the gateway asked for on the client's behalf.
#[derive(Debug, Default)]
pub struct StreamObserver {
    pending: Vec<u8>,
    overflowed: bool,
    /// Drop `choices: []` usage chunks (the client did not ask for usage).
    pub strip_usage_chunk: bool,
    /// What was learned so far.
    pub usage: StreamUsage,
}

impl StreamObserver {
    /// An observer of an answer of `family`; `strip_usage_chunk` drops the usage event the
    /// gateway asked for ([`Family::is_added_usage_event`]) before the client sees it.
    pub fn new(family: Family, strip_usage_chunk: bool) -> Self {
        StreamObserver {
            strip_usage_chunk,
            usage: StreamUsage::new(family),
            ..StreamObserver::default()
        }
    }

    /// Feeds raw body bytes, in any chunking; returns the bytes to send on now (whole events).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        while let Some(end) = sse::event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            let keep = if self.overflowed {
                true
            } else {
                self.observe_event(&event)
            };
            self.overflowed = false;
            if keep {
                out.extend_from_slice(&event);
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            // Too long to inspect: pass it on as it is and skip to the end of this event.
            out.append(&mut self.pending);
            self.overflowed = true;
        }
        out
    }

    /// Events of the stream redactor, already framed: each observed, the usage chunk hidden,
    /// the rest returned as SSE bytes.
    pub fn emit(&mut self, emitted: Vec<Emit>) -> Vec<u8> {
        let mut out = Vec::new();
        for e in emitted {
            match e {
                Emit::Event(ev) => {
                    if self.observe_data(&ev.data) {
                        sse::write_event(&mut out, &ev);
                    }
                }
                Emit::KeepAlive => out.extend_from_slice(b":\n\n"),
            }
        }
        out
    }

    /// The end of the stream: whatever is left (an unterminated last event) goes out.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Learns from one event; returns whether it goes to the client.
    fn observe_event(&mut self, event: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(event) else {
            return true;
        };
        // One reading of an event, the parser's (CRLF, LF and lone-CR line ends alike).
        let mut items = Vec::new();
        let mut parser = sse::Parser::new(MAX_EVENT_BYTES);
        if parser.push(text.as_bytes(), &mut items).is_err() || parser.finish(&mut items).is_err() {
            return true;
        }
        let mut keep = true;
        for item in &items {
            if let sse::Item::Event(ev) = item {
                keep &= self.observe_data(&ev.data);
            }
        }
        keep
    }

    /// Learns from one event's data; returns whether the event goes to the client.
    fn observe_data(&mut self, data: &str) -> bool {
        if data.is_empty() || data == "[DONE]" {
            return true;
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return true;
        };
        self.usage.observe(&value);
        !(self.strip_usage_chunk && self.usage.family.is_added_usage_event(&value))
    }
}

/// The usage to charge: reported, or estimated.
pub fn charged(seen: &StreamUsage, estimated_prompt: u64) -> Usage {
    seen.charge(estimated_prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_usage_across_any_chunking() {
        let stream = concat!(
            "data: {\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcd\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        for size in 1..stream.len() {
            let mut o = StreamObserver::default();
            let mut passed = Vec::new();
            for chunk in stream.chunks(size) {
                passed.extend(o.feed(chunk));
            }
            passed.extend(o.finish());
            assert_eq!(passed, stream, "unchanged when not stripping");
            assert_eq!(
                o.usage.reported,
                Some(Usage::new(7, 2)),
                "chunk size {size}"
            );
            assert_eq!(o.usage.finish_reasons, ["stop"]);
            assert_eq!(o.usage.response_model.as_deref(), Some("m1"));
        }
    }

    #[test]
    fn lone_cr_line_ends_are_events_too() {
        // The parser's line ends, all of them: an upstream ending lines with a lone CR is
        // observed (usage counted, the usage chunk hidden) and not held back to the end.
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\r\rdata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\r\rdata: [DONE]\r\r";
        let mut o = StreamObserver::new(Family::ChatCompletions, true);
        let first = o.feed(&stream[..60]);
        assert!(
            first.starts_with(b"data: {"),
            "the first event goes out at once"
        );
        let mut out = first;
        out.extend(o.feed(&stream[60..]));
        out.extend(o.finish());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("usage") && out.contains("[DONE]"), "{out:?}");
        assert_eq!(o.usage.reported, Some(Usage::new(3, 4)));
    }

    #[test]
    fn strips_only_the_usage_chunk() {
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let mut o = StreamObserver::new(Family::ChatCompletions, true);
        let out = String::from_utf8(o.feed(stream)).unwrap();
        assert!(!out.contains("usage") && out.contains("[DONE]") && out.contains("\"x\""));
        assert_eq!(o.usage.reported, Some(Usage::new(1, 1)));
    }

    #[test]
    fn redacted_events_are_observed_without_framing_them_again() {
        let ev = |data: &str| {
            Emit::Event(sse::Event {
                data: data.to_owned(),
                ..sse::Event::default()
            })
        };
        let mut o = StreamObserver::new(Family::ChatCompletions, true);
        let out = o.emit(vec![
            ev(r#"{"model":"m2","choices":[{"index":0,"delta":{"content":"[REDACTED:email]"},"finish_reason":"stop"}]}"#),
            Emit::KeepAlive,
            ev(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            ev("[DONE]"),
        ]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[REDACTED:email]\"},\"finish_reason\":\"stop\"}]}\n\n:\n\ndata: [DONE]\n\n",
            "the usage chunk the gateway asked for is hidden"
        );
        assert_eq!(o.usage.reported, Some(Usage::new(3, 4)));
        assert_eq!(o.usage.finish_reasons, ["stop"]);
        assert_eq!(o.usage.response_model.as_deref(), Some("m2"));
    }
}
