//! Scenarios and the closed-loop runner: `concurrency` virtual users repeat one operation (a request,
//! or a whole flow) until the duration is up; then, optionally, an open-loop phase paced at a fraction
//! of the measured throughput gives the latency percentiles (measured from each operation's scheduled
//! start, so a stalled server is not hidden by users that wait for it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::flows::{self, Jar, Res};
use crate::server::{self, Bench, Proc};
use crate::softkey::SoftKey;
use crate::{passkeys, seed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// client_credentials on kept-alive connections.
    Cc,
    /// client_credentials, one new TCP connection per request.
    CcNewConn,
    /// client_credentials against a bare axum endpoint that only signs an ES256 JWT (the ceiling).
    BareCc,
    /// Introspection of a client-credentials access token.
    Introspect,
    /// Userinfo with a person's access token.
    Userinfo,
    Discovery,
    Jwks,
    /// refresh_token grant with rotation (each user keeps its own family).
    Refresh,
    /// A browser with a session: authorize → code → token.
    SsoCode,
    /// A fresh browser: authorize → login page → POST password → consent (first time) → code → token.
    PasswordLogin,
    /// A fresh browser: authorize → SMS page → send → code from the webhook → verify → consent → token.
    SmsLogin,
    /// SMS logins by the odd users while the even users flood password logins (closed loop, never
    /// paced): ops/s and latency count the SMS logins only; does the argon2 queue starve them?
    SmsFlood,
    /// A fresh browser: authorize → login page → passkey start → software authenticator → finish →
    /// consent (first time) → code → token. Each user enrols one passkey before the run.
    PasskeyLogin,
    /// SMS and passkey logins alternating per user, each a whole login flow at the app.
    QuickLogin,
    /// `quick_login` by the odd users while the even users flood password logins (as `sms_flood`).
    QuickFlood,
    /// The login page alone: GET /login, POST a password of a random person (scale runs).
    Login,
}

impl Scenario {
    pub const ALL: [Scenario; 16] = [
        Scenario::Cc,
        Scenario::CcNewConn,
        Scenario::BareCc,
        Scenario::Introspect,
        Scenario::Userinfo,
        Scenario::Discovery,
        Scenario::Jwks,
        Scenario::Refresh,
        Scenario::SsoCode,
        Scenario::PasswordLogin,
        Scenario::SmsLogin,
        Scenario::SmsFlood,
        Scenario::PasskeyLogin,
        Scenario::QuickLogin,
        Scenario::QuickFlood,
        Scenario::Login,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Cc => "cc",
            Scenario::CcNewConn => "cc_newconn",
            Scenario::BareCc => "bare_cc",
            Scenario::Introspect => "introspect",
            Scenario::Userinfo => "userinfo",
            Scenario::Discovery => "discovery",
            Scenario::Jwks => "jwks",
            Scenario::Refresh => "refresh",
            Scenario::SsoCode => "sso_code",
            Scenario::PasswordLogin => "password_login",
            Scenario::SmsLogin => "sms_login",
            Scenario::SmsFlood => "sms_flood",
            Scenario::PasskeyLogin => "passkey_login",
            Scenario::QuickLogin => "quick_login",
            Scenario::QuickFlood => "quick_flood",
            Scenario::Login => "login",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Whether each user needs a signed-in browser and its own tokens before the run.
    fn needs_session(self) -> bool {
        matches!(self, Scenario::Userinfo | Scenario::Refresh | Scenario::SsoCode)
    }

    /// Whether the scenario signs in with passkeys (each user then enrols one before the run).
    fn uses_passkeys(self) -> bool {
        matches!(
            self,
            Scenario::PasskeyLogin | Scenario::QuickLogin | Scenario::QuickFlood
        )
    }

    /// Whether the peer (node oidc-provider, `compare`) can run it: it has no SMS login, no passkeys,
    /// no login page outside an authorization request, and `bare_cc` measures yunid's own ceiling.
    fn runs_on_peer(self) -> bool {
        !matches!(
            self,
            Scenario::BareCc
                | Scenario::SmsLogin
                | Scenario::SmsFlood
                | Scenario::Login
                | Scenario::PasskeyLogin
                | Scenario::QuickLogin
                | Scenario::QuickFlood
        )
    }
}

pub struct Plan {
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: usize,
    pub latency_at: f64,
}

/// One virtual user.
struct User {
    id: usize,
    iter: u64,
    http: reqwest::Client,
    jar: Jar,
    access: String,
    refresh: Option<String>,
    rng: u64,
    consents: u64,
    /// The user's passkey (its person's, enrolled once per bench) in the passkey scenarios.
    key: Option<Arc<SoftKey>>,
}

impl User {
    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What the scenario runs against: the bench (and the bare server for `bare_cc`).
struct Target<'a> {
    bench: &'a Bench,
    base: String,
    cc_token: String,
    concurrency: usize,
    addr_counter: AtomicU64,
}

impl Target<'_> {
    /// A client address for `X-Forwarded-For` from the benchmarking range 198.18.0.0/15.
    fn next_addr(&self) -> String {
        let n = self.addr_counter.fetch_add(1, Ordering::Relaxed) % 131_072;
        format!("198.{}.{}.{}", 18 + n / 65_536, (n / 256) % 256, n % 256)
    }
}

/// Latencies (µs) and counts of one phase.
#[derive(Default, Clone)]
pub struct Phase {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub lat_us: Vec<u32>,
    pub cpu_ms: f64,
    /// CPU of the driver itself and of every PostgreSQL process during the phase.
    pub driver_cpu_ms: f64,
    pub pg_cpu_ms: f64,
    /// CPU of every Redis server during the phase (the Redis-backed peer's store).
    pub redis_cpu_ms: f64,
    /// Password hashes the server computed during the phase and their CPU time (from its /metrics).
    pub hashes: u64,
    pub hash_cpu_ms: f64,
    pub rss_max_kb: u64,
    pub load_start: f64,
    pub load_end: f64,
    pub error_samples: Vec<String>,
    /// Operations done alongside and not counted in `ops` (the password flood of `sms_flood`).
    pub side_ops: u64,
}

impl Phase {
    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ops as f64 / s } else { 0.0 }
    }

    /// The q-quantile latency in µs (lat_us is sorted after the run).
    pub fn percentile(&self, q: f64) -> u32 {
        if self.lat_us.is_empty() {
            return 0;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * q).round() as usize;
        self.lat_us[i.min(self.lat_us.len() - 1)]
    }

    pub fn cpu_ms_per_op(&self) -> f64 {
        if self.ops == 0 {
            0.0
        } else {
            self.cpu_ms / self.ops as f64
        }
    }
}

pub struct ScenarioResult {
    pub label: String,
    pub concurrency: usize,
    pub sat: Phase,
    pub paced: Option<(f64, Phase)>,
    pub ops: u64,
    pub errors: u64,
    pub setup_error: Option<String>,
    pub consents: u64,
    pub db: String,
}

impl ScenarioResult {
    pub fn first_error(&self) -> Option<&str> {
        self.setup_error
            .as_deref()
            .or_else(|| self.sat.error_samples.first().map(String::as_str))
            .or_else(|| {
                self.paced
                    .as_ref()
                    .and_then(|(_, p)| p.error_samples.first().map(String::as_str))
            })
    }
}

fn new_http(keep_alive: bool) -> reqwest::Client {
    let mut b = server::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap_or_default()
}

pub async fn run_scenario(bench: &Bench, sc: Scenario, plan: &Plan) -> ScenarioResult {
    let mut result = ScenarioResult {
        label: sc.name().to_owned(),
        concurrency: plan.concurrency,
        sat: Phase::default(),
        paced: None,
        ops: 0,
        errors: 0,
        setup_error: None,
        consents: 0,
        db: bench.label.clone(),
    };
    match run_inner(bench, sc, plan, &mut result).await {
        Ok(()) => {}
        Err(e) => result.setup_error = Some(e),
    }
    result.ops = result.sat.ops + result.paced.as_ref().map_or(0, |(_, p)| p.ops);
    result.errors = result.sat.errors + result.paced.as_ref().map_or(0, |(_, p)| p.errors);
    if result.setup_error.is_some() {
        result.errors += 1;
    }
    result
}

async fn run_inner(bench: &Bench, sc: Scenario, plan: &Plan, result: &mut ScenarioResult) -> Res<()> {
    if bench.is_peer && !sc.runs_on_peer() {
        return Err(format!("{} does not run on the peer", sc.name()));
    }
    // bare_cc runs against its own process, started here on the same core.
    let bare = if sc == Scenario::BareCc {
        Some(start_bare(bench).await.map_err(|e| format!("bare server: {e}"))?)
    } else {
        None
    };
    let measured: &Proc = bare.as_ref().unwrap_or(&bench.server);
    let shared = new_http(true);
    let cc_token = match sc {
        Scenario::Introspect if bench.is_peer => flows::peer::introspectable_token(bench, &shared).await?,
        Scenario::Introspect => flows::client_credentials(bench, &shared, &bench.base).await?,
        _ => String::new(),
    };
    let target = Arc::new(Target {
        bench,
        base: measured.base.clone(),
        cc_token,
        concurrency: plan.concurrency,
        addr_counter: AtomicU64::new(0),
    });
    let mut users = Vec::with_capacity(plan.concurrency);
    for id in 0..plan.concurrency {
        let http = if sc == Scenario::CcNewConn {
            new_http(false)
        } else {
            shared.clone()
        };
        let mut u = User {
            id,
            iter: 0,
            http,
            jar: Jar::default(),
            access: String::new(),
            refresh: None,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0x1000_0001),
            consents: 0,
            key: None,
        };
        if sc.needs_session() {
            prepare_session(&target, &mut u).await?;
        }
        if sc.uses_passkeys() && !is_flooder(sc, &u) {
            u.key = Some(passkey_of(&target, &mut u).await?);
        }
        users.push(u);
    }
    if !plan.warmup.is_zero() {
        let (u, _) = phase(&target, sc, measured, users, plan.warmup, None).await;
        users = u;
    }
    let (u, sat) = phase(&target, sc, measured, users, plan.duration, None).await;
    users = u;
    let rate = sat.throughput() * plan.latency_at;
    result.sat = sat;
    if plan.latency_at > 0.0 && rate > 0.0 {
        let (u, paced) = phase(&target, sc, measured, users, plan.duration, Some(rate)).await;
        users = u;
        result.paced = Some((rate, paced));
    }
    result.consents = users.iter().map(|u| u.consents).sum();
    if sc == Scenario::BareCc {
        result.label = "bare_cc (ceiling)".into();
    }
    drop(bare);
    Ok(())
}

async fn start_bare(bench: &Bench) -> anyhow::Result<Proc> {
    let me = std::env::current_exe()?;
    let port = server::free_port()?;
    let listen = format!("127.0.0.1:{port}");
    Proc::spawn(
        &me,
        &["bare-serve", "--listen", &listen],
        &[],
        bench.pin,
        &[],
        format!("http://{listen}"),
        "/healthz",
        bench.dir.path.join("bare.log"),
    )
    .await
}

/// Signs a user in (password, its own person) and takes one SSO round for its tokens.
async fn prepare_session(target: &Target<'_>, u: &mut User) -> Res<()> {
    let bench = target.bench;
    let person = seed::person(u.id % bench.persons.max(1));
    let addr = target.next_addr();
    let (access, refresh) = if bench.is_peer {
        let (_, jar) = flows::peer::password_flow(bench, &u.http, &person.id_number, &mut u.consents)
            .await
            .map_err(|e| format!("peer session: {e}"))?;
        u.jar = jar;
        flows::sso_flow(bench, &u.http, &mut u.jar).await?
    } else {
        let ((_, _), jar) =
            flows::password_flow(bench, &u.http, &person.id_number, &addr, &mut u.consents).await?;
        u.jar = jar;
        flows::sso_flow(bench, &u.http, &mut u.jar).await?
    };
    u.access = access;
    u.refresh = refresh;
    Ok(())
}

/// The passkey of the user's person (user u is person u): registered now, through the password login
/// and the account page, unless an earlier scenario of this bench did it.
async fn passkey_of(target: &Target<'_>, u: &mut User) -> Res<Arc<SoftKey>> {
    let bench = target.bench;
    let idx = u.id % bench.persons.max(1);
    if let Some(k) = bench.passkeys.lock().ok().and_then(|m| m.get(&idx).cloned()) {
        return Ok(k);
    }
    let person = seed::person(idx);
    let addr = target.next_addr();
    let phone = format!("+86{}", person.phone);
    let key = passkeys::enrol(bench, &u.http, &person.id_number, &phone, &addr, &mut u.consents)
        .await
        .map(Arc::new)
        .map_err(|e| format!("passkey enrolment of person {idx}: {e}"))?;
    if let Ok(mut m) = bench.passkeys.lock() {
        m.insert(idx, key.clone());
    }
    Ok(key)
}

/// In `sms_flood` and `quick_flood`, the even users send the password logins.
fn is_flooder(sc: Scenario, u: &User) -> bool {
    matches!(sc, Scenario::SmsFlood | Scenario::QuickFlood) && u.id.is_multiple_of(2)
}

/// Whether this operation of the user is a passkey login (`quick_*` alternate with SMS, starting with
/// passkeys on half of the users so both kinds run at every moment).
fn passkey_turn(sc: Scenario, u: &User) -> bool {
    match sc {
        Scenario::PasskeyLogin => true,
        Scenario::QuickLogin | Scenario::QuickFlood => (u.iter + (u.id as u64) / 2).is_multiple_of(2),
        _ => false,
    }
}

/// One operation of a scenario.
async fn op(t: &Target<'_>, sc: Scenario, u: &mut User) -> Res<()> {
    let bench = t.bench;
    u.iter += 1;
    match sc {
        Scenario::Cc | Scenario::CcNewConn | Scenario::BareCc => {
            flows::client_credentials(bench, &u.http, &t.base).await.map(drop)
        }
        Scenario::Introspect => flows::introspect(bench, &u.http, &t.cc_token).await,
        Scenario::Userinfo => flows::userinfo(bench, &u.http, &u.access).await,
        Scenario::Discovery => {
            flows::get_ok(
                &u.http,
                &format!("{}/.well-known/openid-configuration", t.base),
                "token_endpoint",
            )
            .await
        }
        Scenario::Jwks => flows::get_ok(&u.http, &format!("{}/jwks", t.base), "\"keys\"").await,
        Scenario::Refresh => {
            let rt = u
                .refresh
                .clone()
                .ok_or("no refresh token (the previous one failed)")?;
            let r = flows::token_request(
                bench,
                &u.http,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await;
            match r {
                Ok((_, Some(next))) => {
                    u.refresh = Some(next);
                    Ok(())
                }
                Ok((_, None)) => {
                    u.refresh = None;
                    Err("refresh without a new refresh token".into())
                }
                Err(e) => {
                    u.refresh = None;
                    Err(e)
                }
            }
        }
        Scenario::SsoCode => flows::sso_flow(bench, &u.http, &mut u.jar).await.map(drop),
        Scenario::PasswordLogin
        | Scenario::SmsLogin
        | Scenario::SmsFlood
        | Scenario::PasskeyLogin
        | Scenario::QuickLogin
        | Scenario::QuickFlood => {
            // User u cycles through persons u, u+C, u+2C, … below N - N mod C: no two users ever share
            // a person (or a phone), as long as there are at least C persons.
            let n = bench.persons.max(1) as u64;
            let c = t.concurrency.max(1) as u64;
            let per_user = (n / c).max(1);
            let idx = (u.id as u64 + c * ((u.iter - 1) % per_user)) % n;
            let person = seed::person(idx as usize);
            let addr = t.next_addr();
            if bench.is_peer {
                flows::peer::password_flow(bench, &u.http, &person.id_number, &mut u.consents)
                    .await
                    .map(drop)
            } else if sc == Scenario::PasswordLogin || is_flooder(sc, u) {
                flows::password_flow(bench, &u.http, &person.id_number, &addr, &mut u.consents)
                    .await
                    .map(drop)
            } else if passkey_turn(sc, u) {
                let key = u.key.clone().ok_or("no passkey enrolled")?;
                passkeys::login_flow(bench, &u.http, &key, &addr, &mut u.consents)
                    .await
                    .map(drop)
            } else {
                flows::sms_flow(bench, &u.http, &person.phone, &addr, &mut u.consents)
                    .await
                    .map(drop)
            }
        }
        Scenario::Login => {
            let idx = u.next_random() % bench.persons.max(1) as u64;
            let person = seed::person(idx as usize);
            let addr = t.next_addr();
            flows::login_only(bench, &u.http, &person.id_number, &addr).await
        }
    }
}

/// Runs all users for `duration` (closed loop, or paced at `rate` ops/s in total).
/// The server's password hashes so far and their CPU seconds (its `/metrics`); none for a peer.
async fn hash_spent(base: &str) -> Option<(u64, f64)> {
    let http = server::http_client().build().ok()?;
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some((
        value("yunid_password_hashes_total")? as u64,
        value("yunid_password_hash_cpu_seconds_total")?,
    ))
}

async fn phase(
    target: &Arc<Target<'_>>,
    sc: Scenario,
    server: &Proc,
    users: Vec<User>,
    duration: Duration,
    rate: Option<f64>,
) -> (Vec<User>, Phase) {
    let n = users.len().max(1);
    // The paced rate is shared by the users that are paced (the flooders of `sms_flood` are not).
    let paced_users = users.iter().filter(|u| !is_flooder(sc, u)).count().max(1);
    let load_start = server::loadavg();
    let hashed0 = hash_spent(&server.base).await;
    let cpu0 = server.cpu_ticks();
    let (driver0, pg0, redis0) = (
        server::cpu_ticks(std::process::id()),
        server::postgres_ticks(),
        server::redis_ticks(),
    );
    let start = Instant::now();
    let deadline = start + duration;
    let rss_max = Arc::new(AtomicU64::new(server.rss_kb()));
    let stop_rss = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let rss_max = rss_max.clone();
        let stop = stop_rss.clone();
        let pid = server.pid;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                rss_max.fetch_max(server::rss_kb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Scoped: the users borrow the target; each runs on this task set and comes back at the end.
    let futures = users.into_iter().enumerate().map(|(i, mut u)| {
        let target = target.clone();
        async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut samples = Vec::new();
            let flooder = is_flooder(sc, &u);
            let mut side_ops = 0u64;
            let interval = rate
                .filter(|_| !flooder)
                .map(|r| Duration::from_secs_f64(paced_users as f64 / r));
            let mut k = 0u32;
            loop {
                let scheduled = match interval {
                    Some(iv) => {
                        let at = start + iv.mul_f64(i as f64 / n as f64) + iv * k;
                        k += 1;
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                };
                match op(&target, sc, &mut u).await {
                    Ok(()) if flooder => side_ops += 1,
                    Ok(()) => lat.push(scheduled.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Err(e) => {
                        errors += 1;
                        if samples.len() < 3 {
                            samples.push(e);
                        }
                    }
                }
            }
            (u, lat, errors, samples, side_ops)
        }
    });
    let outcomes = futures_join_all(futures).await;
    let elapsed = start.elapsed();
    let cpu1 = server.cpu_ticks();
    let (driver1, pg1, redis1) = (
        server::cpu_ticks(std::process::id()),
        server::postgres_ticks(),
        server::redis_ticks(),
    );
    let (hashes, hash_cpu_ms) = match (hashed0, hash_spent(&server.base).await) {
        (Some((n0, s0)), Some((n1, s1))) => (n1.saturating_sub(n0), (s1 - s0).max(0.0) * 1000.0),
        _ => (0, 0.0),
    };
    stop_rss.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let mut phase = Phase {
        elapsed,
        cpu_ms: cpu1.saturating_sub(cpu0) as f64 * 1000.0 / server::clk_tck(),
        driver_cpu_ms: driver1.saturating_sub(driver0) as f64 * 1000.0 / server::clk_tck(),
        pg_cpu_ms: pg1.saturating_sub(pg0) as f64 * 1000.0 / server::clk_tck(),
        redis_cpu_ms: redis1.saturating_sub(redis0) as f64 * 1000.0 / server::clk_tck(),
        hashes,
        hash_cpu_ms,
        rss_max_kb: rss_max.load(Ordering::Relaxed).max(server.rss_kb()),
        load_start,
        load_end: server::loadavg(),
        ..Phase::default()
    };
    let mut users = Vec::with_capacity(n);
    for (u, lat, errors, samples, side_ops) in outcomes {
        users.push(u);
        phase.side_ops += side_ops;
        phase.ops += lat.len() as u64;
        phase.lat_us.extend(lat);
        phase.errors += errors;
        for s in samples {
            if phase.error_samples.len() < 5 && !phase.error_samples.contains(&s) {
                phase.error_samples.push(s);
            }
        }
    }
    phase.lat_us.sort_unstable();
    (users, phase)
}

/// Polls every future on this task (the driver's users are cheap; one task keeps the order simple).
async fn futures_join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
