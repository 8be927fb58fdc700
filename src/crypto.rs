//! Small cryptographic helpers shared by every layer: random tokens, hashes for storage, constant-time
//! comparison, and the data-protection secret (keyed hashes, encryption at rest, CSRF tokens).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{aead, digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// `n` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source at all; there is nothing safe to do then.
    if SystemRandom::new().fill(&mut out).is_err() {
        panic!("the operating system's random number generator failed");
    }
    out
}

/// A fresh opaque token with 256 bits of entropy, base64url.
pub fn random_token() -> String {
    b64url(&random_bytes::<32>())
}

/// Randomness as the domain receives it: services take a `&dyn Random` instead of reading the OS
/// generator themselves, so a test can hand them a fixed sequence. `OsRandom` is the production one.
pub trait Random: Send + Sync {
    fn fill(&self, out: &mut [u8]);

    /// A fresh opaque token with 256 bits of entropy, base64url.
    fn token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.fill(&mut bytes);
        b64url(&bytes)
    }

    /// A random UUID (version 4, RFC 9562 §5.4: 122 random bits), for ids that must not tell when they
    /// were made.
    fn uuid_v4(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, out: &mut [u8]) {
        if SystemRandom::new().fill(out).is_err() {
            panic!("the operating system's random number generator failed");
        }
    }
}

/// SHA-256 of a token, base64url: what the database stores instead of a bearer secret.
pub fn token_hash(token: &str) -> String {
    b64url(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The deployment's data-protection secret (`keys/secret.key`), from which purpose-bound keys derive.
#[derive(Clone)]
pub struct Secrets {
    id_hash: hmac::Key,
    pairwise: hmac::Key,
    csrf: hmac::Key,
    client_sid: hmac::Key,
    internal_client: hmac::Key,
    device: hmac::Key,
    aead: std::sync::Arc<aead::LessSafeKey>,
    /// Root of the day keys that seal what browsers carry (`seal_carried`).
    carried: hmac::Key,
}

impl Secrets {
    pub fn from_master(master: &[u8]) -> anyhow::Result<Secrets> {
        anyhow::ensure!(master.len() >= 32, "the data-protection secret is too short");
        let root = hmac::Key::new(hmac::HMAC_SHA256, master);
        let derive = |label: &str| hmac::sign(&root, label.as_bytes());
        let aead_key = derive("yunid/aead/v1");
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, aead_key.as_ref())
            .map_err(|_| anyhow::anyhow!("cannot build the data encryption key"))?;
        Ok(Secrets {
            id_hash: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/id-hash/v1").as_ref()),
            pairwise: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/pairwise/v1").as_ref()),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/csrf/v1").as_ref()),
            client_sid: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/client-sid/v1").as_ref()),
            internal_client: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/internal-client/v1").as_ref()),
            device: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/device/v1").as_ref()),
            aead: std::sync::Arc::new(aead::LessSafeKey::new(unbound)),
            carried: hmac::Key::new(hmac::HMAC_SHA256, derive("yunid/carried/v1").as_ref()),
        })
    }

    /// Keyed hash of an identifier (resident ID number): the database index, never the plaintext.
    pub fn id_hash(&self, value: &str) -> String {
        b64url(hmac::sign(&self.id_hash, value.as_bytes()).as_ref())
    }

    /// Pairwise subject for a sector (OIDC Core §8.1), stable and unlinkable across sectors.
    pub fn pairwise_sub(&self, sector: &str, local_id: &str) -> String {
        let mut input = Vec::with_capacity(sector.len() + local_id.len() + 1);
        input.extend_from_slice(sector.as_bytes());
        input.push(0);
        input.extend_from_slice(local_id.as_bytes());
        b64url(hmac::sign(&self.pairwise, &input).as_ref())
    }

    /// The `sid` one app sees for a session (OIDC Core §2 / Back-Channel Logout §2.1): stable for the
    /// session and the app, and unlinkable across apps, so two apps cannot join their users by it.
    pub fn client_sid(&self, session_sid: &str, client_id: &str) -> String {
        let mut input = Vec::with_capacity(session_sid.len() + client_id.len() + 1);
        input.extend_from_slice(session_sid.as_bytes());
        input.push(0);
        input.extend_from_slice(client_id.as_bytes());
        b64url(hmac::sign(&self.client_sid, &input).as_ref())
    }

    /// The secret of a client yunid itself runs (the admin console): every node derives the same one
    /// from the master secret, so it is never stored or shown, only its hash is registered.
    pub fn internal_client_secret(&self, client_id: &str) -> String {
        b64url(hmac::sign(&self.internal_client, client_id.as_bytes()).as_ref())
    }

    /// Keyed hash of a device-grant user code (RFC 8628 §5.1: a copy of the database does not give the
    /// ~2^34.6 live codes back to whoever tries them all).
    pub fn device_user_code(&self, normalized: &str) -> String {
        b64url(hmac::sign(&self.device, format!("user-code\0{normalized}").as_bytes()).as_ref())
    }

    /// The consent token a device consent page carries: bound to the request (its device-code hash) and
    /// to the session the page was shown to.
    pub fn device_consent(&self, device_hash: &str, session_sid: &str) -> String {
        b64url(
            hmac::sign(
                &self.device,
                format!("consent\0{device_hash}\0{session_sid}").as_bytes(),
            )
            .as_ref(),
        )
    }

    /// The form token that goes with a CSRF cookie value.
    pub fn csrf_token(&self, cookie: &str) -> String {
        b64url(hmac::sign(&self.csrf, cookie.as_bytes()).as_ref())
    }

    pub fn csrf_valid(&self, cookie: &str, token: &str) -> bool {
        match b64url_decode(token) {
            Some(tag) => hmac::verify(&self.csrf, cookie.as_bytes(), &tag).is_ok(),
            None => false,
        }
    }

    /// AES-256-GCM with a random nonce; output is base64(nonce ‖ ciphertext ‖ tag).
    pub fn encrypt(&self, plaintext: &str, aad: &[u8]) -> anyhow::Result<String> {
        let nonce_bytes = random_bytes::<12>();
        let mut buf = plaintext.as_bytes().to_vec();
        self.aead
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce_bytes),
                aead::Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    /// Seals a value that browsers carry (the pending authorization request) under a key of its own,
    /// derived from the master secret for the UTC day of `now`; that day is the key id, sent in the clear
    /// in front: `kid (4 bytes, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag`. Such values are made at
    /// every sign-in, so one key would soon meet AES-GCM's bound for random nonces (2^32 values per
    /// key); a key per day keeps that bound at ~50,000 values a second, sustained, and keeps these
    /// values apart from what is encrypted at rest (`encrypt`).
    pub fn seal_carried(&self, plaintext: &[u8], aad: &[u8], now: i64) -> anyhow::Result<Vec<u8>> {
        let kid = u32::try_from(now.div_euclid(86_400)).map_err(|_| anyhow::anyhow!("time out of range"))?;
        let key = self.carried_key(kid)?;
        let nonce_bytes = random_bytes::<12>();
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce_bytes),
            aead::Aad::from(carried_aad(kid, aad)),
            &mut buf,
        )
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = Vec::with_capacity(4 + 12 + buf.len());
        out.extend_from_slice(&kid.to_be_bytes());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what `seal_carried` made with the same `aad`, when its key id is the day of `now`, one of the
    /// two days before (nothing carried lives longer), or the next day (a node whose clock passed midnight
    /// a moment before this one's); `None` otherwise.
    pub fn open_carried(&self, sealed: &[u8], aad: &[u8], now: i64) -> Option<Vec<u8>> {
        if sealed.len() <= 4 + 12 + 16 {
            return None;
        }
        let (kid, rest) = sealed.split_at(4);
        let kid = u32::from_be_bytes(kid.try_into().ok()?);
        let today = now.div_euclid(86_400);
        if !(today - 2..=today + 1).contains(&i64::from(kid)) {
            return None;
        }
        let key = self.carried_key(kid).ok()?;
        let (nonce, rest) = rest.split_at(12);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = key
            .open_in_place(nonce, aead::Aad::from(carried_aad(kid, aad)), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }

    fn carried_key(&self, kid: u32) -> anyhow::Result<aead::LessSafeKey> {
        let derived = hmac::sign(&self.carried, &kid.to_be_bytes());
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, derived.as_ref())
            .map_err(|_| anyhow::anyhow!("cannot build the day key"))?;
        Ok(aead::LessSafeKey::new(unbound))
    }

    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> anyhow::Result<String> {
        let raw = STANDARD.decode(sealed)?;
        anyhow::ensure!(raw.len() > 12 + 16, "sealed value too short");
        let (nonce, rest) = raw.split_at(12);
        let nonce =
            aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| anyhow::anyhow!("decryption failed"))?;
        Ok(String::from_utf8(plain.to_vec())?)
    }
}

/// The associated data of a carried value: the key id it names, then the caller's purpose.
fn carried_aad(kid: u32, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + aad.len());
    out.extend_from_slice(&kid.to_be_bytes());
    out.extend_from_slice(aad);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_values_open_with_their_day_key_only_while_young() {
        let s = Secrets::from_master(&[7u8; 32]).unwrap();
        let day = 20_000 * 86_400;
        let sealed = s.seal_carried(b"hello", b"purpose", day + 5).unwrap();
        assert_eq!(&sealed[..4], &20_000u32.to_be_bytes());
        assert_eq!(
            s.open_carried(&sealed, b"purpose", day + 5).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(
            s.open_carried(&sealed, b"purpose", day + 2 * 86_400 + 9)
                .as_deref(),
            Some(&b"hello"[..])
        );
        assert!(
            s.open_carried(&sealed, b"purpose", day + 3 * 86_400).is_none(),
            "too old"
        );
        assert!(
            s.open_carried(&sealed, b"purpose", day - 1).is_some(),
            "a node a moment behind midnight"
        );
        assert!(
            s.open_carried(&sealed, b"purpose", day - 86_401).is_none(),
            "from a day ahead and more"
        );
        assert!(
            s.open_carried(&sealed, b"other", day + 5).is_none(),
            "another purpose"
        );
        // The key id is bound: the same bytes under another day's id do not open.
        let mut moved = sealed.clone();
        moved[..4].copy_from_slice(&20_001u32.to_be_bytes());
        assert!(s.open_carried(&moved, b"purpose", day + 86_400).is_none());
        // Not the at-rest key: `decrypt` does not open it, another master does not either.
        assert!(s.decrypt(&STANDARD.encode(&sealed[4..]), b"purpose").is_err());
        let other = Secrets::from_master(&[8u8; 32]).unwrap();
        assert!(other.open_carried(&sealed, b"purpose", day + 5).is_none());
    }

    #[test]
    fn encryption_round_trips_and_binds_aad() {
        let s = Secrets::from_master(&[7u8; 32]).unwrap();
        let sealed = s.encrypt("11010519491231002X", b"person-1").unwrap();
        assert!(!sealed.contains("11010519491231002X"));
        assert_eq!(s.decrypt(&sealed, b"person-1").unwrap(), "11010519491231002X");
        assert!(s.decrypt(&sealed, b"person-2").is_err());
    }

    #[test]
    fn csrf_tokens_bind_to_their_cookie() {
        let s = Secrets::from_master(&[9u8; 32]).unwrap();
        let t = s.csrf_token("cookie-a");
        assert!(s.csrf_valid("cookie-a", &t));
        assert!(!s.csrf_valid("cookie-b", &t));
        assert!(!s.csrf_valid("cookie-a", "garbage"));
    }
}
