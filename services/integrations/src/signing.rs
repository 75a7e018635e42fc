//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64 bytes after a
//! secret's `whsec_` prefix; one `v1,` signature per secret in use, space-separated.
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
}
