//! The server's System V shared memory segment: PostgreSQL refuses to start while processes
//! are still attached to the previous one, so a restart waits for them.

use std::fs;
use std::path::Path;

/// The id of the System V shared memory segment recorded in `postmaster.pid` (line 7:
/// key and id) of the data directory `data`.
pub(crate) fn segment_id(data: &Path) -> Option<u64> {
    let pid_file = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    pid_file
        .lines()
        .nth(6)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How many processes are attached to a shared memory segment (`None` if it is gone or
/// this is not Linux).
pub(crate) fn attached(id: u64) -> Option<u64> {
    let table = fs::read_to_string("/proc/sysvipc/shm").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1)?.parse::<u64>().ok()? == id).then(|| cols.get(6)?.parse().ok())?
    })
}
