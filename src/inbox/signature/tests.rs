use super::*;

const STRIPE: SignatureScheme = SignatureScheme::Stripe {
    tolerance: Duration::from_secs(300),
};

fn secrets(s: &[&str]) -> Vec<Vec<u8>> {
    s.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn githubs_documented_example_verifies() {
    // The example of GitHub's documentation on validating webhook deliveries.
    let scheme = SignatureScheme::HmacSha256 {
        header: "X-Hub-Signature-256".into(),
        prefix: "sha256=".into(),
    };
    let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let body = b"Hello, World!";
    assert_eq!(
        scheme.verify(header, body, &secrets(&["It's a Secret to Everybody"]), 0),
        Ok(())
    );
    assert_eq!(
        scheme.verify(
            header,
            b"Hello, World?",
            &secrets(&["It's a Secret to Everybody"]),
            0
        ),
        Err(WebhookError::SignatureMismatch)
    );
    assert!(matches!(
        scheme.verify("757107ea", body, &secrets(&["x"]), 0),
        Err(WebhookError::MalformedHeader { .. })
    ));
    assert_eq!(
        format!(
            "sha256={}",
            hmac_sha256_hex(b"It's a Secret to Everybody", body)
        ),
        header
    );
}

#[test]
fn stripe_headers_verify_within_the_tolerance() {
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let header = stripe_signature_header(b"whsec_a", body, 1_000_000);
    let ok = |h: &str, now| STRIPE.verify(h, body, &secrets(&["whsec_a"]), now);
    assert_eq!(ok(&header, 1_000_000), Ok(()));
    assert_eq!(ok(&header, 1_000_300), Ok(()));
    assert_eq!(ok(&header, 999_700), Ok(()));
    assert!(matches!(
        ok(&header, 1_000_301),
        Err(WebhookError::TimestampOutsideTolerance {
            timestamp: 1_000_000,
            now: 1_000_301,
            ..
        })
    ));
    assert!(matches!(
        ok(&header, 999_699),
        Err(WebhookError::TimestampOutsideTolerance { .. })
    ));
    // Tampered body, wrong secret.
    assert_eq!(
        STRIPE.verify(&header, b"{}", &secrets(&["whsec_a"]), 1_000_000),
        Err(WebhookError::SignatureMismatch)
    );
    assert_eq!(
        STRIPE.verify(&header, body, &secrets(&["whsec_b"]), 1_000_000),
        Err(WebhookError::SignatureMismatch)
    );
    // A re-signed timestamp without the secret does not verify.
    let moved = header.replace("t=1000000", "t=1000001");
    assert_eq!(ok(&moved, 1_000_001), Err(WebhookError::SignatureMismatch));
}

#[test]
fn stripe_secret_rotation_both_ways() {
    let body = b"{}";
    let old = stripe_signature_header(b"whsec_old", body, 5);
    let new = stripe_signature_header(b"whsec_new", body, 5);
    let v1_new = new.split_once(",v1=").unwrap().1;
    // The provider rolls its secret: one header, two v1 signatures, and v0 ignored.
    let both = format!("{old},v1={v1_new},v0=deadbeef");
    for secret in ["whsec_old", "whsec_new"] {
        assert_eq!(STRIPE.verify(&both, body, &secrets(&[secret]), 5), Ok(()));
    }
    // We roll ours: two secrets configured.
    assert_eq!(
        STRIPE.verify(&new, body, &secrets(&["whsec_old", "whsec_new"]), 5),
        Ok(())
    );
}

#[test]
fn malformed_stripe_headers() {
    let digest = "a".repeat(64);
    for (header, why) in [
        ("", "an item is not key=value"),
        ("garbage", "an item is not key=value"),
        (&format!("v1={digest}") as &str, "no timestamp (t)"),
        ("t=12", "no v1 signature"),
        ("t=12,v1=abc", "no v1 signature"),
        (
            &format!("t=-12,v1={digest}"),
            "the timestamp (t) is not a Unix time",
        ),
        (
            &format!("t=1,t=2,v1={digest}"),
            "more than one timestamp (t)",
        ),
        (
            &format!("t=99999999999999999999,v1={digest}"),
            "the timestamp (t) is too large",
        ),
    ] {
        assert_eq!(
            STRIPE.verify(header, b"{}", &secrets(&["s"]), 0),
            Err(WebhookError::MalformedHeader {
                name: "Stripe-Signature".into(),
                reason: why.into()
            }),
            "{header:?}"
        );
    }
}
