//! The temporary directory of a cluster: data directory, socket and log.

use std::fs;
use std::path::{Path, PathBuf};

use crate::unique_name::unique_name;
use crate::{ClusterOptions, TestingError};

/// Creates the cluster's temporary directory. A non-durable cluster goes to `/dev/shm` when
/// that is a tmpfs of at least 1 GiB: `initdb` and `CREATE DATABASE` run several times
/// faster there, and with `fsync` off the data would not survive an OS crash anyway. Otherwise,
/// and for durable (benchmark) clusters, it goes under [`std::env::temp_dir`].
pub(crate) fn create(opts: &ClusterOptions) -> Result<PathBuf, TestingError> {
    let name = unique_name("pgbus-pg");
    if !opts.fsync && shm_is_roomy() {
        let dir = Path::new("/dev/shm").join(&name);
        if fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    let dir = std::env::temp_dir().join(name);
    fs::create_dir(&dir).map_err(TestingError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Whether `/dev/shm` is a tmpfs of at least 1 GiB (containers often give it only 64 MiB).
fn shm_is_roomy() -> bool {
    fs::read_to_string("/proc/mounts").is_ok_and(|mounts| roomy_shm_in(&mounts))
}

/// Whether the mount table `mounts` (as in `/proc/mounts`) has `/dev/shm` as a tmpfs of at
/// least 1 GiB.
fn roomy_shm_in(mounts: &str) -> bool {
    mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "/dev/shm", "tmpfs", options, ..] = fields[..] else {
            return false;
        };
        // The kernel shows `size=<N>k` unless it is the default, half the RAM.
        let size = options.split(',').find_map(|o| o.strip_prefix("size="));
        size.is_none_or(|size| {
            let kib = size.strip_suffix('k').and_then(|n| n.parse::<u64>().ok());
            kib.is_some_and(|kib| kib >= 1 << 20)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_must_be_a_tmpfs_of_a_gibibyte() {
        let mount =
            |options: &str| format!("proc /proc proc rw 0 0\nshm /dev/shm tmpfs {options} 0 0\n");
        assert!(roomy_shm_in(&mount("rw,nosuid,nodev")));
        assert!(roomy_shm_in(&mount("rw,size=2097152k")));
        assert!(!roomy_shm_in(&mount("rw,size=65536k")));
        assert!(!roomy_shm_in("shm /dev/shm ext4 rw 0 0\n"));
        assert!(!roomy_shm_in(""));
    }
}
