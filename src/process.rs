//! Process-wide settings that both the gateway binary and the plain-Pingora floor
//! (`examples/plain_pingora.rs`) run with, so that the benchmark compares like with like.

use std::io;
use std::net::{SocketAddr, TcpListener};

use pingora_core::listeners::{L4BufferSettings, ListenerConfig};

/// The client connection's read buffer. Pingora's default is 64 KiB, zero-filled, per
/// connection: a large share of the memory of many open streams, which dropping it gave back
/// (heaptrack and `benches/load.sh`; the figures are in the README's Performance section,
/// "Figures behind design choices"). Pingora reads request heads into its own
/// 4 KiB buffer and bodies into its body buffer, so the socket buffer only saved copies for
/// pipelined requests; without it each read goes straight to the socket.
const L4_READ_BUFFER: usize = 0;
/// The client connection's write buffer: Pingora's default (one TCP segment).
const L4_WRITE_BUFFER: usize = 1460;

/// A TCP listener for clients at `addr`, with the socket buffers above.
pub fn client_listener(addr: &str) -> ListenerConfig {
    ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::new(L4_READ_BUFFER, L4_WRITE_BUFFER))
}

/// Checks that `addr` can be listened on, by binding it (with `SO_REUSEADDR`, as Pingora does)
/// and letting it go at once.
///
/// Pingora 0.9.1 binds its listeners only once the server runs: on an address in use it retries
/// for ~15 s (`bind_tcp` in `pingora-core/src/listeners/l4.rs`), then the service panics
/// (`Failed to build listeners`) and the process stays up serving nothing. Checking first lets
/// the gateway exit at once with one line naming the address.
///
/// # Errors
///
/// A message naming `addr`: in use (another process listens there), or the bind error.
pub fn check_can_listen(addr: SocketAddr) -> Result<(), String> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            Err(format!("{addr} is already in use (another veilgate?)"))
        }
        Err(e) => Err(format!("cannot listen on {addr}: {e}")),
    }
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (include/mimalloc.h); the Rust
/// binding has no constant for it.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed allocator memory may stay committed before it goes back to the OS.
#[cfg(feature = "mimalloc")]
const PURGE_DELAY_MS: std::ffi::c_long = 500;

/// How often the allocator's expired purges are carried out on behalf of idle workers.
#[cfg(feature = "mimalloc")]
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Tunes the allocator; call first in `main`, before any other thread exists. A no-op without
/// the `mimalloc` feature (the binary then uses the system allocator).
///
/// Freed memory goes back to the OS within about a second, and never on the request path:
///
/// - mimalloc carries out a delayed purge only on a later allocation, which an idle worker never
///   makes, so the memory of 1,000 finished streams stayed resident (`benches/load.sh`);
/// - purging at once (`purge_delay` 0, what this did before) costs a `madvise` on almost every
///   request under load, the TLB shootdowns it sends to the other cores and the page faults that
///   commit the memory again: a visible share of the gateway's CPU in a `perf` profile under
///   wrk.
///
/// The figures of both are in the README's Performance section, "Figures behind design
/// choices".
///
/// So purges wait `PURGE_DELAY_MS` (memory reused within that time is never decommitted), and a
/// background thread runs the expired ones every `PURGE_EVERY`.
pub fn tune_allocator() {
    #[cfg(feature = "mimalloc")]
    {
        // SAFETY: setting an option is a plain store; the caller runs it before any other
        // thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
        let purger = std::thread::Builder::new()
            .name("veilgate-purge".into())
            .spawn(|| loop {
                std::thread::sleep(PURGE_EVERY);
                // SAFETY: mi_collect may be called from any thread at any time; without `force`
                // it frees only this thread's own empty pages and purges what has expired.
                unsafe { libmimalloc_sys::mi_collect(false) };
            });
        if let Err(e) = purger {
            eprintln!("veilgate: no allocator purge thread ({e}); freed memory goes back to the OS only on later allocations");
        }
    }
}
