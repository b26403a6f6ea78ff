//! Idle upstream connections, kept per worker thread.
//!
//! Pingora's own pool (`TransportConnector::release_stream`) is shared by all threads and
//! spawns a watcher task per released connection on a *random* runtime. With the gateway's
//! per-thread runtimes that cost, per request, a task spawn, a mutex, a `getpeername(2)` and
//! about two cross-thread wake-ups (an `eventfd` write each): the connection's readiness
//! events arrive on the runtime that opened it while the request using it runs on another.
//! Measured under load (strace, perf), it was the largest avoidable cost of a request.
//!
//! Here, a connection goes back to the pool of the thread that used it, and is taken again
//! only by requests on that thread — the runtime whose reactor owns it — as nginx and Envoy
//! keep per-worker pools. Nothing watches an idle connection; instead:
//!
//! * on take, a connection the upstream has closed (or that has unexpected bytes waiting)
//!   is found with a non-blocking read, as Pingora's pool does, and dropped;
//! * a connection idle longer than the idle limit is dropped on take, and by
//!   [`IdlePools::sweep`] (called in the background) so that an upstream nobody calls any
//!   more does not keep sockets open;
//! * each thread keeps at most [`MAX_IDLE_PER_THREAD`] connections; past that, the one idle
//!   longest is closed.
//!
//! A connection that dies between the check and its use is still possible (the upstream may
//! close it at that instant); the forwarder retries such a request once on a new connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pingora_core::protocols::Stream;
use thread_local::ThreadLocal;
use tokio::io::AsyncReadExt;

/// Most idle connections one worker thread keeps, over all upstreams.
pub const MAX_IDLE_PER_THREAD: usize = 256;

/// An idle connection and since when it is idle.
struct Idle {
    stream: Stream,
    since: Instant,
}

/// One thread's idle connections, by peer (`HttpPeer::reuse_hash`), most recent last.
#[derive(Default)]
struct IdlePool {
    by_peer: HashMap<u64, VecDeque<Idle>>,
    count: usize,
}

impl IdlePool {
    /// Drops the connections idle longer than `max_idle`.
    fn expire(&mut self, now: Instant, max_idle: Duration) {
        let mut dropped = 0;
        self.by_peer.retain(|_, idle| {
            let before = idle.len();
            // Oldest first: stop at the first one still fresh.
            while idle
                .front()
                .is_some_and(|c| now.saturating_duration_since(c.since) > max_idle)
            {
                idle.pop_front();
            }
            dropped += before - idle.len();
            !idle.is_empty()
        });
        self.count -= dropped;
    }

    /// Closes the connection idle longest (over all peers).
    fn evict_oldest(&mut self) {
        let oldest = self
            .by_peer
            .iter()
            .filter_map(|(key, idle)| idle.front().map(|c| (*key, c.since)))
            .min_by_key(|(_, since)| *since)
            .map(|(key, _)| key);
        if let Some(key) = oldest {
            if let Some(idle) = self.by_peer.get_mut(&key) {
                idle.pop_front();
                self.count -= 1;
                if idle.is_empty() {
                    self.by_peer.remove(&key);
                }
            }
        }
    }
}

/// Idle upstream connections, one pool per thread. See the module documentation.
pub struct IdlePools {
    pools: ThreadLocal<Mutex<IdlePool>>,
    max_idle: Duration,
}

impl IdlePools {
    /// Pools that keep a connection at most `max_idle`.
    pub fn new(max_idle: Duration) -> Self {
        IdlePools {
            pools: ThreadLocal::new(),
            max_idle,
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, IdlePool> {
        // Only this thread and the sweeper ever lock it; a poisoned pool is just a pool.
        self.pools
            .get_or_default()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle, still open connection to the peer `key` from this thread's pool.
    pub fn take(&self, key: u64) -> Option<Stream> {
        let now = Instant::now();
        let mut pool = self.local();
        loop {
            let idle = pool.by_peer.get_mut(&key)?;
            let candidate = idle.pop_back();
            if idle.is_empty() {
                pool.by_peer.remove(&key);
            }
            let mut c = candidate?;
            pool.count -= 1;
            if now.saturating_duration_since(c.since) > self.max_idle {
                // The most recent one is too old: so are all the others.
                if let Some(rest) = pool.by_peer.remove(&key) {
                    pool.count -= rest.len();
                }
                return None;
            }
            if still_open(&mut c.stream) {
                return Some(c.stream);
            }
        }
    }

    /// Puts a connection whose last exchange ended cleanly back into this thread's pool.
    pub fn put(&self, key: u64, mut stream: Stream) {
        if !still_open(&mut stream) {
            return;
        }
        let now = Instant::now();
        let mut pool = self.local();
        if pool.count >= MAX_IDLE_PER_THREAD {
            pool.expire(now, self.max_idle);
        }
        if pool.count >= MAX_IDLE_PER_THREAD {
            pool.evict_oldest();
        }
        pool.by_peer
            .entry(key)
            .or_default()
            .push_back(Idle { stream, since: now });
        pool.count += 1;
    }

    /// Closes, on every thread, the connections idle longer than the idle limit.
    pub fn sweep(&self) {
        let now = Instant::now();
        for pool in self.pools.iter() {
            pool.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .expire(now, self.max_idle);
        }
    }

    /// Idle connections over all threads.
    pub fn idle_count(&self) -> usize {
        self.pools
            .iter()
            .map(|p| {
                p.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .count
            })
            .sum()
    }
}

/// Whether an idle connection is still usable: nothing to read, no end of file, no error.
/// The same test as Pingora's pool; a non-blocking read that is not ready means "open".
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // `unconstrained`: tokio's cooperative budget must not make a ready read look pending.
    tokio::task::unconstrained(stream.read(&mut byte))
        .now_or_never()
        .is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: our side as a Pingora stream, and the peer's side.
    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let ours = pingora_core::protocols::l4::stream::Stream::from(ours.unwrap());
        (Box::new(ours), theirs.unwrap().0)
    }

    #[tokio::test]
    async fn gives_back_an_open_connection_most_recent_first() {
        let pools = IdlePools::new(Duration::from_secs(60));
        let (a, _pa) = pair().await;
        let (b, _pb) = pair().await;
        let (id_a, id_b) = (a.id(), b.id());
        pools.put(7, a);
        pools.put(7, b);
        assert_eq!(pools.idle_count(), 2);
        assert_eq!(pools.take(7).map(|s| s.id()), Some(id_b));
        assert_eq!(pools.take(7).map(|s| s.id()), Some(id_a));
        assert!(pools.take(7).is_none());
        assert!(pools.take(8).is_none(), "another peer has none");
        assert_eq!(pools.idle_count(), 0);
    }

    #[tokio::test]
    async fn drops_a_connection_the_upstream_closed() {
        let pools = IdlePools::new(Duration::from_secs(60));
        let (a, pa) = pair().await;
        pools.put(1, a);
        drop(pa);
        // Let the reactor see the end of file.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pools.take(1).is_none());
        assert_eq!(pools.idle_count(), 0);
    }

    #[tokio::test]
    async fn drops_a_connection_with_unexpected_bytes() {
        let pools = IdlePools::new(Duration::from_secs(60));
        let (a, mut pa) = pair().await;
        pools.put(1, a);
        pa.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pools.take(1).is_none());
    }

    #[tokio::test]
    async fn expires_idle_connections_on_take_and_sweep() {
        let pools = IdlePools::new(Duration::from_millis(30));
        let (a, _pa) = pair().await;
        let (b, _pb) = pair().await;
        pools.put(1, a);
        pools.put(2, b);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(pools.take(1).is_none());
        assert_eq!(pools.idle_count(), 1);
        pools.sweep();
        assert_eq!(pools.idle_count(), 0);
    }

    #[tokio::test]
    async fn keeps_at_most_the_bound_closing_the_oldest() {
        let pools = IdlePools::new(Duration::from_secs(60));
        let mut peers = Vec::new();
        let (first, p) = pair().await;
        peers.push(p);
        pools.put(1, first);
        for _ in 0..MAX_IDLE_PER_THREAD {
            let (s, p) = pair().await;
            peers.push(p);
            pools.put(2, s);
        }
        assert_eq!(pools.idle_count(), MAX_IDLE_PER_THREAD);
        assert!(pools.take(1).is_none(), "the oldest (peer 1) was closed");
    }

    #[test]
    fn each_thread_has_its_own_pool() {
        let pools = std::sync::Arc::new(IdlePools::new(Duration::from_secs(60)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, _pa) = pair().await;
            pools.put(1, a);
            let other = pools.clone();
            let seen = std::thread::spawn(move || other.take(1).is_some())
                .join()
                .unwrap();
            assert!(
                !seen,
                "another thread does not take this thread's connection"
            );
            assert_eq!(pools.idle_count(), 1);
            assert!(pools.take(1).is_some());
        });
    }
}
