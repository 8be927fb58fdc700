//! Parsed signing keys: JWS signing (RS256, ES256 with the fixed r‖s encoding, EdDSA) and
//! verification of the provider's own tokens, with aws-lc-rs (AWS-LC: BoringSSL's and OpenSSL's
//! assembly; its RSA-2048 signature costs half of ring's, see BENCHMARKS.md round 4).

use std::collections::HashMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair};
use serde::Serialize;
use serde_json::Value;

use super::jwk::Jwk;
use super::{Alg, KeyEntry};
use crate::crypto;

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct LoadedKey {
    alg: Alg,
    signer: Signer,
    /// RSAPublicKey DER (RS256), the uncompressed point (ES256) or the 32 bytes (EdDSA).
    public: Vec<u8>,
    /// The public key parsed once for verification.
    verifier: ParsedPublicKey,
}

/// Every published key, parsed once; the newest unretired key per algorithm signs. Keys retired past
/// the publication grace but still within a session's lifetime are kept apart: they verify only
/// `id_token_hint`s ([`KeySet::verify_hint`]) and are neither published nor used for anything else.
pub struct KeySet {
    keys: HashMap<String, LoadedKey>,
    unpublished: HashMap<String, LoadedKey>,
    active: HashMap<Alg, String>,
    jwks: Vec<u8>,
    rng: SystemRandom,
    /// (kid, activated_at, retired_at, published) of every key, sorted: what the set was built from.
    state: Vec<(String, Option<i64>, Option<i64>, bool)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
}

pub fn generate_pkcs8(alg: Alg) -> anyhow::Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let bad = |_| anyhow::anyhow!("key generation failed");
    Ok(match alg {
        // PKCS#8 v1, as the `rsa` crate wrote RSA keys before (and as ring reads them).
        Alg::RS256 => RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(bad)?
            .as_der()
            .map_err(bad)?
            .as_ref()
            .to_vec(),
        Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(bad)?
            .as_ref()
            .to_vec(),
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(bad)?
            .as_ref()
            .to_vec(),
    })
}

fn parse(alg: Alg, der: &[u8]) -> anyhow::Result<LoadedKey> {
    let bad = |e: aws_lc_rs::error::KeyRejected| anyhow::anyhow!("{} key rejected: {e}", alg.as_str());
    let signer = match alg {
        Alg::RS256 => {
            let key = RsaKeyPair::from_pkcs8(der).map_err(bad)?;
            // What ring accepted, so that every node (an older one too) can use every key.
            anyhow::ensure!(
                (2048..=4096).contains(&(key.public_modulus_len() * 8)),
                "RS256 key rejected: a modulus of {} bits",
                key.public_modulus_len() * 8
            );
            Signer::Rsa(key)
        }
        Alg::ES256 => Signer::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(bad)?,
        ),
        Alg::EdDSA => Signer::Ed(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(bad)?),
    };
    let public = match &signer {
        Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
        Signer::Ec(k) => k.public_key().as_ref().to_vec(),
        Signer::Ed(k) => k.public_key().as_ref().to_vec(),
    };
    let algorithm: &'static dyn signature::VerificationAlgorithm = match alg {
        Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Alg::EdDSA => &signature::ED25519,
    };
    let verifier = ParsedPublicKey::new(algorithm, &public).map_err(bad)?;
    Ok(LoadedKey {
        alg,
        signer,
        public,
        verifier,
    })
}

fn jwk_of(key: &LoadedKey, kid: &str) -> Jwk {
    let base = |kty: &str| Jwk {
        kty: kty.into(),
        use_: Some("sig".into()),
        alg: Some(key.alg.as_str().into()),
        kid: (!kid.is_empty()).then(|| kid.to_owned()),
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
    };
    match &key.signer {
        Signer::Rsa(k) => {
            let c: signature::RsaPublicKeyComponents<Vec<u8>> = k.public_key().into();
            Jwk {
                n: Some(crypto::b64url(&c.n)),
                e: Some(crypto::b64url(&c.e)),
                ..base("RSA")
            }
        }
        Signer::Ec(_) => {
            // Uncompressed point: 0x04 ‖ x ‖ y.
            let (x, y) = key.public[1..].split_at(32);
            Jwk {
                crv: Some("P-256".into()),
                x: Some(crypto::b64url(x)),
                y: Some(crypto::b64url(y)),
                ..base("EC")
            }
        }
        Signer::Ed(_) => Jwk {
            crv: Some("Ed25519".into()),
            x: Some(crypto::b64url(&key.public)),
            ..base("OKP")
        },
    }
}

/// The JWS signature of `input` (RFC 7518 §3: PKCS#1 v1.5 for RS256, r ‖ s for ES256).
fn sign_raw(key: &LoadedKey, rng: &SystemRandom, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match &key.signer {
        Signer::Rsa(k) => {
            let mut sig = vec![0u8; k.public_modulus_len()];
            k.sign(&signature::RSA_PKCS1_SHA256, rng, input, &mut sig)
                .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
            sig
        }
        Signer::Ec(k) => k
            .sign(rng, input)
            .map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?
            .as_ref()
            .to_vec(),
        Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
    })
}

/// The public JWK of a PKCS#8 key (used to compute its `kid`).
pub fn public_jwk(alg: Alg, der: &[u8], kid: &str) -> anyhow::Result<Jwk> {
    Ok(jwk_of(&parse(alg, der)?, kid))
}

/// Whether a key is still in the JWKS: unretired, or retired at or after `published_since`.
fn is_published(entry: &KeyEntry, published_since: i64) -> bool {
    entry.retired_at.is_none_or(|r| r >= published_since)
}

fn state_of<'a>(
    entries: impl IntoIterator<Item = &'a KeyEntry>,
    published_since: i64,
) -> Vec<(String, Option<i64>, Option<i64>, bool)> {
    let mut state: Vec<_> = entries
        .into_iter()
        .map(|e| {
            (
                e.kid.clone(),
                e.activated_at,
                e.retired_at,
                is_published(e, published_since),
            )
        })
        .collect();
    state.sort();
    state
}

impl KeySet {
    /// Parses the published keys (`entries` with their PKCS#8 bytes); the newest signing key per
    /// algorithm signs. Every algorithm needs one.
    pub fn from_entries(entries: &[(KeyEntry, Vec<u8>)]) -> anyhow::Result<KeySet> {
        KeySet::from_entries_at(entries, i64::MIN)
    }

    /// [`KeySet::from_entries`], where keys retired before `published_since` are kept for hints only.
    pub fn from_entries_at(entries: &[(KeyEntry, Vec<u8>)], published_since: i64) -> anyhow::Result<KeySet> {
        let mut keys = HashMap::new();
        let mut unpublished = HashMap::new();
        let mut active: HashMap<Alg, (i64, String)> = HashMap::new();
        let mut jwks = Vec::new();
        for (entry, der) in entries {
            let key = parse(entry.alg, der)?;
            if !is_published(entry, published_since) {
                unpublished.insert(entry.kid.clone(), key);
                continue;
            }
            jwks.push(jwk_of(&key, &entry.kid));
            if let (Some(since), true) = (entry.activated_at, entry.is_signing()) {
                let newer = active
                    .get(&entry.alg)
                    .is_none_or(|(at, kid)| (since, &entry.kid) > (*at, kid));
                if newer {
                    active.insert(entry.alg, (since, entry.kid.clone()));
                }
            }
            keys.insert(entry.kid.clone(), key);
        }
        for alg in Alg::ALL {
            anyhow::ensure!(active.contains_key(&alg), "no active {} key", alg.as_str());
        }
        Ok(KeySet {
            keys,
            unpublished,
            active: active.into_iter().map(|(a, (_, kid))| (a, kid)).collect(),
            jwks: serde_json::to_vec(&serde_json::json!({ "keys": jwks }))?,
            rng: SystemRandom::new(),
            state: state_of(entries.iter().map(|(e, _)| e), published_since),
        })
    }

    /// A fresh key per algorithm, in memory only (fuzzing, micro-benchmarks).
    pub fn generate(now: i64) -> anyhow::Result<KeySet> {
        let mut entries = Vec::new();
        for alg in Alg::ALL {
            let (mut entry, der) = super::generate(alg, now)?;
            entry.activated_at = Some(now);
            entries.push((entry, der));
        }
        KeySet::from_entries(&entries)
    }

    /// Whether this set was built from exactly these keys in these states (then there is nothing to
    /// open or parse again).
    pub fn describes<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a KeyEntry>,
        published_since: i64,
    ) -> bool {
        self.state == state_of(entries, published_since)
    }

    /// The key ids this set publishes.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// The JWKS document, serialised once.
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
    }

    /// Whether the key `kid` is still published (and so still verifies tokens).
    pub fn publishes(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn active_kid(&self, alg: Alg) -> Option<&str> {
        self.active.get(&alg).map(String::as_str)
    }

    /// A compact JWS over `claims`, signed by the active key for `alg`.
    pub fn sign(&self, alg: Alg, typ: &str, claims: &impl Serialize) -> anyhow::Result<String> {
        let kid = self
            .active
            .get(&alg)
            .ok_or_else(|| anyhow::anyhow!("no active key for {}", alg.as_str()))?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| anyhow::anyhow!("active key missing"))?;
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": typ, "kid": kid });
        let mut out = crypto::b64url(&serde_json::to_vec(&header)?);
        out.push('.');
        out.push_str(&crypto::b64url(&serde_json::to_vec(claims)?));
        let sig = sign_raw(key, &self.rng, out.as_bytes())?;
        out.push('.');
        out.push_str(&crypto::b64url(&sig));
        Ok(out)
    }

    /// Verifies a JWS this provider signed (any published key) and returns header and claims.
    /// Expiry and audience are the caller's to check.
    pub fn verify(&self, token: &str) -> Result<(Value, Value), VerifyError> {
        self.verify_with(token, false)
    }

    /// [`KeySet::verify`] for an `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated Logout §2): an ID
    /// token may be presented as a hint as long as the session it names can live, so keys retired
    /// longer ago than the publication grace still verify it here (and only here).
    pub fn verify_hint(&self, token: &str) -> Result<(Value, Value), VerifyError> {
        self.verify_with(token, true)
    }

    fn verify_with(&self, token: &str, retired_too: bool) -> Result<(Value, Value), VerifyError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let decode = |part: &str| -> Result<Value, VerifyError> {
            let bytes = crypto::b64url_decode(part).ok_or(VerifyError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
        };
        let header = decode(h)?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(VerifyError::UnknownKey)?;
        let key = self
            .keys
            .get(kid)
            .or_else(|| retired_too.then(|| self.unpublished.get(kid)).flatten())
            .ok_or(VerifyError::UnknownKey)?;
        // The algorithm comes from our key, never from the token: `alg` must merely agree.
        if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str()) {
            return Err(VerifyError::BadSignature);
        }
        let sig = crypto::b64url_decode(s).ok_or(VerifyError::Malformed)?;
        let signed_len = h.len() + 1 + p.len();
        key.verifier
            .verify_sig(&token.as_bytes()[..signed_len], &sig)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok((header, decode(p)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One signing key per algorithm at `now`, and a retired EdDSA key.
    fn entries_with_retired(retired_at: i64) -> Vec<(KeyEntry, Vec<u8>)> {
        let mut entries: Vec<_> = Alg::ALL
            .into_iter()
            .map(|alg| {
                let (mut e, der) = super::super::generate(alg, 0).unwrap();
                e.activated_at = Some(0);
                (e, der)
            })
            .collect();
        let (mut old, der) = super::super::generate(Alg::EdDSA, -10).unwrap();
        old.activated_at = Some(-10);
        old.retired_at = Some(retired_at);
        entries.push((old, der));
        entries
    }

    /// Keys as the ring-era code generated and stored them (RSA by the `rsa` crate, P-256 and Ed25519 by
    /// ring, PKCS#8), their JWKs as that code published them, and for the deterministic algorithms the
    /// signature OpenSSL (`openssl dgst -sign`, `openssl pkeyutl -sign -rawin`) makes with the same key.
    fn ring_era_keys() -> Vec<serde_json::Value> {
        serde_json::from_str(include_str!("testdata/keys_ring_era.json")).unwrap()
    }

    #[test]
    fn keys_stored_by_earlier_releases_load_and_publish_the_same_jwks() {
        let rng = SystemRandom::new();
        for fixture in ring_era_keys() {
            let alg = Alg::parse(fixture["alg"].as_str().unwrap()).unwrap();
            let der = crypto::b64url_decode(fixture["pkcs8"].as_str().unwrap()).unwrap();
            let expected: Jwk = serde_json::from_value(fixture["jwk"].clone()).unwrap();
            let kid = expected.kid.clone().unwrap();
            assert_eq!(public_jwk(alg, &der, &kid).unwrap(), expected, "{alg:?}");
            assert_eq!(super::super::jwk::thumbprint(&expected), kid, "{alg:?}");
            let key = parse(alg, &der).unwrap();
            if let Some(input) = fixture["signing_input"].as_str() {
                let sig = sign_raw(&key, &rng, input.as_bytes()).unwrap();
                assert_eq!(
                    crypto::b64url(&sig),
                    fixture["signature_by_openssl"].as_str().unwrap(),
                    "{alg:?}"
                );
            }
            // Every algorithm: a token signed now verifies with the key set built from the stored key.
            let entry = KeyEntry {
                kid: kid.clone(),
                alg,
                created_at: 0,
                activated_at: Some(0),
                retired_at: None,
            };
            let mut entries = vec![(entry, der)];
            for other in Alg::ALL.into_iter().filter(|a| *a != alg) {
                let (mut e, d) = super::super::generate(other, 0).unwrap();
                e.activated_at = Some(0);
                entries.push((e, d));
            }
            let set = KeySet::from_entries(&entries).unwrap();
            assert_eq!(set.active_kid(alg), Some(kid.as_str()));
            let token = set.sign(alg, "JWT", &serde_json::json!({ "sub": "a" })).unwrap();
            assert_eq!(set.verify(&token).unwrap().1["sub"], "a");
            let jwks: serde_json::Value = serde_json::from_slice(set.jwks_json()).unwrap();
            assert!(
                jwks["keys"].as_array().unwrap().contains(&fixture["jwk"]),
                "{jwks}"
            );
        }
    }

    /// A node of an earlier release (ring) opens the keys a newer node generates, and verifies what it
    /// signs: during a rolling upgrade both sign and publish the same keys.
    #[test]
    fn generated_keys_and_their_signatures_work_with_ring() {
        use ring::signature as r;
        let set = KeySet::generate(0).unwrap();
        for alg in Alg::ALL {
            let (_, der) = super::super::generate(alg, 0).unwrap();
            let ring_rng = ring::rand::SystemRandom::new();
            match alg {
                Alg::RS256 => drop(r::RsaKeyPair::from_pkcs8(&der).unwrap()),
                Alg::ES256 => drop(
                    r::EcdsaKeyPair::from_pkcs8(&r::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &ring_rng)
                        .unwrap(),
                ),
                Alg::EdDSA => drop(r::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap()),
            }
            let token = set.sign(alg, "JWT", &serde_json::json!({ "sub": "a" })).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let kid = set.active_kid(alg).unwrap();
            let key = &set.keys[kid];
            let ring_alg: &dyn r::VerificationAlgorithm = match alg {
                Alg::RS256 => &r::RSA_PKCS1_2048_8192_SHA256,
                Alg::ES256 => &r::ECDSA_P256_SHA256_FIXED,
                Alg::EdDSA => &r::ED25519,
            };
            r::UnparsedPublicKey::new(ring_alg, &key.public)
                .verify(input.as_bytes(), &crypto::b64url_decode(sig).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn a_key_retired_past_the_grace_verifies_hints_only_and_is_not_published() {
        let entries = entries_with_retired(0);
        let old_kid = entries[3].0.kid.clone();
        let mut signing = entries.clone();
        signing[3].0.retired_at = None;
        signing.truncate(4);
        signing.swap_remove(2); // the old EdDSA key signs
        let old = KeySet::from_entries(&signing).unwrap();
        assert_eq!(old.active_kid(Alg::EdDSA), Some(old_kid.as_str()));
        let token = old
            .sign(Alg::EdDSA, "JWT", &serde_json::json!({ "sub": "a" }))
            .unwrap();

        let within_grace = KeySet::from_entries_at(&entries, 0).unwrap();
        assert!(within_grace.publishes(&old_kid));
        assert!(within_grace.verify(&token).is_ok());

        let past_grace = KeySet::from_entries_at(&entries, 1).unwrap();
        assert!(!past_grace.publishes(&old_kid));
        assert!(!past_grace.kids().contains(&old_kid.as_str()));
        let jwks = String::from_utf8(past_grace.jwks_json().to_vec()).unwrap();
        assert!(!jwks.contains(&old_kid), "{jwks}");
        assert_eq!(past_grace.verify(&token), Err(VerifyError::UnknownKey));
        assert_eq!(past_grace.verify_hint(&token).unwrap().1["sub"], "a");
        assert!(!past_grace.describes(entries.iter().map(|(e, _)| e), 0));
        assert!(past_grace.describes(entries.iter().map(|(e, _)| e), 1));
    }
}
