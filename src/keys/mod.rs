//! Signing keys. They live in the database, each PKCS#8 sealed (AES-256-GCM) under the key-encryption
//! key (`keys/kek.key` or `YUNID_KEY_ENCRYPTION_KEY`) that every node holds, so every node signs and
//! publishes the same keys. Generated on first start (RSA-2048, P-256, Ed25519); `yunid keys rotate`
//! adds the next key per algorithm, which every node publishes before any node signs with it
//! ([`rotation::refresh`]); a rotated-out key stays published until every token it signed has expired.
//!
//! The keys folder holds the data-protection secret and the key-encryption key; keys of the earlier
//! file layout (`keys.json` and `*.pk8`) are imported into an empty database once.

mod jwk;
pub mod rotation;
mod signer;

use std::path::{Path, PathBuf};

use aws_lc_rs::aead;
use serde::{Deserialize, Serialize};

pub use jwk::Jwk;
pub use signer::{KeySet, VerifyError};

use crate::crypto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
pub enum Alg {
    RS256,
    ES256,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One signing key's life: created (published), activated (signing), retired (published until the
/// grace period ends).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub kid: String,
    pub alg: Alg,
    pub created_at: i64,
    /// When it started signing; `None` while it is only published.
    #[serde(default)]
    pub activated_at: Option<i64>,
    /// When it stopped signing; it is published until `retired_at + publish_grace`.
    pub retired_at: Option<i64>,
}

impl KeyEntry {
    pub fn is_signing(&self) -> bool {
        self.activated_at.is_some() && self.retired_at.is_none()
    }

    pub fn is_next(&self) -> bool {
        self.activated_at.is_none() && self.retired_at.is_none()
    }

    /// What an operator reads in `yunid keys list`.
    pub fn state(&self, grace: i64, now: i64) -> String {
        match (self.activated_at, self.retired_at) {
            (_, Some(r)) if r + grace < now => "expired".into(),
            (_, Some(r)) => format!("retiring (published until {})", r + grace),
            (Some(_), None) => "active".into(),
            (None, None) => "next (published; signs once every node publishes it)".into(),
        }
    }
}

/// The key-encryption key: seals signing keys at rest.
pub struct Kek(aead::LessSafeKey);

impl Kek {
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Kek> {
        anyhow::ensure!(
            bytes.len() == 32,
            "the key-encryption key must be 32 bytes (base64url)"
        );
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, bytes)
            .map_err(|_| anyhow::anyhow!("unusable key-encryption key"))?;
        Ok(Kek(aead::LessSafeKey::new(key)))
    }

    /// Parses the base64url text of `kek.key` or `YUNID_KEY_ENCRYPTION_KEY`.
    pub fn from_text(text: &str) -> anyhow::Result<Kek> {
        let bytes = crypto::b64url_decode(text.trim())
            .ok_or_else(|| anyhow::anyhow!("the key-encryption key is not base64url"))?;
        Kek::from_bytes(&bytes)
    }

    fn aad(kid: &str, alg: Alg) -> Vec<u8> {
        format!("yunid/signing-key/v1|{kid}|{}", alg.as_str()).into_bytes()
    }

    /// base64url(nonce ‖ ciphertext ‖ tag), bound to the key's id and algorithm.
    pub fn seal(&self, der: &[u8], kid: &str, alg: Alg) -> anyhow::Result<String> {
        let nonce = crypto::random_bytes::<12>();
        let mut buf = der.to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(Kek::aad(kid, alg)),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("sealing a signing key failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(crypto::b64url(&out))
    }

    pub fn open(&self, sealed: &str, kid: &str, alg: Alg) -> anyhow::Result<Vec<u8>> {
        let cannot = || {
            anyhow::anyhow!(
                "signing key {kid} cannot be opened with this key-encryption key \
                 (every node needs the same keys/kek.key or YUNID_KEY_ENCRYPTION_KEY)"
            )
        };
        let raw = crypto::b64url_decode(sealed).ok_or_else(cannot)?;
        anyhow::ensure!(raw.len() > 12 + 16, cannot());
        let (nonce, rest) = raw.split_at(12);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| cannot())?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, aead::Aad::from(Kek::aad(kid, alg)), &mut buf)
            .map_err(|_| cannot())?;
        Ok(plain.to_vec())
    }
}

/// The keys folder: the data-protection secret, the key-encryption key, and (read once, to import)
/// signing keys of the earlier file layout.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

const SECRET: &str = "secret.key";
const KEK: &str = "kek.key";
const LEGACY_MANIFEST: &str = "keys.json";

/// `keys.json` of the earlier layout.
#[derive(Debug, Default, Deserialize)]
struct LegacyManifest {
    keys: Vec<LegacyEntry>,
}

#[derive(Debug, Deserialize)]
struct LegacyEntry {
    kid: String,
    alg: Alg,
    file: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder and the data-protection secret when missing, and the key-encryption key
    /// unless it comes from the environment.
    pub fn ensure(&self, kek_from_env: bool) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let secret = self.dir.join(SECRET);
        if !secret.exists() {
            write_private(&secret, crypto::b64url(&crypto::random_bytes::<64>()).as_bytes())?;
        }
        let kek = self.dir.join(KEK);
        if !kek_from_env && !kek.exists() {
            write_private(&kek, crypto::b64url(&crypto::random_bytes::<32>()).as_bytes())?;
        }
        Ok(())
    }

    /// The data-protection secret (keyed hashes, encryption at rest, CSRF).
    pub fn secret(&self) -> anyhow::Result<Vec<u8>> {
        let raw = std::fs::read_to_string(self.dir.join(SECRET))?;
        crypto::b64url_decode(raw.trim()).ok_or_else(|| anyhow::anyhow!("keys/{SECRET} is not base64url"))
    }

    /// The key-encryption key: from the environment (`YUNID_KEY_ENCRYPTION_KEY`) when set, else the file.
    pub fn kek(&self, from_env: Option<&str>) -> anyhow::Result<Kek> {
        match from_env {
            Some(text) => Kek::from_text(text),
            None => {
                let raw = std::fs::read_to_string(self.dir.join(KEK))
                    .map_err(|e| anyhow::anyhow!("keys/{KEK}: {e}"))?;
                Kek::from_text(&raw).map_err(|e| anyhow::anyhow!("keys/{KEK}: {e}"))
            }
        }
    }

    /// Signing keys of the earlier file layout, with their PKCS#8 bytes; empty when there are none.
    pub fn legacy_keys(&self) -> anyhow::Result<Vec<(KeyEntry, Vec<u8>)>> {
        let path = self.dir.join(LEGACY_MANIFEST);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let manifest: LegacyManifest = serde_json::from_slice(&std::fs::read(path)?)?;
        manifest
            .keys
            .into_iter()
            .map(|k| {
                let der = std::fs::read(self.dir.join(&k.file))?;
                let entry = KeyEntry {
                    kid: k.kid,
                    alg: k.alg,
                    created_at: k.created_at,
                    // In that layout every unretired key signed.
                    activated_at: k.retired_at.is_none().then_some(k.created_at),
                    retired_at: k.retired_at,
                };
                Ok((entry, der))
            })
            .collect()
    }
}

/// A new key pair for `alg`: its entry (kid = RFC 7638 thumbprint) and PKCS#8 bytes.
pub fn generate(alg: Alg, now: i64) -> anyhow::Result<(KeyEntry, Vec<u8>)> {
    let der = signer::generate_pkcs8(alg)?;
    let kid = jwk::thumbprint(&signer::public_jwk(alg, &der, "")?);
    let entry = KeyEntry {
        kid,
        alg,
        created_at: now,
        activated_at: None,
        retired_at: None,
    };
    Ok((entry, der))
}

/// Writes a file readable by its owner only (mode 0600 on Unix).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
