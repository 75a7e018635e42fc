//! Google service-account credentials: the key JSON, a signed JWT exchanged at its
//! `token_uri` for an OAuth access token (RFC 7523), cached per key and refreshed five
//! minutes before it expires.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::backend::{Backends, BotError, answer_json};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// The fields of a service-account key that calls need.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: String,
    pub client_email: String,
    pub token_uri: String,
}

impl ServiceAccount {
    /// The key in `json` (as Google's console downloads it), or what is wrong with it.
    pub fn parse(json: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(rename = "type")]
            kind: String,
            project_id: String,
            private_key_id: String,
            private_key: String,
            client_email: String,
            token_uri: String,
        }
        let file: File =
            serde_json::from_str(json).map_err(|e| format!("is not a service-account key: {e}"))?;
        if file.kind != "service_account" {
            return Err(format!("has type {:?}, not \"service_account\"", file.kind));
        }
        EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| "has a private_key that is not an RSA key in PEM".to_owned())?;
        if url::Url::parse(&file.token_uri).is_err() {
            return Err("has a token_uri that is not a URL".to_owned());
        }
        Ok(Self {
            project_id: file.project_id,
            private_key_id: file.private_key_id,
            private_key: file.private_key,
            client_email: file.client_email,
            token_uri: file.token_uri,
        })
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// A service account's key: its client email and key id.
type KeyId = (String, String);

/// Access tokens by service account and key, with when each expires, shared by every bot
/// of the process.
#[derive(Clone, Default)]
pub struct Tokens {
    cache: Arc<Mutex<HashMap<KeyId, (String, Instant)>>>,
}

impl Tokens {
    /// The cached access token for `account`, while it is not about to expire.
    pub fn cached(&self, account: &ServiceAccount) -> Option<String> {
        let key = (account.client_email.clone(), account.private_key_id.clone());
        let cache = self.cache.lock().expect("not poisoned");
        let (token, until) = cache.get(&key)?;
        (Instant::now() + REFRESH_BEFORE < *until).then(|| token.clone())
    }

    /// A new access token for `account`, cached.
    pub async fn fetch(
        &self,
        backends: &Backends,
        account: &ServiceAccount,
        timeout: Duration,
    ) -> Result<String, BotError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &account.client_email,
            scope: SCOPE,
            aud: &account.token_uri,
            iat: now,
            exp: now + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(account.private_key_id.clone());
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| BotError::Credentials("the private key is not an RSA key".into()))?;
        let assertion = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| BotError::Credentials(format!("the key cannot sign: {e}")))?;
        backends
            .egress
            .check_url(&account.token_uri)
            .map_err(|refusal| BotError::Refused(format!("token_uri {refusal}")))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let sent = backends
            .client
            .post(&account.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .timeout(timeout)
            .send()
            .await;
        let answer = answer_json(sent, timeout).await.map_err(|e| match e {
            // The token endpoint answers a refused key with 400 invalid_grant.
            BotError::Refused(words) => BotError::Credentials(words),
            other => other,
        })?;
        let token = answer["access_token"]
            .as_str()
            .ok_or_else(|| BotError::Refused("the token answer has no access_token".into()))?
            .to_owned();
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(3600));
        self.cache.lock().expect("not poisoned").insert(
            (account.client_email.clone(), account.private_key_id.clone()),
            (token.clone(), Instant::now() + lifetime),
        );
        Ok(token)
    }
}
