//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64 bytes after a
//! secret's `whsec_` prefix; one `v1,` signature per secret in use, space-separated.
//! Signed here for the webhooks we send; checked with the specification's own library
//! for those we receive.
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification allows 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new `whsec_` secret.
pub fn new_secret() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(SecretString::from(format!(
        "{PREFIX}{}",
        STANDARD.encode(bytes)
    )))
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp` (seconds), with
/// one signature per secret.
pub fn signature(secrets: &[&SecretString], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|secret| {
            let encoded = secret.expose_secret();
            let key = STANDARD
                .decode(encoded.strip_prefix(PREFIX).unwrap_or(encoded))
                .unwrap_or_default();
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
                .expect("HMAC takes a key of any length");
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a received webhook's signature is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// Checks a received webhook's `webhook-id`, `webhook-timestamp` (within five minutes of
/// now) and `webhook-signature` against `secret`.
pub fn verify(
    secret: &SecretString,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
) -> Result<(), Refused> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ] {
        if value.is_empty() {
            return Err(Refused(format!("the {name} header is required")));
        }
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| Refused(format!("the {name} header is not text")))?;
        headers.insert(name, value);
    }
    let webhook = standardwebhooks::Webhook::new(secret.expose_secret())
        .map_err(|e| Refused(format!("the secret cannot be used: {e}")))?;
    webhook
        .verify(body, &headers)
        .map_err(|e| Refused(format!("the signature does not verify: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn the_published_test_vector_signs_alike() {
        let secret = SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        assert_eq!(
            signature(
                &[&secret],
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn new_secrets_verify_with_the_reference_library_and_both_sign_during_a_rotation() {
        let (old, new) = (new_secret().unwrap(), new_secret().unwrap());
        let decoded = STANDARD
            .decode(new.expose_secret().strip_prefix(PREFIX).unwrap())
            .unwrap();
        assert_eq!(decoded.len(), SECRET_BYTES);
        let now = chrono::Utc::now().timestamp();
        let header = signature(&[&new, &old], "evt_1", now, "{}");
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&old, &new] {
            let mut headers = http::HeaderMap::new();
            headers.insert("webhook-id", "evt_1".parse().unwrap());
            headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
            headers.insert("webhook-signature", header.parse().unwrap());
            standardwebhooks::Webhook::new(secret.expose_secret())
                .unwrap()
                .verify(b"{}", &headers)
                .unwrap();
        }
    }

    #[test]
    fn received_webhooks_verify_only_signed_recently_with_the_secret() {
        let secret = new_secret().unwrap();
        let now = chrono::Utc::now().timestamp();
        let signed = signature(&[&secret], "wh_1", now, "{}");
        assert!(verify(&secret, "wh_1", &now.to_string(), &signed, b"{}").is_ok());
        let other = new_secret().unwrap();
        assert!(verify(&other, "wh_1", &now.to_string(), &signed, b"{}").is_err());
        assert!(verify(&secret, "wh_1", &now.to_string(), &signed, b"{ }").is_err());
        let old = now - 3600;
        let stale = signature(&[&secret], "wh_1", old, "{}");
        assert!(verify(&secret, "wh_1", &old.to_string(), &stale, b"{}").is_err());
        let missing = verify(&secret, "", &now.to_string(), &signed, b"{}").unwrap_err();
        assert_eq!(missing.to_string(), "the webhook-id header is required");
    }
}
