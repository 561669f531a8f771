//! The fault tests' settings from the environment: short by default, long with
//! `PGBUS_FAULTS_LONG=1`; worker logs with `PGBUS_FAULTS_VERBOSE=1`.

/// Whether the environment variable `name` is set to something other than "" or "0".
fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `short` normally, `long` with `PGBUS_FAULTS_LONG=1`.
pub fn size<T>(short: T, long: T) -> T {
    if flag("PGBUS_FAULTS_LONG") {
        long
    } else {
        short
    }
}

/// Whether fault tests should print more (worker logs): `PGBUS_FAULTS_VERBOSE=1`.
pub fn verbose() -> bool {
    flag("PGBUS_FAULTS_VERBOSE")
}
