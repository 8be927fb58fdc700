//! Signing keys: PKCS#8 files in the keys folder with a `keys.json` manifest, loaded and parsed once into
//! a [`KeySet`]; generated on first start (RSA-2048, P-256, Ed25519), rotated by `yunid keys rotate`.
//! A rotated-out key stays published in the JWKS until every token it signed has expired.

mod jwk;
mod signer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// One entry of `keys.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub kid: String,
    pub alg: Alg,
    pub file: String,
    pub created_at: i64,
    /// When it stopped signing; it is published until `retired_at + publish_grace`.
    pub retired_at: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub keys: Vec<KeyEntry>,
}

/// The keys folder.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

const MANIFEST: &str = "keys.json";
const SECRET: &str = "secret.key";

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder, the data-protection secret and one key per algorithm when missing.
    pub fn ensure(&self, now: i64) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let secret = self.dir.join(SECRET);
        if !secret.exists() {
            write_private(&secret, crypto::b64url(&crypto::random_bytes::<64>()).as_bytes())?;
        }
        let mut manifest = self.manifest()?;
        let mut changed = false;
        for alg in Alg::ALL {
            if !manifest
                .keys
                .iter()
                .any(|k| k.alg == alg && k.retired_at.is_none())
            {
                manifest.keys.push(self.generate(alg, now)?);
                changed = true;
            }
        }
        if changed {
            self.save(&manifest)?;
        }
        Ok(())
    }

    /// The data-protection secret (keyed hashes, encryption at rest, CSRF).
    pub fn secret(&self) -> anyhow::Result<Vec<u8>> {
        let raw = std::fs::read_to_string(self.dir.join(SECRET))?;
        crypto::b64url_decode(raw.trim()).ok_or_else(|| anyhow::anyhow!("keys/{SECRET} is not base64url"))
    }

    pub fn manifest(&self) -> anyhow::Result<Manifest> {
        let path = self.dir.join(MANIFEST);
        if !path.exists() {
            return Ok(Manifest::default());
        }
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }

    fn save(&self, manifest: &Manifest) -> anyhow::Result<()> {
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(manifest)?)?;
        std::fs::rename(tmp, self.dir.join(MANIFEST))?;
        Ok(())
    }

    /// Adds a new active key per algorithm; the previous ones retire (still published for a while).
    pub fn rotate(&self, now: i64) -> anyhow::Result<Vec<KeyEntry>> {
        let mut manifest = self.manifest()?;
        for key in manifest.keys.iter_mut().filter(|k| k.retired_at.is_none()) {
            key.retired_at = Some(now);
        }
        let mut added = Vec::new();
        for alg in Alg::ALL {
            let entry = self.generate(alg, now)?;
            added.push(entry.clone());
            manifest.keys.push(entry);
        }
        self.save(&manifest)?;
        Ok(added)
    }

    /// Reads and parses every key still to be published at `now`.
    pub fn load(&self, now: i64, publish_grace: i64) -> anyhow::Result<KeySet> {
        let manifest = self.manifest()?;
        let mut pkcs8 = BTreeMap::new();
        for entry in &manifest.keys {
            if entry.retired_at.is_some_and(|r| r + publish_grace < now) {
                continue;
            }
            pkcs8.insert(entry.kid.clone(), std::fs::read(self.dir.join(&entry.file))?);
        }
        KeySet::from_manifest(&manifest, &pkcs8, now, publish_grace)
    }

    fn generate(&self, alg: Alg, now: i64) -> anyhow::Result<KeyEntry> {
        let der = signer::generate_pkcs8(alg)?;
        let kid = jwk::thumbprint(&signer::public_jwk(alg, &der, "")?);
        let file = format!("{}-{}.pk8", alg.as_str().to_lowercase(), &kid[..16]);
        write_private(&self.dir.join(&file), &der)?;
        Ok(KeyEntry {
            kid,
            alg,
            file,
            created_at: now,
            retired_at: None,
        })
    }
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
