//! Signed download links: what messages carry instead of a presigned S3 URL, whose validity the
//! function's temporary credentials would cut to hours. A link names an export's job and an
//! expiry and is signed with HMAC-SHA256 under a key of the deployment (kept in SSM, rotatable:
//! the first key signs, every listed key verifies). The API's link route checks it and answers
//! with a fresh, short-lived presigned redirect, so a link works for exactly as long as it says.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::export::ExportId;

type HmacSha256 = Hmac<Sha256>;

/// One signing key: its id (named in links, so keys can rotate) and its secret.
#[derive(Clone)]
pub struct LinkKey {
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkKey({}, ***)", self.id)
    }
}

/// Why a set of keys could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("no signing key: expected `id:secret[,id:secret...]`")]
    Empty,
    #[error("key `{0}` is malformed: expected `id:secret`, an id of letters and digits, a secret of at least 32 characters")]
    Malformed(String),
}

/// The deployment's link keys; the first signs.
#[derive(Clone, Debug)]
pub struct LinkSigner {
    keys: Vec<LinkKey>,
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Unknown key, or a signature that does not match: as if there were no such link.
    #[error("no such link")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

/// A signed link's query: its expiry, key and signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub expires: i64,
    pub key: String,
    pub signature: String,
}

impl LinkSigner {
    /// Reads `id:secret` pairs, comma-separated (the first signs).
    pub fn parse(text: &str) -> Result<Self, KeysError> {
        let keys = text
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|pair| {
                let (id, secret) = pair
                    .split_once(':')
                    .ok_or_else(|| KeysError::Malformed(pair.chars().take(8).collect()))?;
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) || secret.len() < 32 {
                    return Err(KeysError::Malformed(id.chars().take(16).collect()));
                }
                Ok(LinkKey {
                    id: id.to_owned(),
                    secret: secret.as_bytes().to_vec(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(Self { keys })
    }

    fn mac(key: &LinkKey, export: &ExportId, job_id: &str, expires: i64) -> HmacSha256 {
        // Any key length is valid for HMAC.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key.secret).unwrap_or_else(|_| unreachable!());
        mac.update(format!("v1\n{export}\n{job_id}\n{expires}").as_bytes());
        mac
    }

    /// Signs a link to `job_id` of `export`, valid until `expires`.
    pub fn sign(&self, export: &ExportId, job_id: &str, expires: DateTime<Utc>) -> Signature {
        let key = &self.keys[0];
        let expires = expires.timestamp();
        let tag = Self::mac(key, export, job_id, expires).finalize().into_bytes();
        Signature {
            expires,
            key: key.id.clone(),
            signature: URL_SAFE_NO_PAD.encode(tag),
        }
    }

    /// Whether a key of this id is held (a link naming another was signed with a key added
    /// since these were read, or with none of them).
    pub fn knows(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k.id == key)
    }

    /// Checks a link as of `now`: `Invalid` for an unknown key or a wrong signature (compared in
    /// constant time), `Expired` once `now` reaches its expiry.
    pub fn verify(
        &self,
        export: &ExportId,
        job_id: &str,
        signature: &Signature,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == signature.key)
            .ok_or(LinkError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(&signature.signature)
            .map_err(|_| LinkError::Invalid)?;
        Self::mac(key, export, job_id, signature.expires)
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        if now.timestamp() >= signature.expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("in range")
    }

    const KEYS: &str = "k2:0123456789abcdef0123456789abcdef-two,k1:0123456789abcdef0123456789abcdef-one";

    #[test]
    fn a_signed_link_verifies_until_it_expires_and_not_after() {
        let signer = LinkSigner::parse(KEYS).expect("keys");
        let export = ExportId::new_random();
        let signature = signer.sign(&export, "20260101T000000000Z", at(2_000));
        assert_eq!(signature.key, "k2", "the first key signs");
        assert_eq!(
            signer.verify(&export, "20260101T000000000Z", &signature, at(1_999)),
            Ok(())
        );
        assert_eq!(
            signer.verify(&export, "20260101T000000000Z", &signature, at(2_000)),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn any_change_to_a_link_makes_it_no_link_at_all() {
        let signer = LinkSigner::parse(KEYS).expect("keys");
        let export = ExportId::new_random();
        let good = signer.sign(&export, "j", at(2_000));
        let later = Signature {
            expires: good.expires + 1,
            ..good.clone()
        };
        assert_eq!(
            signer.verify(&export, "j", &later, at(0)),
            Err(LinkError::Invalid)
        );
        assert_eq!(signer.verify(&export, "k", &good, at(0)), Err(LinkError::Invalid));
        assert_eq!(
            signer.verify(&ExportId::new_random(), "j", &good, at(0)),
            Err(LinkError::Invalid)
        );
        let unknown = Signature {
            key: "k9".into(),
            ..good.clone()
        };
        assert_eq!(
            signer.verify(&export, "j", &unknown, at(0)),
            Err(LinkError::Invalid)
        );
        let garbage = Signature {
            signature: "!!".into(),
            ..good
        };
        assert_eq!(
            signer.verify(&export, "j", &garbage, at(0)),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn a_rotated_key_still_verifies_the_links_it_signed() {
        let old = LinkSigner::parse("k1:0123456789abcdef0123456789abcdef-one").expect("keys");
        let export = ExportId::new_random();
        let signature = old.sign(&export, "j", at(2_000));
        let rotated = LinkSigner::parse(KEYS).expect("keys");
        assert_eq!(rotated.verify(&export, "j", &signature, at(0)), Ok(()));
    }

    #[test]
    fn keys_must_be_named_and_long() {
        assert_eq!(LinkSigner::parse("").map(|_| ()), Err(KeysError::Empty));
        assert!(LinkSigner::parse("k1:short").is_err());
        assert!(LinkSigner::parse("k 1:0123456789abcdef0123456789abcdef").is_err());
        assert!(LinkSigner::parse("nocolon").is_err());
    }
}
