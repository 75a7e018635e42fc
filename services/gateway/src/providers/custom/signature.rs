//! HMAC-SHA256 signatures of the custom channel: `X-ISM-Signature: sha256=<hex>` over the
//! raw body, both for webhooks we receive and for messages we deliver.
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "x-ism-signature";

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body`, compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_its_own_signatures_and_refuses_others() {
        let sig = sign(b"secret", b"{}");
        assert!(verify(b"secret", b"{}", &sig));
        assert!(!verify(b"other", b"{}", &sig));
        assert!(!verify(b"secret", b"{} ", &sig));
        assert!(!verify(b"secret", b"{}", "sha256=zz"));
        assert!(!verify(b"secret", b"{}", &sig.replace("sha256=", "sha1=")));
    }
}
