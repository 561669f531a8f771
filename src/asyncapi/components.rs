//! Payload schemas as AsyncAPI embeds them: a JSON Schema's own definitions (`definitions`
//! or `$defs`) move to `components.schemas`, where every `$ref` then points.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ids::sanitize;

/// The shared `components.schemas`, filled from every payload schema.
#[derive(Debug, Default)]
pub(super) struct Schemas {
    schemas: Map<String, Value>,
}

impl Schemas {
    /// `schema` ready to embed as a payload: without `$schema`, its definitions moved into
    /// the shared schemas (a name already taken by another schema gets a suffix), its
    /// `$ref`s rewritten to them.
    pub(super) fn embed(&mut self, schema: &Value) -> Value {
        let mut schema = schema.clone();
        let mut definitions: Vec<(String, String, Value)> = Vec::new(); // (pointer, name, schema)
        if let Value::Object(root) = &mut schema {
            root.remove("$schema");
            for key in ["definitions", "$defs"] {
                if let Some(Value::Object(defs)) = root.remove(key) {
                    for (name, def) in defs {
                        let pointer = format!("#/{key}/{}", escape_pointer(&name));
                        definitions.push((pointer, name, def));
                    }
                }
            }
        }
        // Pick names: a definition equal to one already shared reuses it. Content is
        // compared after rewriting, so names are settled in a second pass when a clash
        // moved one.
        let mut names: BTreeMap<String, String> = definitions
            .iter()
            .map(|(pointer, name, _)| (pointer.clone(), sanitize(name)))
            .collect();
        for _ in 0..=definitions.len() {
            let mut clash = false;
            for (pointer, _, def) in &definitions {
                let name = &names[pointer];
                let rewritten = rewrite(def, &names);
                if self.schemas.get(name).is_some_and(|s| *s != rewritten) {
                    let base = name.clone();
                    let mut n = 2;
                    let mut candidate = format!("{base}_{n}");
                    while self
                        .schemas
                        .get(&candidate)
                        .is_some_and(|s| *s != rewritten)
                        || names.values().any(|v| *v == candidate)
                    {
                        n += 1;
                        candidate = format!("{base}_{n}");
                    }
                    names.insert(pointer.clone(), candidate);
                    clash = true;
                    break;
                }
            }
            if !clash {
                break;
            }
        }
        for (pointer, _, def) in &definitions {
            self.schemas
                .insert(names[pointer].clone(), rewrite(def, &names));
        }
        rewrite(&schema, &names)
    }

    /// The shared schemas.
    pub(super) fn into_map(self) -> Map<String, Value> {
        self.schemas
    }
}

/// `value` with each `$ref` to a renamed definition pointing at its shared schema.
fn rewrite(value: &Value, names: &BTreeMap<String, String>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => match names.get(r) {
                            Some(name) => Value::String(format!("#/components/schemas/{name}")),
                            None => v.clone(),
                        },
                        _ => rewrite(v, names),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| rewrite(v, names)).collect()),
        other => other.clone(),
    }
}

/// A JSON Pointer token: `~` as `~0`, `/` as `~1`.
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn definitions_move_to_shared_schemas_and_clashes_are_renamed() {
        let mut schemas = Schemas::default();
        let a = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"home": {"$ref": "#/definitions/Address"}},
            "definitions": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}}}
        });
        let b = json!({
            "type": "object",
            "properties": {"at": {"$ref": "#/$defs/Address"}, "again": {"$ref": "#/$defs/Address"}},
            "$defs": {"Address": {"type": "string"}}
        });
        let same = json!({
            "properties": {"x": {"$ref": "#/definitions/Address"}},
            "definitions": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}}}
        });
        let a = schemas.embed(&a);
        let b = schemas.embed(&b);
        let same = schemas.embed(&same);
        assert_eq!(
            a["properties"]["home"]["$ref"],
            "#/components/schemas/Address"
        );
        assert!(a.get("$schema").is_none() && a.get("definitions").is_none());
        assert_eq!(
            b["properties"]["at"]["$ref"],
            "#/components/schemas/Address_2"
        );
        assert_eq!(
            b["properties"]["again"]["$ref"],
            "#/components/schemas/Address_2"
        );
        assert_eq!(
            same["properties"]["x"]["$ref"],
            "#/components/schemas/Address"
        );
        let shared = schemas.into_map();
        assert_eq!(shared.len(), 2);
        assert_eq!(shared["Address_2"], json!({"type": "string"}));
    }
}
