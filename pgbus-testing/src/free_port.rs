//! Loopback ports for the servers this crate starts (PostgreSQL, PgBouncer, brokers).
//!
//! A port is chosen below Linux's default ephemeral range (32768–60999). A port the kernel
//! hands out for `bind(0)` comes from that range, and so does the local port of every
//! outgoing connection: a server that takes seconds to boot (RabbitMQ's Erlang VM) could
//! find such a port taken by then. Below the range, only another server asking for that very
//! port can collide. Each process walks the range from its own start, and one process never
//! hands out a port twice.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::TestingError;

/// The ports chosen from: [`LOW`, `HIGH`).
const LOW: u32 = 20_000;
const HIGH: u32 = 32_768;

/// The next candidate of this process, as an offset into the range (`u32::MAX`: not set).
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A loopback port nothing listens on now, below the ephemeral range.
pub(crate) fn free_port() -> Result<u16, TestingError> {
    let span = HIGH - LOW;
    // Processes start apart (by pid), so that concurrent test binaries rarely try the same.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(97) % span,
        Relaxed,
        Relaxed,
    );
    for _ in 0..span {
        let port = (LOW + NEXT.fetch_add(1, Relaxed) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(TestingError::io("finding a free port")(
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "every port from 20000 to 32767 is taken",
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().expect("a free port")).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port handed out twice: {ports:?}"
        );
        for p in ports {
            assert!((20_000..32_768).contains(&p), "{p} is outside the range");
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("the port is free");
        }
    }
}
