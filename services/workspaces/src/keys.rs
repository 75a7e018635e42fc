//! Token signing: the Ed25519 key (configured, or generated once and kept in the
//! database), minting access tokens, and the public half for verifiers.
use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ism_platform::auth::{Claims, ISSUER, Role, Verifier};
use ism_platform::config::Settings;
use ism_platform::sealing::Sealer;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::WorkspacesSettings;

/// The active signing key.
pub struct Signer {
    kid: String,
    encoding: EncodingKey,
    public_x: String,
    ttl_seconds: i64,
}

impl Signer {
    /// The configured key (`auth.signing_key_pem`), else the newest stored one, else a
    /// new stored one; stored keys are sealed under `workspaces.signing_key_seal_key`.
    pub async fn load(pool: &PgPool, settings: &Settings) -> anyhow::Result<Arc<Self>> {
        let pem = &settings.auth.signing_key_pem;
        let ttl_seconds = settings.auth.token_ttl_seconds;
        // Revocations are kept a day (ADR 28): a longer-lived token would outlive its own.
        anyhow::ensure!(
            (1..=86_400).contains(&ttl_seconds),
            "auth.token_ttl_seconds must be 1 to 86400, as revocations are kept a day"
        );
        let pkcs8 = if pem.expose_secret().trim().is_empty() {
            let config: WorkspacesSettings = settings.section()?;
            let sealer = Sealer::new(
                "workspaces.signing_key_seal_key",
                &config.signing_key_seal_key,
                &config.signing_key_seal_previous_keys,
            )?;
            stored_or_generated(pool, &sealer).await?
        } else {
            pem_to_der(pem.expose_secret())?
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| {
            anyhow::anyhow!("auth.signing_key_pem is not an Ed25519 PKCS#8 key: {e}")
        })?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Arc::new(Self {
            kid: hex::encode(&Sha256::digest(&public)[..8]),
            encoding: EncodingKey::from_ed_der(&pkcs8),
            public_x: URL_SAFE_NO_PAD.encode(&public),
            ttl_seconds: ttl_seconds as i64,
        }))
    }

    /// A token for `subject` acting as `role` in `workspace` (none for services).
    pub fn mint(
        &self,
        subject: String,
        role: Role,
        workspace: Option<Uuid>,
    ) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: subject,
            iat: now,
            exp: now + self.ttl_seconds,
            role,
            ws: workspace,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok((
            jsonwebtoken::encode(&header, &claims, &self.encoding)?,
            claims.exp,
        ))
    }

    /// The key id and JWK `x` verifiers need.
    pub fn public(&self) -> (&str, &str) {
        (&self.kid, &self.public_x)
    }

    /// A verifier for this service's own RPCs, with no network hop.
    pub fn verifier(&self) -> anyhow::Result<Arc<Verifier>> {
        let key = DecodingKey::from_ed_components(&self.public_x)?;
        Ok(Verifier::with_keys(HashMap::from([(
            self.kid.clone(),
            key,
        )])))
    }
}

/// The owner a stored key is sealed for: bound to its key id, so a sealed key moved to
/// another row does not open.
fn owner(kid: &str) -> Uuid {
    let digest = Sha256::digest([b"ism-signing-key:".as_slice(), kid.as_bytes()].concat());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// Stores the key `kid` sealed with the current seal key (its PKCS#8 document as base64
/// text), in place of any earlier form.
async fn store_sealed(
    conn: &mut sqlx::PgConnection,
    sealer: &Sealer,
    kid: &str,
    pkcs8: &[u8],
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, sealed) VALUES ($1, $2)
         ON CONFLICT (kid) DO UPDATE SET sealed = excluded.sealed, pkcs8 = NULL",
    )
    .bind(kid)
    .bind(sealer.seal(owner(kid), &STANDARD.encode(pkcs8))?)
    .execute(conn)
    .await?;
    Ok(())
}

/// A stored signing key: sealed, or in clear from before keys were sealed.
#[derive(sqlx::FromRow)]
struct StoredKey {
    kid: String,
    clear: Option<Vec<u8>>,
    sealed: Option<Vec<u8>>,
    live: bool,
}

/// The newest live stored key, else a new one stored. Every stored key not sealed with
/// the current seal key (in clear from before sealing, or under a previous seal key) is
/// sealed with it on the way.
async fn stored_or_generated(pool: &PgPool, sealer: &Sealer) -> anyhow::Result<Vec<u8>> {
    let mut tx = pool.begin().await?;
    // One generator at a time, so replicas starting together agree on one key.
    sqlx::query("LOCK TABLE signing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let stored: Vec<StoredKey> = sqlx::query_as(
        "SELECT kid, pkcs8 AS clear, sealed, retired_at IS NULL AS live FROM signing_keys ORDER BY created_at DESC",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut newest = None;
    for StoredKey {
        kid,
        clear,
        sealed,
        live,
    } in stored
    {
        let pkcs8 = match (&sealed, clear) {
            (Some(sealed), _) => {
                let encoded: String = sealer
                    .open(owner(&kid), sealed)
                    .map_err(|e| anyhow::anyhow!("stored signing key {kid}: {e}"))?;
                STANDARD.decode(encoded)?
            }
            (None, Some(clear)) => clear,
            (None, None) => anyhow::bail!("stored signing key {kid} has no key material"),
        };
        if !sealed.as_deref().is_some_and(|s| sealer.is_current(s)) {
            store_sealed(&mut tx, sealer, &kid, &pkcs8).await?;
            tracing::info!(%kid, "sealed a stored signing key with the current seal key");
        }
        if live && newest.is_none() {
            newest = Some(pkcs8);
        }
    }
    let pkcs8 = match newest {
        Some(pkcs8) => pkcs8,
        None => {
            let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                .map_err(|e| anyhow::anyhow!("generating a signing key: {e}"))?;
            let pkcs8 = document.as_ref().to_vec();
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| anyhow::anyhow!("{e}"))?;
            let kid = hex::encode(&Sha256::digest(pair.public_key().as_ref())[..8]);
            store_sealed(&mut tx, sealer, &kid, &pkcs8).await?;
            tracing::info!(%kid, "generated a token-signing key");
            pkcs8
        }
    };
    tx.commit().await?;
    Ok(pkcs8)
}

fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD
        .decode(body.trim())
        .map_err(|e| anyhow::anyhow!("auth.signing_key_pem is not PEM: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let document =
            Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap();
        Signer {
            kid: "test".into(),
            encoding: EncodingKey::from_ed_der(document.as_ref()),
            public_x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            ttl_seconds: 60,
        }
    }

    #[tokio::test]
    async fn minted_tokens_verify_and_tampered_ones_do_not() {
        let signer = signer();
        let workspace = Uuid::now_v7();
        let (token, _) = signer
            .mint("api_key:1".into(), Role::Agent, Some(workspace))
            .unwrap();
        let verifier = signer.verifier().unwrap();
        let claims = verifier.verify(&token).await.unwrap();
        assert_eq!(claims.ws, Some(workspace));
        assert_eq!(claims.role, Role::Agent);

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap())
                .unwrap()
                .replace("agent", "owner"),
        );
        parts[1] = forged;
        let status = verifier.verify(&parts.join(".")).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let mut signer = signer();
        signer.ttl_seconds = -60;
        let (token, _) = signer
            .mint("api_key:1".into(), Role::Owner, Some(Uuid::now_v7()))
            .unwrap();
        let status = signer.verifier().unwrap().verify(&token).await.unwrap_err();
        assert!(status.message().contains("expired"), "{status:?}");
    }
}
