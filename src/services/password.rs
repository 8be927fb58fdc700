//! Password hashing with argon2id in blocking tasks, at most one hash per core at a time behind a
//! bounded queue (a full queue is refused at once, with no hash), and a dummy verification for unknown
//! accounts so timing does not tell who exists.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::crypto::Random;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Hashes running or waiting for a permit, and how many may be (permits plus the queue).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    capacity: usize,
    /// Argon2 memory blocks (19 MiB at the production parameters), at most one per permit, reused from
    /// hash to hash: allocating them per hash costs time, and freed blocks pile up in the allocator.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    dummy: Arc<String>,
    spent: Arc<Spent>,
}

/// How many hashes this node computed and the CPU time they took (the hashing threads' own run time).
#[derive(Default)]
struct Spent {
    hashes: std::sync::atomic::AtomicU64,
    cpu_ns: std::sync::atomic::AtomicU64,
}

/// This thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Hashes that may wait for a permit unless configured otherwise.
pub const DEFAULT_QUEUE: usize = 64;

/// The hashing queue is full: the request is refused at once, without a hash; try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting; try again shortly")]
pub struct Busy;

/// A place in the hashing queue, given back when dropped.
struct Slot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
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
    /// `rng` salts the dummy hash that unknown accounts are verified against.
    pub fn new(memory_kib: u32, iterations: u32, rng: &dyn Random) -> anyhow::Result<Hasher> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::encode_b64(&salt_from(rng)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let dummy = argon
            .hash_password(b"dummy password for unknown accounts", &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            queued: Arc::default(),
            capacity: cores + DEFAULT_QUEUE,
            memory: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(dummy),
            spent: Arc::default(),
        })
    }

    /// At most `queue` hashes wait for a free permit; beyond that a hash is refused with [`Busy`]
    /// (a queue without bound lets a flood of guesses pile up behind the throttle).
    pub fn with_queue(mut self, queue: usize) -> Hasher {
        self.capacity = self.permits.available_permits() + queue;
        self
    }

    /// Takes a place in the queue, or refuses with [`Busy`] when it is full.
    fn slot(&self) -> Result<Slot, Busy> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.queued.fetch_add(1, SeqCst) >= self.capacity {
            self.queued.fetch_sub(1, SeqCst);
            return Err(Busy);
        }
        Ok(Slot(self.queued.clone()))
    }

    /// Runs `f` with a memory block of `blocks` blocks on the blocking pool, holding a permit; the block
    /// goes back to the pool when it has the configured size (a stored hash with other parameters gets a
    /// block of its own).
    async fn with_memory<T: Send + 'static>(
        &self,
        blocks: usize,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _slot = self.slot()?;
        let _permit = self.permits.acquire().await?;
        let pool = self.memory.clone();
        let pooled = self.params.block_count();
        let spent = self.spent.clone();
        let out = tokio::task::spawn_blocking(move || {
            let taken = if blocks == pooled { take(&pool) } else { None };
            let mut memory = taken.unwrap_or_else(|| vec![Block::default(); blocks]);
            let before = thread_cpu_ns();
            let out = f(&mut memory);
            let cpu_ns = thread_cpu_ns().saturating_sub(before);
            spent
                .cpu_ns
                .fetch_add(cpu_ns, std::sync::atomic::Ordering::Relaxed);
            spent.hashes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if blocks == pooled {
                give_back(&pool, memory);
            }
            out
        })
        .await?;
        Ok(out)
    }

    /// Hashes computed so far on this node, and the CPU seconds they took.
    pub fn spent(&self) -> (u64, f64) {
        let ns = self.spent.cpu_ns.load(std::sync::atomic::Ordering::Relaxed);
        (
            self.spent.hashes.load(std::sync::atomic::Ordering::Relaxed),
            ns as f64 / 1e9,
        )
    }

    /// A PHC string of `password` under a fresh salt drawn from `rng`.
    pub async fn hash(&self, password: String, rng: &dyn Random) -> anyhow::Result<String> {
        let params = self.params.clone();
        let salt = salt_from(rng);
        self.with_memory(params.block_count(), move |memory| {
            let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt
                .decode_b64(&mut salt_bytes)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, memory)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: (&params).try_into().map_err(|e| anyhow::anyhow!("{e}"))?,
                salt: Some(salt.as_salt()),
                hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?),
            };
            Ok(phc.to_string())
        })
        .await?
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no account.
    pub async fn verify(&self, stored: Option<String>, password: String) -> anyhow::Result<bool> {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.as_str().to_owned());
        // Parameters come from the stored hash (it may predate a change of the configured ones).
        let Some((argon, salt, expected)) = parse_phc(&stored) else {
            // Same work as a real verification, so a broken row does not stand out by its timing.
            self.with_memory(self.params.block_count(), |_| ()).await?;
            return Ok(false);
        };
        let blocks = argon.params().block_count();
        let ok = self
            .with_memory(blocks, move |memory| {
                let mut out = vec![0u8; expected.len()];
                argon
                    .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
                    .is_ok()
                    && crate::crypto::ct_eq(&out, &expected)
            })
            .await?;
        Ok(ok && exists)
    }
}

/// A 16-byte salt (RFC 9106 §3.1 recommends 128 bits).
fn salt_from(rng: &dyn Random) -> [u8; 16] {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    salt
}

/// Algorithm, parameters, salt and hash of a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
fn parse_phc(stored: &str) -> Option<(Argon2<'static>, Vec<u8>, Vec<u8>)> {
    let phc = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
    let version = phc
        .version
        .map_or(Some(Version::V0x13), |v| Version::try_from(v).ok())?;
    let params = Params::try_from(&phc).ok()?;
    let mut salt = [0u8; 64];
    let salt = phc.salt?.decode_b64(&mut salt).ok()?.to_vec();
    let expected = phc.hash?.as_bytes().to_vec();
    Some((Argon2::new(algorithm, version, params), salt, expected))
}

fn take(pool: &Mutex<Vec<Vec<Block>>>) -> Option<Vec<Block>> {
    match pool.lock() {
        Ok(mut p) => p.pop(),
        Err(poisoned) => poisoned.into_inner().pop(),
    }
}

fn give_back(pool: &Mutex<Vec<Vec<Block>>>, memory: Vec<Block>) {
    match pool.lock() {
        Ok(mut p) => p.push(memory),
        Err(poisoned) => poisoned.into_inner().push(memory),
    }
}

#[cfg(test)]
impl Hasher {
    fn argon_reference(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::OsRandom;

    /// Randomness that always gives the same bytes.
    struct Sevens;

    impl Random for Sevens {
        fn fill(&self, out: &mut [u8]) {
            out.fill(7);
        }
    }

    #[tokio::test]
    async fn the_salt_is_drawn_from_the_randomness_handed_in() {
        let hasher = Hasher::new(64, 1, &Sevens).unwrap();
        let first = hasher
            .hash("correct horse battery".into(), &Sevens)
            .await
            .unwrap();
        let again = hasher
            .hash("correct horse battery".into(), &Sevens)
            .await
            .unwrap();
        assert_eq!(first, again, "the same randomness, the same salt");
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        assert!(first.contains(&format!("${}$", salt.as_str())), "{first}");
        assert!(
            hasher
                .verify(Some(first), "correct horse battery".into())
                .await
                .unwrap()
        );
    }

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

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_frees_its_places() {
        let hasher = Hasher::new(64, 1, &OsRandom).unwrap().with_queue(1);
        let threads = hasher.permits.available_permits();
        // Every hashing thread busy: the queued checks wait for a permit.
        let held = hasher
            .permits
            .clone()
            .acquire_many_owned(threads as u32)
            .await
            .unwrap();
        let waiting: Vec<_> = (0..threads + 1)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.verify(None, "guess".into()).await })
            })
            .collect();
        while hasher.queued.load(std::sync::atomic::Ordering::SeqCst) < threads + 1 {
            tokio::task::yield_now().await;
        }
        let refused = hasher.verify(None, "one too many".into()).await.unwrap_err();
        assert!(refused.downcast_ref::<Busy>().is_some(), "{refused}");
        assert_eq!(hasher.spent().0, 0, "no hash for the refused check");
        drop(held);
        for w in waiting {
            assert!(!w.await.unwrap().unwrap());
        }
        assert_eq!(hasher.spent().0, threads as u64 + 1);
        assert_eq!(hasher.queued.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(!hasher.verify(None, "later".into()).await.unwrap(), "room again");
    }

    #[tokio::test]
    async fn pooled_hashes_verify_like_the_reference_implementation() {
        use argon2::PasswordVerifier as _;
        let hasher = Hasher::new(64, 1, &OsRandom).unwrap();
        let first = hasher
            .hash("correct horse battery".into(), &OsRandom)
            .await
            .unwrap();
        // The second hash reuses the first one's memory block.
        let second = hasher
            .hash("correct horse battery".into(), &OsRandom)
            .await
            .unwrap();
        assert_ne!(first, second, "fresh salt each time");
        for phc in [&first, &second] {
            let parsed = PasswordHash::new(phc).unwrap();
            assert!(
                hasher
                    .argon_reference()
                    .verify_password(b"correct horse battery", &parsed)
                    .is_ok()
            );
            assert!(
                hasher
                    .verify(Some(phc.clone()), "correct horse battery".into())
                    .await
                    .unwrap()
            );
            assert!(
                !hasher
                    .verify(Some(phc.clone()), "correct horse battery!".into())
                    .await
                    .unwrap()
            );
        }
        // A hash made with other parameters (before a configuration change) still verifies.
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32, 2, 1, None).unwrap(),
        )
        .hash_password(b"old password 123", &salt)
        .unwrap()
        .to_string();
        assert!(
            hasher
                .verify(Some(older.clone()), "old password 123".into())
                .await
                .unwrap()
        );
        assert!(!hasher.verify(None, "old password 123".into()).await.unwrap());
        assert!(
            !hasher
                .verify(Some("not a hash".into()), "x".into())
                .await
                .unwrap()
        );
        assert_eq!(hasher.memory.lock().unwrap().len(), 1, "one block, reused");
    }
}
