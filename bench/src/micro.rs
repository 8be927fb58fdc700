//! The crypto floor, on the driver's core while the server is idle: what one core can sign and hash
//! when nothing else is done. ES256 and RS256 go through yunid's own key set (header, JSON, base64url
//! and aws-lc-rs, exactly as a token is signed); argon2id uses the production parameters (m=19456 KiB, t=2,
//! p=1), once through yunid's `Hasher` (a fresh 19 MiB block per hash) and once with one reused block.
//! Rates are given per wall-clock second and per CPU second of the driver (clock ticks of
//! /proc/self/stat, so measure for a second or more); the second is the floor on a busy machine.

use std::time::{Duration, Instant};

use yunid::keys::{Alg, KeySet};

pub struct Micro {
    pub name: &'static str,
    pub ops: u64,
    /// Wall-clock seconds.
    pub secs: f64,
    /// CPU seconds of this process over the same span (robust when other work shares the core).
    pub cpu_secs: f64,
    pub load: f64,
}

impl Micro {
    /// Operations per wall-clock second.
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Operations per CPU second: what one core does when it does nothing else.
    pub fn per_cpu_sec(&self) -> f64 {
        if self.cpu_secs > 0.0 {
            self.ops as f64 / self.cpu_secs
        } else {
            self.per_sec()
        }
    }
}

fn self_cpu_secs() -> f64 {
    crate::server::cpu_ticks(std::process::id()) as f64 / crate::server::clk_tck()
}

fn measure(
    name: &'static str,
    budget: Duration,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Micro> {
    // A short warm-up, then as many calls as fit in the budget (at least one).
    f()?;
    let load = crate::server::loadavg();
    let cpu0 = self_cpu_secs();
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        f()?;
        ops += 1;
        if start.elapsed() >= budget {
            break;
        }
    }
    Ok(Micro {
        name,
        ops,
        secs: start.elapsed().as_secs_f64(),
        cpu_secs: self_cpu_secs() - cpu0,
        load,
    })
}

pub async fn run(budget: Duration) -> anyhow::Result<Vec<Micro>> {
    tokio::task::spawn_blocking(move || run_blocking(budget)).await?
}

/// The claims the floor signs (an access token's; a few hundred bytes of JSON).
fn token_claims(now: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "0192f0c6a5b87c3e9d1f2a3b4c5d6e7f",
        "aud": "0192f0c6a5b87c3e9d1f2a3b4c5d6e7f",
        "client_id": "0192f0c6a5b87c3e9d1f2a3b4c5d6e7f",
        "iat": now,
        "exp": now + 600,
        "jti": "3f1c2b7e9a8d4c6b8e0f1a2b3c4d5e6f",
        "scope": "api",
    })
}

fn run_blocking(budget: Duration) -> anyhow::Result<Vec<Micro>> {
    let now = chrono::Utc::now().timestamp();
    let keys = KeySet::generate(now)?;
    let claims = token_claims(now);
    let mut out = Vec::new();
    out.push(measure("es256_sign (yunid KeySet)", budget, || {
        keys.sign(Alg::ES256, "at+jwt", &claims).map(drop)
    })?);
    out.push(measure("rs256_sign (yunid KeySet)", budget, || {
        keys.sign(Alg::RS256, "JWT", &claims).map(drop)
    })?);
    let token = keys.sign(Alg::ES256, "at+jwt", &claims)?;
    out.push(measure("es256_verify (yunid KeySet)", budget, || {
        keys.verify(&token).map(drop).map_err(|e| anyhow::anyhow!("{e}"))
    })?);
    // argon2id, production parameters.
    let hasher = yunid::services::password::Hasher::new(19 * 1024, 2, &yunid::crypto::OsRandom)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let argon_budget = budget.max(Duration::from_millis(300));
    out.push(measure("argon2id hash (yunid Hasher)", argon_budget, || {
        rt.block_on(hasher.hash("bench passphrase 2026".to_owned(), &yunid::crypto::OsRandom))
            .map(drop)
    })?);
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.clone(),
    );
    let mut blocks = vec![argon2::Block::default(); params.block_count()];
    let mut hash = [0u8; 32];
    out.push(measure("argon2id hash (block reused)", argon_budget, || {
        argon
            .hash_password_into_with_memory(
                b"bench passphrase 2026",
                b"sixteen byte salt",
                &mut hash,
                &mut blocks,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))
    })?);
    Ok(out)
}

/// The signature libraries side by side (issue 17): the same keys (PKCS#8 as yunid generates and stores
/// them) and the same message — the signing input of an ID token — through ring, aws-lc-rs and OpenSSL
/// (the `openssl` crate over the system's libssl). One row per operation and library.
pub struct LibMicro {
    pub op: &'static str,
    pub lib: &'static str,
    pub m: Micro,
}

pub const LIBS: [&str; 3] = ["ring", "aws-lc-rs", "openssl"];

pub async fn libraries(budget: Duration) -> anyhow::Result<Vec<LibMicro>> {
    tokio::task::spawn_blocking(move || libraries_blocking(budget)).await?
}

fn libraries_blocking(budget: Duration) -> anyhow::Result<Vec<LibMicro>> {
    use aws_lc_rs::signature::KeyPair as _;
    use openssl::ecdsa::EcdsaSig;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::{Signer, Verifier};
    use ring::signature::KeyPair as _;

    let now = chrono::Utc::now().timestamp();
    let mut same_keys = Vec::new();
    for alg in Alg::ALL {
        let (mut entry, der) = yunid::keys::generate(alg, now)?;
        entry.activated_at = Some(now);
        same_keys.push((entry, der));
    }
    let der_of = |alg: Alg| {
        same_keys
            .iter()
            .find(|(e, _)| e.alg == alg)
            .map(|(_, der)| der.clone())
            .ok_or_else(|| anyhow::anyhow!("no {} key", alg.as_str()))
    };
    let (rsa_der, ec_der, ed_der) = (der_of(Alg::RS256)?, der_of(Alg::ES256)?, der_of(Alg::EdDSA)?);
    // An ID token's signing input: base64url(header) '.' base64url(claims), about 600 bytes.
    let msg: Vec<u8> = std::iter::repeat_n(b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9", 17)
        .flatten()
        .copied()
        .collect();
    let fail = |what: &str| anyhow::anyhow!("{what} failed");
    let mut out = Vec::new();
    let mut row = |op: &'static str, lib: &'static str, m: Micro| out.push(LibMicro { op, lib, m });

    // ring
    {
        use ring::signature as s;
        let rng = ring::rand::SystemRandom::new();
        let rsa = s::RsaKeyPair::from_pkcs8(&rsa_der).map_err(|e| anyhow::anyhow!("ring RSA: {e}"))?;
        let ec = s::EcdsaKeyPair::from_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &ec_der, &rng)
            .map_err(|e| anyhow::anyhow!("ring EC: {e}"))?;
        let ed = s::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed_der)
            .map_err(|e| anyhow::anyhow!("ring Ed25519: {e}"))?;
        let mut rsa_sig = vec![0u8; rsa.public().modulus_len()];
        rsa.sign(&s::RSA_PKCS1_SHA256, &rng, &msg, &mut rsa_sig)
            .map_err(|_| fail("ring RSA sign"))?;
        let ec_sig = ec.sign(&rng, &msg).map_err(|_| fail("ring ECDSA sign"))?;
        let rsa_pub =
            s::UnparsedPublicKey::new(&s::RSA_PKCS1_2048_8192_SHA256, rsa.public().as_ref().to_vec());
        let ec_pub =
            s::UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, ec.public_key().as_ref().to_vec());
        row(
            "rs256_sign",
            "ring",
            measure("rs256_sign ring", budget, || {
                let mut sig = vec![0u8; rsa.public().modulus_len()];
                rsa.sign(&s::RSA_PKCS1_SHA256, &rng, &msg, &mut sig)
                    .map_err(|_| fail("ring RSA sign"))
            })?,
        );
        row(
            "rs256_verify",
            "ring",
            measure("rs256_verify ring", budget, || {
                rsa_pub
                    .verify(&msg, &rsa_sig)
                    .map_err(|_| fail("ring RSA verify"))
            })?,
        );
        row(
            "es256_sign",
            "ring",
            measure("es256_sign ring", budget, || {
                ec.sign(&rng, &msg).map(drop).map_err(|_| fail("ring ECDSA sign"))
            })?,
        );
        row(
            "es256_verify",
            "ring",
            measure("es256_verify ring", budget, || {
                ec_pub
                    .verify(&msg, ec_sig.as_ref())
                    .map_err(|_| fail("ring ECDSA verify"))
            })?,
        );
        row(
            "ed25519_sign",
            "ring",
            measure("ed25519_sign ring", budget, || {
                std::hint::black_box(ed.sign(&msg));
                Ok(())
            })?,
        );
    }

    // aws-lc-rs (ring's API; AWS-LC underneath)
    {
        use aws_lc_rs::signature as s;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let rsa = s::RsaKeyPair::from_pkcs8(&rsa_der).map_err(|e| anyhow::anyhow!("aws-lc-rs RSA: {e}"))?;
        let ec = s::EcdsaKeyPair::from_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &ec_der)
            .map_err(|e| anyhow::anyhow!("aws-lc-rs EC: {e}"))?;
        let ed = s::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed_der)
            .map_err(|e| anyhow::anyhow!("aws-lc-rs Ed25519: {e}"))?;
        let mut rsa_sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&s::RSA_PKCS1_SHA256, &rng, &msg, &mut rsa_sig)
            .map_err(|_| fail("aws-lc-rs RSA sign"))?;
        let ec_sig = ec.sign(&rng, &msg).map_err(|_| fail("aws-lc-rs ECDSA sign"))?;
        let rsa_pub = s::ParsedPublicKey::new(&s::RSA_PKCS1_2048_8192_SHA256, rsa.public_key().as_ref())
            .map_err(|e| anyhow::anyhow!("aws-lc-rs RSA public: {e}"))?;
        let ec_pub = s::ParsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, ec.public_key().as_ref())
            .map_err(|e| anyhow::anyhow!("aws-lc-rs EC public: {e}"))?;
        let ec_unparsed =
            s::UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, ec.public_key().as_ref().to_vec());
        row(
            "rs256_sign",
            "aws-lc-rs",
            measure("rs256_sign aws-lc-rs", budget, || {
                let mut sig = vec![0u8; rsa.public_modulus_len()];
                rsa.sign(&s::RSA_PKCS1_SHA256, &rng, &msg, &mut sig)
                    .map_err(|_| fail("aws-lc-rs RSA sign"))
            })?,
        );
        // yunid's own signing path on the same keys, in the same round: header, JSON, base64url and the
        // aws-lc-rs signature above, so its overhead over the bare signature is not a difference of runs.
        let keyset = KeySet::from_entries(&same_keys)?;
        let claims = token_claims(now);
        row(
            "rs256_sign via yunid KeySet (whole JWS)",
            "aws-lc-rs",
            measure("rs256_sign KeySet", budget, || {
                keyset.sign(Alg::RS256, "JWT", &claims).map(drop)
            })?,
        );
        row(
            "es256_sign via yunid KeySet (whole JWS)",
            "aws-lc-rs",
            measure("es256_sign KeySet", budget, || {
                keyset.sign(Alg::ES256, "JWT", &claims).map(drop)
            })?,
        );
        row(
            "rs256_verify",
            "aws-lc-rs",
            measure("rs256_verify aws-lc-rs", budget, || {
                rsa_pub
                    .verify_sig(&msg, &rsa_sig)
                    .map_err(|_| fail("aws-lc-rs RSA verify"))
            })?,
        );
        row(
            "es256_sign",
            "aws-lc-rs",
            measure("es256_sign aws-lc-rs", budget, || {
                ec.sign(&rng, &msg)
                    .map(drop)
                    .map_err(|_| fail("aws-lc-rs ECDSA sign"))
            })?,
        );
        row(
            "es256_verify",
            "aws-lc-rs",
            measure("es256_verify aws-lc-rs", budget, || {
                ec_pub
                    .verify_sig(&msg, ec_sig.as_ref())
                    .map_err(|_| fail("aws-lc-rs ECDSA verify"))
            })?,
        );
        row(
            "es256_verify (key parsed per call)",
            "aws-lc-rs",
            measure("es256_verify aws-lc-rs unparsed", budget, || {
                ec_unparsed
                    .verify(&msg, ec_sig.as_ref())
                    .map_err(|_| fail("aws-lc-rs ECDSA verify"))
            })?,
        );
        row(
            "ed25519_sign",
            "aws-lc-rs",
            measure("ed25519_sign aws-lc-rs", budget, || {
                std::hint::black_box(ed.sign(&msg));
                Ok(())
            })?,
        );
    }

    // OpenSSL (libssl of the system), through the `openssl` crate: EVP, one Signer per signature.
    {
        let ossl = |e: openssl::error::ErrorStack| anyhow::anyhow!("openssl: {e}");
        let rsa = PKey::private_key_from_pkcs8(&rsa_der).map_err(ossl)?;
        let ec = PKey::private_key_from_pkcs8(&ec_der).map_err(ossl)?;
        // OpenSSL 3.0 reads no PKCS#8 v2 (ring's Ed25519 form, with the public key): its seed instead.
        let seed = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed_der)
            .map_err(|e| anyhow::anyhow!("aws-lc-rs Ed25519: {e}"))?
            .seed()
            .map_err(|_| fail("Ed25519 seed"))?;
        let seed = aws_lc_rs::encoding::AsBigEndian::as_be_bytes(&seed).map_err(|_| fail("Ed25519 seed"))?;
        let ed = PKey::private_key_from_raw_bytes(seed.as_ref(), openssl::pkey::Id::ED25519).map_err(ossl)?;
        let rsa_sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut signer = Signer::new(MessageDigest::sha256(), &rsa)?;
            signer.sign_oneshot_to_vec(&msg)
        };
        // A JWS carries r ‖ s (RFC 7518 §3.4); OpenSSL returns DER, so the conversion is part of the cost.
        let ec_sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut signer = Signer::new(MessageDigest::sha256(), &ec)?;
            let der = signer.sign_oneshot_to_vec(&msg)?;
            let sig = EcdsaSig::from_der(&der)?;
            let mut raw = sig.r().to_vec_padded(32)?;
            raw.extend(sig.s().to_vec_padded(32)?);
            Ok(raw)
        };
        let rsa_sig = rsa_sign().map_err(ossl)?;
        let ec_sig = ec_sign().map_err(ossl)?;
        let rsa_pub = PKey::public_key_from_der(&rsa.public_key_to_der().map_err(ossl)?).map_err(ossl)?;
        let ec_pub = PKey::public_key_from_der(&ec.public_key_to_der().map_err(ossl)?).map_err(ossl)?;
        row(
            "rs256_sign",
            "openssl",
            measure("rs256_sign openssl", budget, || {
                rsa_sign().map(drop).map_err(ossl)
            })?,
        );
        row(
            "rs256_verify",
            "openssl",
            measure("rs256_verify openssl", budget, || {
                let mut v = Verifier::new(MessageDigest::sha256(), &rsa_pub).map_err(ossl)?;
                anyhow::ensure!(
                    v.verify_oneshot(&rsa_sig, &msg).map_err(ossl)?,
                    "openssl RSA verify failed"
                );
                Ok(())
            })?,
        );
        row(
            "es256_sign",
            "openssl",
            measure("es256_sign openssl", budget, || ec_sign().map(drop).map_err(ossl))?,
        );
        row(
            "es256_verify",
            "openssl",
            measure("es256_verify openssl", budget, || {
                let (r, s) = ec_sig.split_at(32);
                let sig = EcdsaSig::from_private_components(
                    openssl::bn::BigNum::from_slice(r).map_err(ossl)?,
                    openssl::bn::BigNum::from_slice(s).map_err(ossl)?,
                )
                .map_err(ossl)?;
                let der = sig.to_der().map_err(ossl)?;
                let mut v = Verifier::new(MessageDigest::sha256(), &ec_pub).map_err(ossl)?;
                anyhow::ensure!(
                    v.verify_oneshot(&der, &msg).map_err(ossl)?,
                    "openssl ECDSA verify failed"
                );
                Ok(())
            })?,
        );
        row(
            "ed25519_sign",
            "openssl",
            measure("ed25519_sign openssl", budget, || {
                let mut signer = Signer::new_without_digest(&ed).map_err(ossl)?;
                signer.sign_oneshot_to_vec(&msg).map(drop).map_err(ossl)
            })?,
        );
    }
    Ok(out)
}
