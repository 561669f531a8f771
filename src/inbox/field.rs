//! Where a webhook's event id and type are: a header, or a member of the JSON body.

use serde_json::Value;

use super::error::WebhookError;
use super::headers::WebhookHeaders;

/// Where the inbox finds a webhook's event id or event type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookField {
    /// A header, e.g. GitHub's `X-GitHub-Delivery`.
    Header(String),
    /// A JSON Pointer into the body (RFC 6901), e.g. `/id`. Numbers are taken as their text.
    Json(String),
}

impl WebhookField {
    /// The field in a header.
    pub fn header(name: impl Into<String>) -> Self {
        WebhookField::Header(name.into())
    }

    /// The field at a JSON Pointer into the body.
    pub fn json(pointer: impl Into<String>) -> Self {
        WebhookField::Json(pointer.into())
    }

    /// Reads the field (non-empty text).
    pub(super) fn read(
        &self,
        what: &'static str,
        headers: &dyn WebhookHeaders,
        body: &Value,
    ) -> Result<String, WebhookError> {
        let found = match self {
            WebhookField::Header(name) => headers.header(name).map(str::to_owned),
            WebhookField::Json(pointer) => match body.pointer(pointer) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        };
        found
            .filter(|v| !v.is_empty())
            .ok_or_else(|| WebhookError::MissingField {
                what,
                location: match self {
                    WebhookField::Header(name) => format!("the header {name}"),
                    WebhookField::Json(pointer) => format!("{pointer:?} in the body"),
                },
            })
    }
}
