//! JSON Schema of typed events, through schemars (feature `schema`).

use serde_json::Value;

/// The JSON Schema (draft-07) of `T`'s serialized form, with its doc comments as
/// descriptions and shared types under `definitions`: what a payload of `T` must look like.
/// Check payloads against it with any JSON Schema validator.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// /// A property was listed.
/// struct PropertyCreated {
///     property_id: i64,
/// }
///
/// let schema = pgbus::catalog::schema_for::<PropertyCreated>();
/// assert_eq!(schema["description"], "A property was listed.");
/// assert_eq!(schema["required"], serde_json::json!(["property_id"]));
/// ```
pub fn schema_for<T: schemars::JsonSchema>() -> Value {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}
