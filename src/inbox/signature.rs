//! The signature schemes: Stripe's (`t=<time>,v1=<hex HMAC-SHA256 of "t.body">`, several
//! `v1` while a secret rolls) and a plain HMAC-SHA256 of the body in a header (GitHub's
//! `X-Hub-Signature-256: sha256=<hex>`). Every comparison is constant-time.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::error::WebhookError;

/// How a provider signs its webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// Stripe's `Stripe-Signature` header: `t=<unix time>,v1=<hex>[,v1=<hex>...]`, the
    /// HMAC-SHA256 of `"<t>.<body>"`; a timestamp outside the tolerance is a replay.
    Stripe {
        /// How far the signed time may be from now, either way.
        tolerance: Duration,
    },
    /// A header holding `<prefix><hex HMAC-SHA256 of the body>`, e.g. GitHub's
    /// `X-Hub-Signature-256: sha256=...`. No timestamp: replays are caught by the dedupe on
    /// the event id.
    HmacSha256 {
        /// The header's name.
        header: String,
        /// What precedes the hex digest (`sha256=`; may be empty).
        prefix: String,
    },
}

impl SignatureScheme {
    /// The name of the header carrying the signature.
    pub fn header(&self) -> &str {
        match self {
            SignatureScheme::Stripe { .. } => "Stripe-Signature",
            SignatureScheme::HmacSha256 { header, .. } => header,
        }
    }

    /// Checks `value` (the header's) against `body` under any of `secrets`, at Unix time
    /// `now`.
    pub(super) fn verify(
        &self,
        value: &str,
        body: &[u8],
        secrets: &[Vec<u8>],
        now: i64,
    ) -> Result<(), WebhookError> {
        let malformed = |reason: &str| WebhookError::MalformedHeader {
            name: self.header().to_owned(),
            reason: reason.to_owned(),
        };
        match self {
            SignatureScheme::Stripe { tolerance } => {
                let (timestamp, signatures) = parse_stripe(value).map_err(malformed)?;
                let signed = |mac: &mut Hmac<Sha256>| {
                    mac.update(timestamp.to_string().as_bytes());
                    mac.update(b".");
                    mac.update(body);
                };
                if !any_matches(secrets, &signatures, signed) {
                    return Err(WebhookError::SignatureMismatch);
                }
                if timestamp.abs_diff(now) > tolerance.as_secs() {
                    return Err(WebhookError::TimestampOutsideTolerance {
                        timestamp,
                        now,
                        tolerance: *tolerance,
                    });
                }
                Ok(())
            }
            SignatureScheme::HmacSha256 { prefix, .. } => {
                let hex_digest = value
                    .trim()
                    .strip_prefix(prefix.as_str())
                    .ok_or_else(|| malformed(&format!("does not start with {prefix:?}")))?;
                let digest = decode_digest(hex_digest)
                    .ok_or_else(|| malformed("not a hex SHA-256 digest (64 hex digits)"))?;
                if !any_matches(secrets, &[digest], |mac| mac.update(body)) {
                    return Err(WebhookError::SignatureMismatch);
                }
                Ok(())
            }
        }
    }
}

/// The timestamp and the `v1` signatures of a `Stripe-Signature` header. Other schemes
/// (`v0`) are ignored, as Stripe's libraries do; `v1` values that are not 64 hex digits
/// cannot match and are dropped.
fn parse_stripe(value: &str) -> Result<(i64, Vec<Vec<u8>>), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let (key, val) = item
            .trim()
            .split_once('=')
            .ok_or("an item is not key=value")?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err("more than one timestamp (t)");
                }
                if val.is_empty() || !val.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("the timestamp (t) is not a Unix time");
                }
                timestamp = Some(
                    val.parse::<i64>()
                        .map_err(|_| "the timestamp (t) is too large")?,
                );
            }
            "v1" => signatures.extend(decode_digest(val)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp (t)")?;
    if signatures.is_empty() {
        return Err("no v1 signature");
    }
    Ok((timestamp, signatures))
}

fn decode_digest(hex_digest: &str) -> Option<Vec<u8>> {
    if hex_digest.len() != 64 {
        return None;
    }
    hex::decode(hex_digest).ok()
}

/// Whether any signature is the HMAC-SHA256 of the signed content under any secret
/// (constant-time comparisons, all of them made).
fn any_matches(
    secrets: &[Vec<u8>],
    signatures: &[Vec<u8>],
    signed: impl Fn(&mut Hmac<Sha256>),
) -> bool {
    let mut matched = false;
    for secret in secrets {
        // HMAC takes keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            continue;
        };
        signed(&mut mac);
        for signature in signatures {
            matched |= mac.clone().verify_slice(signature).is_ok();
        }
    }
    matched
}

/// The `Stripe-Signature` header for `body` signed with `secret` at `timestamp`, as Stripe
/// sends it (for tests of an endpoint).
pub fn stripe_signature_header(secret: &[u8], body: &[u8], timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The hex HMAC-SHA256 of `body` under `secret` (for tests of an endpoint: GitHub's
/// `X-Hub-Signature-256` is `sha256=` followed by it).
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests;
