//! Headers pgbus reserves for what an event carries beyond its columns: its schema version,
//! and the CloudEvents attributes of an event received from elsewhere (its original id,
//! source, time, schema and content type), so that no SQL statement changes for them.
//!
//! Every reserved name starts with `pgbus-`. A hyphen is not allowed in a CloudEvents
//! attribute name, so an extension decoded from a CloudEvent can never take a reserved name.

use chrono::DateTime;

use crate::error::{Error, Result};
use crate::version::{VERSION_HEADER, parse_version};

/// The prefix of every reserved header name.
pub(crate) const PREFIX: &str = "pgbus-";
/// The CloudEvents `id` of an event decoded from a CloudEvent whose id is not the
/// lower-case hyphenated form of a UUID (which becomes the event id itself).
pub(crate) const ID: &str = "pgbus-id";
/// The CloudEvents `source` of an event that did not originate at this publisher.
pub(crate) const SOURCE: &str = "pgbus-source";
/// The CloudEvents `time` of an event that did not originate at this publisher (RFC 3339).
pub(crate) const TIME: &str = "pgbus-time";
/// The CloudEvents `dataschema` of an event decoded from a CloudEvent.
pub(crate) const DATASCHEMA: &str = "pgbus-dataschema";
/// The CloudEvents `datacontenttype` of a decoded event, when not `application/json`.
pub(crate) const DATACONTENTTYPE: &str = "pgbus-datacontenttype";

/// Checks the values of the reserved headers pgbus reads back: a version is a whole number
/// from 1, a time is RFC 3339.
pub(crate) fn validate(name: &str, value: &str) -> Result<()> {
    if !name.starts_with(PREFIX) {
        return Ok(());
    }
    let ok = match name {
        VERSION_HEADER => parse_version(value).is_some(),
        TIME => DateTime::parse_from_rfc3339(value).is_ok(),
        ID | SOURCE | DATASCHEMA | DATACONTENTTYPE => !value.is_empty(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            "header value",
            format!("reserved header {name:?} cannot hold {value:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_values_are_checked() {
        assert!(validate(VERSION_HEADER, "2").is_ok());
        for bad in ["0", "", "-1", "01", "x", "4294967296"] {
            assert!(validate(VERSION_HEADER, bad).is_err(), "{bad:?}");
        }
        assert!(validate(TIME, "2024-05-01T10:00:00.5+02:00").is_ok());
        assert!(validate(TIME, "yesterday").is_err());
        assert!(validate(SOURCE, "").is_err());
        assert!(validate("correlation_id", "").is_ok());
    }
}
