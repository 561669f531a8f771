//! Binary mode: the attributes as transport headers (`ce-id`, `ce-type`, ...), the payload
//! as the message body, as the HTTP and Kafka protocol bindings write them.

use chrono::{DateTime, Utc};

use super::encode::format_time;
use super::{CloudEvent, CloudEventError, SPEC_VERSION, is_extension_name, is_json_content_type};
use crate::error::Result;

/// A protocol binding's way of writing attributes as headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Binding {
    /// HTTP (and NATS, which follows it): `ce-` prefix, values percent-encoded where HTTP
    /// header values cannot hold them (space, `"`, `%`, anything outside printable ASCII).
    Http,
    /// Kafka: `ce_` prefix, values as UTF-8.
    Kafka,
}

impl Binding {
    /// The prefix of attribute headers.
    pub fn prefix(self) -> &'static str {
        match self {
            Binding::Http => "ce-",
            Binding::Kafka => "ce_",
        }
    }

    fn encode_value(self, value: &str) -> String {
        match self {
            Binding::Http => percent_encode(value),
            Binding::Kafka => value.to_owned(),
        }
    }

    fn decode_value(self, name: &str, value: &str) -> Result<String, CloudEventError> {
        match self {
            Binding::Http => percent_decode(value).ok_or_else(|| {
                CloudEventError::invalid(name, format!("{value:?} is not valid percent-encoding"))
            }),
            Binding::Kafka => Ok(value.to_owned()),
        }
    }
}

/// A CloudEvent in binary mode: headers (lower-case names, attributes prefixed as the
/// binding says, and `content-type`) and the body (the JSON payload, or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMessage {
    /// Header names and values, in a stable order.
    pub headers: Vec<(String, String)>,
    /// The payload's bytes.
    pub body: Vec<u8>,
}

impl CloudEvent {
    /// This CloudEvent in binary mode for `binding`.
    pub fn to_binary(&self, binding: Binding) -> BinaryMessage {
        let prefix = binding.prefix();
        let mut headers = Vec::with_capacity(8 + self.extensions.len());
        let mut put = |name: &str, value: &str| {
            headers.push((format!("{prefix}{name}"), binding.encode_value(value)));
        };
        put("specversion", SPEC_VERSION);
        put("id", &self.id);
        put("source", &self.source);
        put("type", &self.event_type);
        if let Some(subject) = &self.subject {
            put("subject", subject);
        }
        if let Some(time) = &self.time {
            put("time", &format_time(time));
        }
        if let Some(schema) = &self.dataschema {
            put("dataschema", schema);
        }
        for (name, value) in &self.extensions {
            put(name, value);
        }
        let body = match &self.data {
            Some(data) => {
                let content_type = self
                    .datacontenttype
                    .as_deref()
                    .unwrap_or(super::JSON_CONTENT_TYPE);
                headers.push(("content-type".to_owned(), content_type.to_owned()));
                data.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        BinaryMessage { headers, body }
    }

    /// Reads a binary-mode message: attribute headers by the binding's prefix (names
    /// compared without regard to case), `content-type` as `datacontenttype`, the body as
    /// the JSON payload (empty: none). Other headers are ignored.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json), and [`CloudEventError::NotJson`] for a body that
    /// is not JSON, [`CloudEventError::InvalidAttribute`] for a value that is not valid
    /// percent-encoding (HTTP).
    pub fn from_binary<'a>(
        binding: Binding,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: &[u8],
    ) -> Result<CloudEvent> {
        Ok(read_binary(binding, headers, body)?)
    }
}

fn read_binary<'a>(
    binding: Binding,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Result<CloudEvent, CloudEventError> {
    let prefix = binding.prefix();
    let mut event = CloudEvent::new("", "", "", serde_json::Value::Null);
    event.datacontenttype = None;
    event.data = None;
    let (mut specversion, mut id, mut source, mut event_type) = (None, None, None, None);
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == "content-type" {
            event.datacontenttype = Some(value.to_owned());
            continue;
        }
        let Some(attribute) = name.strip_prefix(prefix) else {
            continue;
        };
        let value = binding.decode_value(attribute, value)?;
        match attribute {
            "specversion" => specversion = Some(value),
            "id" => id = Some(value),
            "source" => source = Some(value),
            "type" => event_type = Some(value),
            "subject" => event.subject = Some(value),
            "dataschema" => event.dataschema = Some(value),
            "time" => {
                let time = DateTime::parse_from_rfc3339(&value).map_err(|e| {
                    CloudEventError::invalid("time", format!("{value:?} is not RFC 3339: {e}"))
                })?;
                event.time = Some(time.with_timezone(&Utc));
            }
            "datacontenttype" | "data" => {
                return Err(CloudEventError::invalid(
                    attribute,
                    "is not an attribute header in binary mode",
                ));
            }
            name if is_extension_name(name) => {
                event.extensions.insert(name.to_owned(), value);
            }
            name => return Err(CloudEventError::InvalidExtensionName(name.to_owned())),
        }
    }
    let specversion = specversion.ok_or(CloudEventError::MissingAttribute("specversion"))?;
    if specversion != SPEC_VERSION {
        return Err(CloudEventError::SpecVersion(specversion));
    }
    let nonempty = |name: &'static str, value: Option<String>| match value {
        None => Err(CloudEventError::MissingAttribute(name)),
        Some(v) if v.is_empty() => Err(CloudEventError::invalid(name, "must not be empty")),
        Some(v) => Ok(v),
    };
    event.id = nonempty("id", id)?;
    event.source = nonempty("source", source)?;
    event.event_type = nonempty("type", event_type)?;
    if let Some(ct) = event
        .datacontenttype
        .as_deref()
        .filter(|ct| !is_json_content_type(ct))
    {
        return Err(CloudEventError::UnsupportedContentType(ct.to_owned()));
    }
    if !body.is_empty() {
        let data =
            serde_json::from_slice(body).map_err(|e| CloudEventError::NotJson(e.to_string()))?;
        event.data = Some(data);
    }
    Ok(event)
}

/// Percent-encodes what an HTTP header value must not hold as is: space, `"`, `%` and every
/// byte outside printable ASCII (so UTF-8 characters become their bytes, `%C3%A9`).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes percent-encoding; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        for s in ["plain", "a b", "100% \"sure\"", "café ✓", "", "%"] {
            assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(percent_encode("a b\"%é"), "a%20b%22%25%C3%A9");
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%+4"), None);
    }
}
