//! Checks of everything a caller hands in, before anything is written: event type names,
//! subscription patterns, free-text fields, headers and payloads.

use std::io::Write;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{MAX_TEXT_LEN, MAX_TYPE_LEN, NewEvent};
use crate::reserved;

/// Checks everything about an event before it is written: type name, text fields, headers,
/// payload content and size.
pub(crate) fn new_event(e: &NewEvent, max_payload_bytes: usize) -> Result<()> {
    validate_type(&e.event_type)?;
    for (field, value) in [
        ("subject", &e.subject),
        ("key", &e.key),
        ("dedupe_key", &e.dedupe_key),
    ] {
        if let Some(v) = value {
            validate_text(field, v)?;
        }
    }
    for (name, value) in &e.headers {
        validate_text("header name", name)?;
        if value.len() > MAX_TEXT_LEN || value.contains('\0') {
            return Err(Error::field(
                "header value",
                format!("header {name:?}: at most {} bytes, no NUL", MAX_TEXT_LEN),
            ));
        }
        reserved::validate(name, value)?;
    }
    validate_payload(&e.data)?;
    let size = json_size(&e.data);
    if size > max_payload_bytes {
        return Err(Error::PayloadTooLarge {
            size,
            limit: max_payload_bytes,
        });
    }
    Ok(())
}

/// Checks an event type name: non-empty dot-separated segments of `[A-Za-z0-9_-]`.
pub(crate) fn validate_type(name: &str) -> Result<()> {
    check_dotted(name, false).map_err(|reason| Error::InvalidEventType {
        type_name: name.to_owned(),
        reason,
    })
}

/// Checks a subscription pattern: a type name whose segments may be `*` (any text,
/// including further segments).
pub(crate) fn validate_pattern(pattern: &str) -> Result<()> {
    check_dotted(pattern, true).map_err(|reason| Error::InvalidEventType {
        type_name: pattern.to_owned(),
        reason,
    })
}

fn check_dotted(name: &str, allow_star: bool) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_TYPE_LEN {
        return Err("longer than 200 bytes");
    }
    for segment in name.split('.') {
        if segment.is_empty() {
            return Err("has an empty segment (leading, trailing or double dot)");
        }
        if allow_star && segment == "*" {
            continue;
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(if allow_star {
                "only ASCII letters, digits, '_', '-', '.' and whole '*' segments are allowed"
            } else {
                "only ASCII letters, digits, '_', '-' and '.' are allowed"
            });
        }
    }
    Ok(())
}

/// Turns a validated pattern into a SQL `LIKE` pattern (`_` escaped, `*` becomes `%`).
pub(crate) fn pattern_to_like(pattern: &str) -> String {
    pattern.replace('_', "\\_").replace('*', "%")
}

/// Checks free text stored in a `text` column: bounded and without NUL.
pub(crate) fn validate_text(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::field(field, "must not be empty"));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(Error::field(
            field,
            format!("{} bytes, longer than {MAX_TEXT_LEN}", value.len()),
        ));
    }
    if value.contains('\0') {
        return Err(Error::field(field, "contains a NUL character"));
    }
    Ok(())
}

/// Deepest nesting of arrays and objects accepted in a payload.
pub(crate) const MAX_DEPTH: usize = 64;

/// Checks a payload for what `jsonb` cannot hold (NUL in strings) or what would blow the
/// stack (nesting deeper than [`MAX_DEPTH`]); iterative, so any input is safe.
pub(crate) fn validate_payload(data: &Value) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(data, 1)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => {
                return Err(Error::InvalidPayload(
                    "a string holds a NUL character, which PostgreSQL jsonb cannot store".into(),
                ));
            }
            Value::Array(items) => {
                if depth > MAX_DEPTH {
                    return Err(Error::InvalidPayload(format!(
                        "nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                stack.extend(items.iter().map(|v| (v, depth + 1)));
            }
            Value::Object(map) => {
                if depth > MAX_DEPTH {
                    return Err(Error::InvalidPayload(format!(
                        "nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                if map.keys().any(|k| k.contains('\0')) {
                    return Err(Error::InvalidPayload(
                        "an object key holds a NUL character, which PostgreSQL jsonb cannot store"
                            .into(),
                    ));
                }
                stack.extend(map.values().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Serialized size of a JSON value, without allocating it.
fn json_size(value: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to an infallible writer cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert!(validate_type("property.created").is_ok());
        assert!(validate_type("a_b-c.D9").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a b", "a.*", "é", "a%"] {
            assert!(validate_type(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_type(&"a".repeat(201)).is_err());
    }

    #[test]
    fn patterns() {
        assert!(validate_pattern("*").is_ok());
        assert!(validate_pattern("property.*").is_ok());
        assert!(validate_pattern("property.*x").is_err());
        assert_eq!(pattern_to_like("a_b.*"), "a\\_b.%");
    }

    #[test]
    fn payload_checks() {
        assert!(validate_payload(&serde_json::json!({"a": [1, "x"]})).is_ok());
        assert!(validate_payload(&serde_json::json!({"a": "x\u{0}"})).is_err());
        let mut deep = Value::Null;
        for _ in 0..100 {
            deep = Value::Array(vec![deep]);
        }
        assert!(validate_payload(&deep).is_err());
    }
}
