//! The access log: one JSON line per request, written by a thread of its own.
//!
//! The request path formats the line and `try_send`s it into a bounded channel; a writer
//! thread (`veilgate-access-log`) wakes every [`FLUSH_EVERY`], writes what is queued in one
//! buffered batch and flushes. Queuing a line never wakes the writer (a wake-up per request
//! cost a context switch per request under load), so a line reaches the sink at most
//! `FLUSH_EVERY` after its request ended. When the writer falls behind (a slow pipe, a full
//! disk) or the queue is full, lines are dropped and counted in
//! `veilgate_access_log_dropped_lines_total` instead of slowing requests.
//!
//! ```json
//! {"time":"2026-05-04T09:12:03.118Z","request_id":"4bf9…","trace_id":"0af7…",
//!  "environment":"staging","route":"chat","key":"team-a","model":"gpt-4o*",
//!  "upstream":"openai","attempts":1,"status":200,"stream":true,"duration_ms":812.4,
//!  "upstream_first_byte_ms":3.2,"upstream_first_token_ms":301.9,"tokens":{"prompt":31,"completion":112},"cost_usd":0.0011975,
//!  "redactions":[{"direction":"request","detector":"email","action":"mask","count":2}],
//!  "ratelimit":"allowed"}
//! ```
//!
//! `time` is when the request ended. `key` is the virtual key's *name*; the record holds
//! nothing else of the key.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::metrics::Metrics;
use super::record::RequestRecord;
use super::TelemetryError;
use crate::wire::usage::Usage;

/// Where access-log lines go: stdout in production, a buffer in tests.
pub enum AccessLogSink {
    /// Standard output.
    Stdout,
    /// Any writer, e.g. a file or a test buffer.
    Writer(Box<dyn Write + Send>),
    /// No access log.
    Disabled,
}

impl std::fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessLogSink::Stdout => "Stdout",
            AccessLogSink::Writer(_) => "Writer",
            AccessLogSink::Disabled => "Disabled",
        })
    }
}

/// How often the writer wakes up to write what is queued. With the default queue of 8,192
/// lines this sustains ~300,000 lines/s before lines are dropped.
const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// The sending half of the access log, held by [`Telemetry`](super::Telemetry).
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: Option<SyncSender<String>>,
    stop: Arc<AtomicBool>,
    /// The writer thread, to wake it at shutdown.
    writer: Option<std::thread::Thread>,
    done: Mutex<Option<Receiver<()>>>,
    metrics: Metrics,
}

impl AccessLog {
    /// Starts the writer thread (unless the sink is [`AccessLogSink::Disabled`]), with room
    /// for `capacity` lines in flight.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::Start`] when the thread cannot be spawned.
    pub(crate) fn start(
        sink: AccessLogSink,
        capacity: usize,
        metrics: Metrics,
    ) -> Result<AccessLog, TelemetryError> {
        let stop = Arc::new(AtomicBool::new(false));
        let writer: Box<dyn Write + Send> = match sink {
            AccessLogSink::Disabled => {
                return Ok(AccessLog {
                    tx: None,
                    stop,
                    writer: None,
                    done: Mutex::new(None),
                    metrics,
                })
            }
            AccessLogSink::Stdout => Box::new(std::io::stdout()),
            AccessLogSink::Writer(w) => w,
        };
        let (tx, rx) = mpsc::sync_channel::<String>(capacity.max(1));
        let (done_tx, done_rx) = mpsc::channel();
        let thread_stop = stop.clone();
        let thread_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("veilgate-access-log".into())
            .spawn(move || {
                write_lines(rx, writer, &thread_stop, &thread_metrics);
                let _ = done_tx.send(());
            })
            .map_err(|e| TelemetryError::Start(format!("access log thread: {e}")))?;
        Ok(AccessLog {
            tx: Some(tx),
            stop,
            writer: Some(thread.thread().clone()),
            done: Mutex::new(Some(done_rx)),
            metrics,
        })
    }

    /// Formats and queues the line of a finished request; never waits.
    pub(crate) fn write(&self, record: &RequestRecord) {
        let Some(tx) = &self.tx else {
            return;
        };
        if self.stop.load(Ordering::Acquire) {
            self.metrics.access_log_dropped();
            return;
        }
        let mut line = match serde_json::to_string(&Line::of(record)) {
            Ok(line) => line,
            Err(e) => {
                log::error!("access log line not written: {e}");
                self.metrics.access_log_dropped();
                return;
            }
        };
        line.push('\n');
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.access_log_dropped();
            }
        }
    }

    /// Asks the writer to write what is queued, flush and stop. Returns at once.
    pub(crate) fn begin_shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(writer) = &self.writer {
            writer.unpark();
        }
    }

    /// Waits for the writer to finish, or `deadline`. True when it finished.
    pub(crate) fn wait(&self, deadline: Instant) -> bool {
        let Ok(mut done) = self.done.lock() else {
            return false;
        };
        let Some(rx) = done.as_ref() else {
            return true;
        };
        let finished = !matches!(
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            Err(RecvTimeoutError::Timeout)
        );
        if finished {
            *done = None;
        }
        finished
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The writer thread's loop: every [`FLUSH_EVERY`] write what is queued and flush; stop
/// when asked (after writing what is queued) or when every sender is gone.
fn write_lines(
    rx: Receiver<String>,
    writer: Box<dyn Write + Send>,
    stop: &AtomicBool,
    metrics: &Metrics,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, writer);
    let mut failing = false;
    loop {
        // Unparked early only at shutdown; a spurious wake-up just writes sooner.
        std::thread::park_timeout(FLUSH_EVERY);
        let stopping = stop.load(Ordering::Acquire);
        let mut wrote = false;
        let disconnected = loop {
            match rx.try_recv() {
                Ok(line) => {
                    wrote = true;
                    if let Err(e) = out.write_all(line.as_bytes()) {
                        metrics.access_log_dropped();
                        if !failing {
                            log::error!("access log write failed: {e}; lines are being dropped");
                            failing = true;
                        }
                    } else {
                        failing = false;
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if wrote {
            let _ = out.flush();
        }
        if stopping || disconnected {
            break;
        }
    }
    let _ = out.flush();
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    trace_id: String,
    environment: &'a str,
    route: &'a str,
    key: Option<&'a str>,
    model: &'a str,
    upstream: Option<&'a str>,
    attempts: usize,
    status: u16,
    stream: bool,
    duration_ms: f64,
    upstream_first_byte_ms: Option<f64>,
    upstream_first_token_ms: Option<f64>,
    tokens: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    redactions: Vec<Redaction<'a>>,
    ratelimit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratelimit_budget: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redaction_failure: Option<&'static str>,
}

#[derive(Serialize)]
struct Redaction<'a> {
    direction: &'static str,
    detector: &'a str,
    action: &'a str,
    count: u64,
}

impl<'a> Line<'a> {
    fn of(r: &'a RequestRecord) -> Line<'a> {
        let end = r.end_instant();
        let first_byte = r
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.first_byte.map(|t| t.saturating_duration_since(a.started)));
        Line {
            time: rfc3339(r.wall_time(end)),
            request_id: &r.request_id,
            trace_id: r.trace.trace_id_hex(),
            environment: &r.environment,
            route: &r.route,
            key: r.key.as_deref(),
            model: &r.model,
            upstream: r.attempts.last().map(|a| a.upstream.as_str()),
            attempts: r.attempts.len(),
            status: r.status,
            stream: r.stream,
            duration_ms: millis(r.duration(end)),
            upstream_first_byte_ms: first_byte.map(millis),
            upstream_first_token_ms: r
                .attempts
                .iter()
                .rev()
                .find_map(|a| {
                    a.first_token
                        .map(|t| t.saturating_duration_since(a.started))
                })
                .map(millis),
            tokens: r.tokens,
            cost_usd: r.cost_usd,
            redactions: r
                .redactions
                .iter()
                .map(|x| Redaction {
                    direction: x.direction.as_str(),
                    detector: &x.detector,
                    action: x.action.as_str(),
                    count: x.n,
                })
                .collect(),
            ratelimit: r.rate_limit.label(),
            ratelimit_budget: match &r.rate_limit {
                super::record::RateLimitOutcome::Refused { budget } => Some(budget),
                _ => None,
            },
            error: r.error,
            redaction_failure: r.redaction_failure.as_ref().map(|f| f.reason),
        }
    }
}

/// Milliseconds with microsecond precision.
fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// RFC 3339 in UTC with milliseconds: `2026-05-04T09:12:03.118Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_777_885_923); // 2026-05-04T09:12:03Z
        assert_eq!(rfc3339(t), "2026-05-04T09:12:03.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31T23:59:59Z
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
    }
}
