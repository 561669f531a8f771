//! AsyncAPI 3.0 from the event catalog (feature `asyncapi`): one channel per event type,
//! its message with the payload's JSON Schema and the CloudEvents headers, a `send`
//! operation per event the service publishes and a `receive` operation per subscription and
//! channel its patterns match.
//!
//! ```
//! use pgbus::catalog::{Catalog, EventDoc};
//!
//! let document = Catalog::new("listings", "1.0.0")
//!     .publishes(EventDoc::raw("property.created").description("A property was listed."))
//!     .subscribes("audit.properties", ["property.*"])
//!     .asyncapi()?;
//! assert_eq!(document.as_json()["asyncapi"], "3.0.0");
//! assert!(document.to_yaml().starts_with("asyncapi: \"3.0.0\"\n"));
//! # Ok::<(), pgbus::Error>(())
//! ```

mod components;
mod document;
mod headers;
mod ids;
mod yaml;

use serde_json::Value;

use crate::catalog::Catalog;
use crate::error::Result;

/// The AsyncAPI version of the documents rendered.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// An AsyncAPI 3.0 document.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncApi {
    document: Value,
}

impl AsyncApi {
    /// The document as JSON.
    pub fn as_json(&self) -> &Value {
        &self.document
    }

    /// The document as JSON, taken.
    pub fn into_json(self) -> Value {
        self.document
    }

    /// The document as pretty-printed JSON text.
    pub fn to_json_string(&self) -> String {
        // Serializing a `Value` to a string cannot fail.
        serde_json::to_string_pretty(&self.document).unwrap_or_default()
    }

    /// The document as YAML (block style; strings quoted where YAML would read them as
    /// something else).
    pub fn to_yaml(&self) -> String {
        yaml::to_yaml(&self.document)
    }
}

impl Catalog {
    /// The AsyncAPI 3.0 document of this catalog.
    ///
    /// # Errors
    ///
    /// As [`Catalog::validate`].
    pub fn asyncapi(&self) -> Result<AsyncApi> {
        self.validate()?;
        Ok(AsyncApi {
            document: document::render(self),
        })
    }
}
