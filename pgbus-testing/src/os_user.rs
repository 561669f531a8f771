//! Whom the server runs as: `initdb` and `postgres` refuse to run as root, so as root they
//! run as the `postgres` OS user (looked up in `/etc/passwd`).

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::TestingError;

/// The `(uid, gid)` to run the server as: `None` to run it as ourselves, the `postgres`
/// user's when we are root.
pub(crate) fn server_user() -> Result<Option<(u32, u32)>, TestingError> {
    if !running_as_root() {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd_entry(&passwd, "postgres")
        .map(Some)
        .ok_or(TestingError::NoPostgresUser)
}

/// Whether this process runs as root (the owner of `/proc/self`; where there is no
/// `/proc`, taken as not root).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `(uid, gid)` of `user` in the text of an `/etc/passwd`.
fn passwd_entry(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entries() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresql:x:7:7::/:/bin/sh\n\
                      postgres:x:104:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(passwd_entry(passwd, "postgres"), Some((104, 110)));
        assert_eq!(passwd_entry(passwd, "root"), Some((0, 0)));
        assert_eq!(passwd_entry(passwd, "nobody"), None);
        assert_eq!(passwd_entry("postgres:x:oops:1", "postgres"), None);
    }
}
