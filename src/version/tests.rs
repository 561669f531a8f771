use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct V1 {
    name: String,
}
impl Event for V1 {
    const TYPE: &'static str = "user.registered";
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct V2 {
    first: String,
    last: String,
}
impl Event for V2 {
    const TYPE: &'static str = "user.registered";
    const VERSION: u32 = 2;
    fn upgrade(older: VersionedPayload) -> Result<Self, DecodeError> {
        let v1: V1 = older.decode()?;
        let (first, last) = v1
            .name
            .split_once(' ')
            .ok_or_else(|| DecodeError::Upgrade {
                event_type: V1::TYPE.into(),
                from: 1,
                message: format!("{:?} is not a first and a last name", v1.name),
            })?;
        Ok(V2 {
            first: first.into(),
            last: last.into(),
        })
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct V3 {
    first: String,
    last: String,
    email: Option<String>,
}
impl Event for V3 {
    const TYPE: &'static str = "user.registered";
    const VERSION: u32 = 3;
    fn upgrade(older: VersionedPayload) -> Result<Self, DecodeError> {
        let v2: V2 = older.decode()?;
        Ok(V3 {
            first: v2.first,
            last: v2.last,
            email: None,
        })
    }
}

fn at(version: u32, data: serde_json::Value) -> VersionedPayload {
    VersionedPayload::new("user.registered", version, data)
}

#[test]
fn a_chain_of_upgrades_reads_every_older_version() {
    let want = V3 {
        first: "Ada".into(),
        last: "Lovelace".into(),
        email: None,
    };
    assert_eq!(
        at(1, json!({"name": "Ada Lovelace"}))
            .decode::<V3>()
            .unwrap(),
        want
    );
    assert_eq!(
        at(2, json!({"first": "Ada", "last": "Lovelace"}))
            .decode::<V3>()
            .unwrap(),
        want
    );
    let v3 = json!({"first": "Ada", "last": "Lovelace", "email": null});
    assert_eq!(at(3, v3).decode::<V3>().unwrap(), want);
}

#[test]
fn versions_it_cannot_read_are_errors_never_a_misread() {
    // Newer than the type: refused, even though the payload would deserialize.
    let e = at(3, json!({"name": "Ada Lovelace"}))
        .decode::<V1>()
        .unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::NewerVersion {
                found: 3,
                known: 1,
                ..
            }
        ),
        "{e}"
    );
    // Older without an upgrade.
    #[derive(Debug, Serialize, Deserialize)]
    struct NoUpgrade {
        name: String,
    }
    impl Event for NoUpgrade {
        const TYPE: &'static str = "user.registered";
        const VERSION: u32 = 2;
    }
    let e = at(1, json!({"name": "x"}))
        .decode::<NoUpgrade>()
        .unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::NoUpgrade {
                found: 1,
                known: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("no upgrade"), "{e}");
    // An upgrade's own refusal, through the chain.
    let e = at(1, json!({"name": "Ada"})).decode::<V3>().unwrap_err();
    assert!(matches!(e, DecodeError::Upgrade { from: 1, .. }), "{e}");
    // A payload that does not fit its version's type.
    let e = at(2, json!({"first": 1})).decode::<V3>().unwrap_err();
    assert!(matches!(e, DecodeError::Payload { version: 2, .. }), "{e}");
}

#[test]
fn the_stored_version_is_the_header_or_one() {
    let mut headers = BTreeMap::new();
    assert_eq!(stored_version(&headers).unwrap(), 1);
    headers.insert(VERSION_HEADER.to_owned(), "7".to_owned());
    assert_eq!(stored_version(&headers).unwrap(), 7);
    for bad in ["0", "07", "+7", "seven", ""] {
        headers.insert(VERSION_HEADER.to_owned(), bad.to_owned());
        assert!(
            matches!(
                stored_version(&headers),
                Err(DecodeError::InvalidVersion { .. })
            ),
            "{bad:?}"
        );
    }
}
