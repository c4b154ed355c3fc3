//! Callers' JWTs from an OIDC issuer, checked against the keys it publishes.
//!
//! The issuer's discovery document (`{issuer}/.well-known/openid-configuration`) names its key
//! set; the set is fetched once per container and again when a token names a key it does not
//! hold (issuers rotate keys), at most once a minute. Only asymmetric algorithms are accepted:
//! a token signed with a shared secret (`HS256`) is refused whatever its claims, so a public key
//! can never be used as an HMAC secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::AlgorithmFamily;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use exporter_adapters::config::ConfigError;

use crate::{words, Caller, Unavailable, Verdict};

/// How often at most the key set is fetched again for a key it lacks.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// The longest a fetched key set is trusted: a key the issuer withdrew stops verifying after it.
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// The clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;

/// One OIDC issuer and the audiences the API answers to.
pub struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    http: reqwest::Client,
    keys: Mutex<Option<(Arc<JwkSet>, Instant)>>,
    refetch_after: Duration,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    scope: Value,
    #[serde(default)]
    scp: Value,
    #[serde(default)]
    permissions: Value,
}

impl Issuer {
    pub fn new(issuer: &str, audiences: Vec<String>) -> Result<Self, ConfigError> {
        url::Url::parse(issuer).map_err(|e| ConfigError::Malformed {
            name: "OIDC_ISSUER",
            reason: format!("not a URL: {e}"),
        })?;
        Ok(Self {
            issuer: issuer.to_owned(),
            audiences,
            http: crate::client()?,
            keys: Mutex::new(None),
            refetch_after: REFETCH_AFTER,
        })
    }

    /// The same issuer, fetching its key set again for an unknown key at most once per `every`
    /// (a minute unless told).
    pub fn refetching_every(self, every: Duration) -> Self {
        Self {
            refetch_after: every,
            ..self
        }
    }

    /// The verdict on a token.
    pub async fn verify(&self, token: &str) -> Result<Verdict, Unavailable> {
        let header = match decode_header(token) {
            Ok(header) => header,
            Err(e) => return Ok(Verdict::Deny(format!("not a JWT: {e}"))),
        };
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Ok(Verdict::Deny(format!(
                "{:?} is a shared-secret algorithm",
                header.alg
            )));
        }
        let Some(key) = self.key(header.kid.as_deref(), header.alg).await? else {
            return Ok(Verdict::Deny(format!(
                "signed with a key ({}) the issuer does not publish",
                header.kid.as_deref().unwrap_or("no kid")
            )));
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let claims = match decode::<Claims>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Ok(Verdict::Deny(format!("token refused: {e}"))),
        };
        let sub = claims.sub.trim();
        if sub.is_empty() {
            return Ok(Verdict::Deny("the token's sub is empty".into()));
        }
        let mut permissions: Vec<String> = [&claims.scope, &claims.scp, &claims.permissions]
            .into_iter()
            .flat_map(words)
            .collect();
        permissions.sort();
        permissions.dedup();
        Ok(Verdict::Allow(Caller {
            sub: sub.to_owned(),
            email: claims.email.filter(|e| !e.is_empty()),
            permissions: permissions.join(" "),
        }))
    }

    /// The published key a token names (by `kid`, or the one key of its algorithm's family when
    /// it names none); `None` when the issuer publishes no such key even after a fresh fetch.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Option<DecodingKey>, Unavailable> {
        let mut held = self.keys.lock().await;
        if held
            .as_ref()
            .is_some_and(|(_, fetched)| fetched.elapsed() >= KEYS_MAX_AGE)
        {
            // Too old to trust: fetched again (kept when the issuer does not answer).
            if let Ok(set) = self.fetch().await {
                *held = Some((Arc::new(set), Instant::now()));
            }
        }
        let stale = held
            .as_ref()
            .is_none_or(|(_, fetched)| fetched.elapsed() >= self.refetch_after);
        if let Some((set, _)) = held.as_ref() {
            if let Some(key) = pick(set, kid, alg)? {
                return Ok(Some(key));
            }
            if !stale {
                return Ok(None);
            }
        }
        let set = Arc::new(self.fetch().await?);
        let key = pick(&set, kid, alg)?;
        *held = Some((set, Instant::now()));
        Ok(key)
    }

    async fn fetch(&self) -> Result<JwkSet, Unavailable> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get(&discovery_url).await?;
        if discovery.issuer != self.issuer {
            return Err(Unavailable(format!(
                "the issuer's discovery document names issuer {:?}, not OIDC_ISSUER {:?}",
                discovery.issuer, self.issuer
            )));
        }
        self.get(&discovery.jwks_uri).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Unavailable> {
        let answer = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Unavailable(format!("the issuer did not answer {url}: {e}")))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(Unavailable(format!("the issuer answered {url} with {status}")));
        }
        answer
            .json()
            .await
            .map_err(|e| Unavailable(format!("the issuer's answer to {url} is not what OIDC says: {e}")))
    }
}

/// The key of `kid`, or without one the only key that fits the algorithm.
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<Option<DecodingKey>, Unavailable> {
    let jwk = match kid {
        Some(kid) => set.find(kid),
        None => {
            let family = alg.family();
            let mut fitting = set.keys.iter().filter(|k| family_of(k) == Some(family));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    jwk.map(|jwk| {
        DecodingKey::from_jwk(jwk)
            .map_err(|e| Unavailable(format!("the issuer publishes a key that cannot be read: {e}")))
    })
    .transpose()
}

/// The family of algorithms a published key serves, read from its type (`alg` is optional in a
/// key set, and many issuers leave it out).
fn family_of(jwk: &Jwk) -> Option<AlgorithmFamily> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(AlgorithmFamily::Rsa),
        AlgorithmParameters::EllipticCurve(_) => Some(AlgorithmFamily::Ec),
        AlgorithmParameters::OctetKeyPair(_) => Some(AlgorithmFamily::Ed),
        AlgorithmParameters::OctetKey(_) => Some(AlgorithmFamily::Hmac),
        _ => None,
    }
}
