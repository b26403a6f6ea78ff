//! Reading a client's request, bounded in size and time: the whole header within
//! `client_timeout` (`adapter::ClientDeadlines`), each piece of the body within it too, the body
//! within `max_body_bytes` ([`read`]), and the bodies of all requests together within
//! `max_buffered_bytes` ([`BufferPool`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::downstream::{Downstream, ReadError};
use crate::wire::ApiError;

/// The request body bytes buffered at once by all the requests of the process, held to the
/// `max_buffered_bytes` cap: each request takes bytes from it as its body arrives (a
/// [`Reservation`]) and gives them back when it ends. The cap is passed at each take, so a
/// reload changes it at once (bytes already taken stay taken).
///
/// It counts the bytes read, not the buffers holding them: a buffer that grows as a body
/// arrives (past its first MiB) may be up to twice as large for a moment, and the copies later
/// stages make (redaction, a model alias) are not counted.
#[derive(Debug, Default)]
pub struct BufferPool {
    used: AtomicUsize,
    gauge: Option<prometheus::IntGauge>,
}

impl BufferPool {
    /// An empty pool; `gauge`, if given, follows the bytes in use.
    pub fn new(gauge: Option<prometheus::IntGauge>) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            used: AtomicUsize::new(0),
            gauge,
        })
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes if that keeps the total within `cap`.
    fn take(&self, n: usize, cap: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= cap)
            })
            .is_ok();
        if taken {
            self.follow(n as i64);
        }
        taken
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        self.follow(-(n as i64));
    }

    fn follow(&self, delta: i64) {
        if let Some(g) = &self.gauge {
            g.add(delta);
        }
    }
}

/// The bytes one request has taken from a [`BufferPool`]; given back when it is dropped (the
/// request context holds it, so that is when the request ends, whichever way).
#[derive(Debug, Default)]
pub struct Reservation {
    pool: Option<Arc<BufferPool>>,
    bytes: usize,
}

impl Reservation {
    /// Nothing taken yet from `pool`.
    pub fn new(pool: Arc<BufferPool>) -> Reservation {
        Reservation {
            pool: Some(pool),
            bytes: 0,
        }
    }

    /// Takes `n` more bytes if the pool stays within `cap`; a reservation without a pool
    /// (the default) takes anything.
    pub fn grow(&mut self, n: usize, cap: usize) -> bool {
        let Some(pool) = &self.pool else {
            return true;
        };
        if !pool.take(n, cap) {
            return false;
        }
        self.bytes += n;
        true
    }

    /// Bytes taken.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives every byte taken back (the buffer they were for is gone).
    pub fn release(&mut self) {
        if let Some(pool) = &self.pool {
            if self.bytes > 0 {
                pool.give_back(self.bytes);
            }
        }
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// 503 when the bytes buffered by all requests would go over `max_buffered_bytes`.
pub fn overloaded() -> ApiError {
    ApiError::new(
        503,
        "server_error",
        "The gateway is buffering too many request bodies at once right now (its max_buffered_bytes). Retry the request in a moment.",
    )
    .code("server_overloaded")
}

/// Bytes of a body with a declared length allocated before its first byte arrives (beyond,
/// the buffer grows as bytes are taken from the pool).
const FIRST_CAPACITY: usize = 1024 * 1024;

/// The bounds [`read`] holds a body to.
pub struct Bounds<'a> {
    /// Largest body (`max_body_bytes`).
    pub limit: usize,
    /// Longest wait for each piece (`client_timeout`).
    pub timeout: Duration,
    /// This request's share of the process's buffers…
    pub reservation: &'a mut Reservation,
    /// …held to this total (`max_buffered_bytes`).
    pub cap: usize,
}

/// Reads the whole request body: at most `limit` bytes, each read within `timeout`, every
/// piece taken from the process's [`BufferPool`] before it is kept.
///
/// A declared `Content-Length` over the limit is refused before a byte is read.
///
/// # Errors
/// 413 past `limit`, 408 when the client stalls for `timeout`, 503 ([`overloaded`]) when the
/// bodies buffered by all requests would go over `cap`, 400 when the body cannot be read.
/// The bytes read so far are dropped then, and given back to the pool at once.
pub async fn read<D: Downstream>(client: &mut D, bounds: Bounds<'_>) -> Result<Bytes, ApiError> {
    let Bounds {
        limit,
        timeout,
        reservation,
        cap,
    } = bounds;
    let read = read_bounded(client, limit, timeout, reservation, cap).await;
    if read.is_err() {
        reservation.release();
    }
    read
}

async fn read_bounded<D: Downstream>(
    client: &mut D,
    limit: usize,
    timeout: Duration,
    reservation: &mut Reservation,
    cap: usize,
) -> Result<Bytes, ApiError> {
    let declared = client.declared_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    if client.expects_continue() {
        client.write_continue().await.map_err(|_| read_failed())?;
    }

    let capacity = declared.map_or(8 * 1024, |n| (n as usize).min(FIRST_CAPACITY));
    let mut body = BytesMut::with_capacity(capacity);
    // Pingora times each read of the body out (`ReadTimedout`); no timer of our own per read.
    client.set_read_timeout(timeout);
    loop {
        let chunk = match client.read_body().await {
            Err(ReadError::TimedOut) => return Err(timed_out(timeout)),
            Err(ReadError::Failed) => return Err(read_failed()),
            Ok(None) => break,
            Ok(Some(chunk)) => chunk,
        };
        if body.len() + chunk.len() > limit {
            return Err(ApiError::body_too_large(limit));
        }
        if !reservation.grow(chunk.len(), cap) {
            return Err(overloaded());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) fn read_failed() -> ApiError {
    ApiError::invalid_request("The request body could not be read (the connection broke off).")
        .code("body_read_failed")
}

pub(crate) fn timed_out(timeout: Duration) -> ApiError {
    ApiError::new(
        408,
        "invalid_request_error",
        format!(
            "The request body did not arrive in time (no data for {}).",
            human(timeout)
        ),
    )
    .code("request_timeout")
}

/// `1s`, `1500ms`: a timeout as the config file writes it.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Bytes read and thrown away after refusing a body, so the client can finish sending and
/// read the refusal instead of hitting a reset connection (what nginx calls lingering close).
const LINGER_BYTES: usize = 4 * 1024 * 1024;
/// Longest time spent lingering.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// After a refusal written mid-body: reads and discards what the client is still sending,
/// bounded by `LINGER_BYTES` (4 MiB) and `LINGER_TIME` (2 s). The connection is not reused afterwards.
pub async fn linger<D: Downstream>(client: &mut D) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut drained = 0usize;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, client.read_body()).await {
            Ok(Ok(Some(chunk))) => drained += chunk.len(),
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_holds_every_request_to_one_cap_and_takes_back_on_drop() {
        let gauge = prometheus::IntGauge::new("t", "t").unwrap();
        let pool = BufferPool::new(Some(gauge.clone()));
        let mut a = Reservation::new(pool.clone());
        let mut b = Reservation::new(pool.clone());
        assert!(a.grow(600, 1000));
        assert!(b.grow(300, 1000));
        assert!(!b.grow(101, 1000), "over the cap");
        assert_eq!((a.bytes(), b.bytes(), pool.used()), (600, 300, 900));
        assert!(b.grow(100, 1000), "exactly the cap");
        assert_eq!(gauge.get(), 1000);
        // A reload lowering the cap refuses new bytes; those taken stay taken.
        assert!(!a.grow(1, 500));
        drop(a);
        assert_eq!((pool.used(), gauge.get()), (400, 400));
        assert!(!Reservation::new(pool.clone()).grow(101, 500));
        assert!(Reservation::new(pool.clone()).grow(100, 500));
        b.release();
        assert_eq!((pool.used(), gauge.get(), b.bytes()), (0, 0, 0));
        drop(b);
        assert_eq!(pool.used(), 0, "nothing given back twice");
        // Without a pool nothing is counted.
        assert!(Reservation::default().grow(usize::MAX, 0));
    }

    #[test]
    fn the_overload_error_is_openai_shaped() {
        let e = overloaded();
        assert_eq!(e.status, 503);
        assert_eq!(e.kind, "server_error");
        assert_eq!(e.code, Some("server_overloaded"));
        assert!(e.message.contains("Retry"));
    }
}
