//! The crypto floor, on the driver's core while the server is idle: what one core can sign and hash
//! when nothing else is done. ES256 and RS256 go through yunid's own key set (header, JSON, base64url
//! and ring, exactly as a token is signed); argon2id uses the production parameters (m=19456 KiB, t=2,
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

fn run_blocking(budget: Duration) -> anyhow::Result<Vec<Micro>> {
    let now = chrono::Utc::now().timestamp();
    let keys = KeySet::generate(now)?;
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "0192f0c6a5b87c3e9d1f2a3b4c5d6e7f",
        "aud": "0192f0c6a5b87c3e9d1f2a3b4c5d6e7f",
        "client_id": "0192f0c6a5b87c3e9d1f2a3b4c5d6e7f",
        "iat": now,
        "exp": now + 600,
        "jti": "3f1c2b7e9a8d4c6b8e0f1a2b3c4d5e6f",
        "scope": "api",
    });
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
    let hasher = yunid::services::password::Hasher::new(19 * 1024, 2)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let argon_budget = budget.max(Duration::from_millis(300));
    out.push(measure("argon2id hash (yunid Hasher)", argon_budget, || {
        rt.block_on(hasher.hash("bench passphrase 2026".to_owned()))
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
