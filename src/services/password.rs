//! Password hashing with argon2id in blocking tasks, at most one hash per core at a time, and a dummy
//! verification for unknown accounts so timing does not tell who exists.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
}

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 1024;

const COMMON: &str = include_str!("data/common-passwords.txt");

/// Why a new password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    Length,
    Common,
}

/// Checks a new password: 8 to 1024 characters (never truncated) and not on the bundled list of common
/// and breached passwords (compared case-insensitively), nor a single repeated character.
pub fn check_new(password: &str) -> Result<(), Weakness> {
    let len = password.chars().count();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&len) {
        return Err(Weakness::Length);
    }
    let lower = password.to_lowercase();
    let repeated = lower.chars().all(|c| lower.starts_with(c));
    let listed = COMMON
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.trim().eq_ignore_ascii_case(&lower));
    if repeated || listed {
        return Err(Weakness::Common);
    }
    Ok(())
}

impl Hasher {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Hasher> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::encode_b64(&crate::crypto::random_bytes::<16>())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dummy = argon
            .hash_password(b"dummy password for unknown accounts", &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            dummy: Arc::new(dummy),
        })
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let argon = self.argon();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::encode_b64(&crate::crypto::random_bytes::<16>())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .await?
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no account.
    pub async fn verify(&self, stored: Option<String>, password: String) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.as_str().to_owned());
        let argon = self.argon();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .map(|h| argon.verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        })
        .await?;
        Ok(ok && exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_short_passwords_are_refused() {
        assert_eq!(check_new("short"), Err(Weakness::Length));
        assert_eq!(check_new("woaini1314"), Err(Weakness::Common));
        assert_eq!(check_new("PASSWORD123"), Err(Weakness::Common));
        assert_eq!(check_new("zzzzzzzzzz"), Err(Weakness::Common));
        assert_eq!(check_new("correct horse battery"), Ok(()));
        // Never truncated: a long password is accepted whole (up to the limit), and over it refused.
        assert_eq!(check_new(&"ab".repeat(512)), Ok(()));
        assert_eq!(check_new(&"ab".repeat(513)), Err(Weakness::Length));
    }
}
