//! Why a CloudEvent was refused.

/// A CloudEvent pgbus cannot read. Nothing is published for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloudEventError {
    /// The input is not JSON.
    #[error("not a JSON document: {0}")]
    NotJson(String),
    /// The document is JSON but not an object.
    #[error("a structured CloudEvent is a JSON object")]
    NotAnObject,
    /// A required attribute (`id`, `source`, `specversion`, `type`) is missing.
    #[error("the required attribute `{0}` is missing")]
    MissingAttribute(&'static str),
    /// The `specversion` is not `1.0`.
    #[error("specversion {0:?} is not supported (only \"1.0\")")]
    SpecVersion(String),
    /// An attribute has a value of the wrong kind or form.
    #[error("attribute `{name}`: {reason}")]
    InvalidAttribute {
        /// The attribute.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An extension's name is not lower-case ASCII letters and digits.
    #[error(
        "{0:?} is not a valid CloudEvents attribute name (lower-case ASCII letters and digits)"
    )]
    InvalidExtensionName(String),
    /// The payload's content type is not JSON.
    #[error("datacontenttype {0:?} is not JSON; pgbus stores JSON payloads only")]
    UnsupportedContentType(String),
    /// The payload is binary (`data_base64`).
    #[error("binary data (data_base64) is not supported; pgbus stores JSON payloads only")]
    BinaryData,
}

impl CloudEventError {
    pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> Self {
        CloudEventError::InvalidAttribute {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}
