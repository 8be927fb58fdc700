//! `yunid-bench`: the load driver of issue 9. It starts a `yunid` (the built binary, pinned to core 0
//! with `taskset`, on a fresh SQLite file or PostgreSQL database), seeds clients and persons through the
//! library, pins itself to core 1, and runs complete scenarios (client credentials, introspection,
//! userinfo, discovery, JWKS, refresh rotation, the SSO code flow, the password, SMS and passkey login
//! flows, passkeys with a software authenticator) for a duration at a concurrency. Per scenario it
//! reports throughput, p50/p95/p99 latency and the server's CPU-milliseconds per operation from
//! `/proc/<pid>/stat`, which stay meaningful on a busy machine where throughput does not.
//!
//! ```text
//! yunid-bench run   [--scenario cc,introspect,…] [--duration 10] [--concurrency 16] [--db sqlite|postgres]
//! yunid-bench smoke                      every scenario for ~1.5 s, exit 1 on any error (CI)
//! yunid-bench scale --persons 1000,1000000   login latency as the person table grows
//! yunid-bench compare --peer-base … --peer-pid …   the same scenarios against a running peer (bench/peer/run.sh)
//! yunid-bench seed  --persons N --database-url … --keys-dir …   bulk-insert benchmark persons
//! yunid-bench micro                      the crypto floor: ES256, RS256, argon2id on one core, and
//!                                        ring, aws-lc-rs and OpenSSL side by side
//! ```
//! See BENCHMARKS.md for the method and the latest numbers.

mod bare;
mod browse;
mod flows;
mod inbox;
mod micro;
mod passkeys;
mod report;
mod scenarios;
mod seed;
mod server;
mod softkey;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use scenarios::Scenario;

#[derive(Parser)]
#[command(
    name = "yunid-bench",
    about = "Load driver and micro-benchmarks for yunid (issue 9)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a yunid and run scenarios against it.
    Run(RunArgs),
    /// Every scenario briefly at low concurrency on SQLite; exits non-zero on any error. No timing check.
    Smoke {
        #[command(flatten)]
        server: ServerArgs,
        /// Seconds per scenario.
        #[arg(long, default_value_t = 1.5)]
        duration: f64,
    },
    /// Password login latency at growing numbers of persons (seeded in bulk between the steps).
    Scale {
        #[command(flatten)]
        server: ServerArgs,
        /// Person counts, ascending, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
        persons: Vec<usize>,
        /// Seconds per step.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Concurrent virtual users (1 measures latency without queueing behind the hash semaphore).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
    /// The same scenarios against yunid and a running peer (node oidc-provider, see bench/peer/run.sh)
    /// in one run, with the ratio per scenario.
    Compare {
        #[command(flatten)]
        server: ServerArgs,
        /// The peer's issuer URL (endpoints from its discovery document; its JWKS at `/jwks`). Repeat
        /// it (with `--peer-pid` and `--peer-label` in the same order) for several peers in one run,
        /// e.g. oidc-provider with its in-memory adapter and with Redis; all share the clients below.
        #[arg(long, required = true)]
        peer_base: Vec<String>,
        /// The peer's process id (for its CPU time), one per `--peer-base`.
        #[arg(long, required = true)]
        peer_pid: Vec<u32>,
        /// What the results call each peer (default: its position).
        #[arg(long)]
        peer_label: Vec<String>,
        /// The peer's client-credentials client (also the introspection caller).
        #[arg(long, default_value = "bench-cc")]
        peer_client_id: String,
        #[arg(long)]
        peer_client_secret: String,
        /// The peer's authorization-code client (redirect URI http://127.0.0.1:9/cb, PKCE S256).
        #[arg(long, default_value = "bench-app")]
        peer_app_id: String,
        #[arg(long)]
        peer_app_secret: String,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "cc,cc_newconn,discovery,jwks,introspect,userinfo,refresh,sso_code,password_login"
        )]
        scenario: Vec<String>,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 0.7)]
        latency_at: f64,
    },
    /// Bulk-insert benchmark persons into a database (keys folder as the server's).
    Seed {
        #[arg(long)]
        persons: usize,
        /// Index of the first person (to add to an earlier seed).
        #[arg(long, default_value_t = 0)]
        start: usize,
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        keys_dir: PathBuf,
    },
    /// The crypto floor: ES256 and RS256 signing with yunid's key set, argon2id with production
    /// parameters; then RS256, ES256 and Ed25519 with ring, aws-lc-rs and OpenSSL side by side.
    Micro {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Rounds of the library comparison (median and spread across them).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Only the library comparison (not yunid's key set and argon2id).
        #[arg(long)]
        libs_only: bool,
        /// Append one JSON object per result to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// (internal) A bare axum endpoint that only signs an ES256 JWT with ring: the ceiling for `cc`.
    #[command(hide = true)]
    BareServe {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// `sqlite` (a file in a temporary folder) or `postgres` (a fresh database, dropped afterwards).
    #[arg(long, default_value = "sqlite")]
    pub db: String,
    /// PostgreSQL admin URL used to create the benchmark database.
    #[arg(
        long,
        env = "YUNID_TEST_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub pg: String,
    /// The yunid binary (default: `yunid` next to this one).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Do not pin with taskset (server on core 0, driver on core 1).
    #[arg(long)]
    pub no_pin: bool,
    /// ID token algorithm of the code-flow client (RS256 is yunid's default).
    #[arg(long, default_value = "RS256")]
    pub id_token_alg: String,
    /// Pooled database connections of the server (0: yunid's own choice, see `database_max_connections`).
    #[arg(long, default_value_t = 0)]
    pub db_connections: u32,
    /// A command the server runs under, e.g. `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out`
    /// (split on whitespace; the server is stopped with SIGTERM so the profiler writes its output).
    #[arg(long)]
    pub server_wrap: Option<String>,
    /// Keep the temporary folder (database, keys, server log) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// The server's RUST_LOG, e.g. `warn,sqlx::query=info` to log every statement into server.log (with
    /// `--keep`) and count the statements of a flow.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Scenarios, comma-separated (default: all). See `scenarios::Scenario`.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Measured seconds per scenario (at saturation).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before each scenario.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent virtual users (closed loop).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// After the saturation phase, a paced phase at this fraction of the measured throughput for the
    /// latency percentiles (0 turns it off).
    #[arg(long, default_value_t = 0.7)]
    latency_at: f64,
    /// Persons to seed for the login scenarios.
    #[arg(long, default_value_t = 1000)]
    persons: usize,
    /// Also run the crypto micro-benchmarks (seconds each; 0 = off).
    #[arg(long, default_value_t = 2.0)]
    micro: f64,
    /// Append one JSON object per result to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pin_driver = match &cli.command {
        Command::Run(a) => !a.server.no_pin,
        Command::Smoke { server, .. } | Command::Scale { server, .. } | Command::Compare { server, .. } => {
            !server.no_pin
        }
        Command::Micro { .. } => true,
        Command::Seed { .. } | Command::BareServe { .. } => false,
    };
    if pin_driver {
        server::pin_self(1);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Run(a) => run(a).await,
            Command::Smoke { server, duration } => smoke(server, duration).await,
            Command::Scale {
                server,
                persons,
                duration,
                concurrency,
            } => scale(server, persons, duration, concurrency).await,
            Command::Compare {
                server,
                peer_base,
                peer_pid,
                peer_label,
                peer_client_id,
                peer_client_secret,
                peer_app_id,
                peer_app_secret,
                scenario,
                duration,
                warmup,
                concurrency,
                latency_at,
            } => {
                let plan = scenarios::Plan {
                    duration: Duration::from_secs_f64(duration),
                    warmup: Duration::from_secs_f64(warmup),
                    concurrency,
                    latency_at,
                };
                anyhow::ensure!(
                    peer_base.len() == peer_pid.len(),
                    "one --peer-pid per --peer-base"
                );
                let peers = peer_base
                    .iter()
                    .zip(&peer_pid)
                    .enumerate()
                    .map(|(i, (base, pid))| PeerArgs {
                        base: base.trim_end_matches('/').to_owned(),
                        pid: *pid,
                        label: peer_label
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("peer {}", i + 1)),
                        cc: server::Creds {
                            id: peer_client_id.clone(),
                            secret: peer_client_secret.clone(),
                        },
                        app: server::Creds {
                            id: peer_app_id.clone(),
                            secret: peer_app_secret.clone(),
                        },
                    })
                    .collect();
                compare(server, peers, &scenario, plan).await
            }
            Command::Seed {
                persons,
                start,
                database_url,
                keys_dir,
            } => seed::seed_command(&database_url, &keys_dir, start, persons).await,
            Command::Micro {
                seconds,
                repeat,
                libs_only,
                json,
            } => micro_command(Duration::from_secs_f64(seconds), repeat, libs_only, json).await,
            Command::BareServe { listen } => bare::serve(listen).await,
        }
    })
}

fn parse_scenarios(names: &[String]) -> anyhow::Result<Vec<Scenario>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(Scenario::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            Scenario::parse(n).ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                anyhow::anyhow!("unknown scenario {n}; known: {}", known.join(", "))
            })
        })
        .collect()
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let scenarios = parse_scenarios(&a.scenario)?;
    report::print_machine();
    let bench = server::Bench::start(&a.server, a.persons).await?;
    println!(
        "server pid {} ({}), idle RSS {:.1} MB, persons {}",
        bench.server.pid,
        bench.server.describe(),
        bench.server.rss_kb() as f64 / 1024.0,
        a.persons
    );
    let plan = scenarios::Plan {
        duration: Duration::from_secs_f64(a.duration),
        warmup: Duration::from_secs_f64(a.warmup),
        concurrency: a.concurrency,
        latency_at: a.latency_at,
    };
    report::print_header();
    let mut results = Vec::new();
    for sc in scenarios {
        let r = scenarios::run_scenario(&bench, sc, &plan).await;
        report::print_result(&r);
        if let Some(path) = &a.json {
            report::append_json(path, &r)?;
        }
        results.push(r);
    }
    println!(
        "server RSS after the run {:.1} MB",
        bench.server.rss_kb() as f64 / 1024.0
    );
    if a.micro > 0.0 {
        let m = micro::run(Duration::from_secs_f64(a.micro)).await?;
        report::print_micro(&m);
        if let Some(path) = &a.json {
            report::append_micro_json(path, &m)?;
        }
    }
    bench.stop().await;
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("{errors} operations failed (see the samples above)");
    }
    Ok(())
}

async fn micro_command(
    budget: Duration,
    repeat: usize,
    libs_only: bool,
    json: Option<PathBuf>,
) -> anyhow::Result<()> {
    report::print_machine();
    if !libs_only {
        let m = micro::run(budget).await?;
        report::print_micro(&m);
        if let Some(path) = &json {
            report::append_micro_json(path, &m)?;
        }
    }
    let mut runs = Vec::new();
    for _ in 0..repeat.max(1) {
        runs.push(micro::libraries(budget).await?);
    }
    report::print_libraries(&runs);
    if let Some(path) = &json {
        report::append_libraries_json(path, &runs)?;
    }
    Ok(())
}

async fn smoke(server: ServerArgs, duration: f64) -> anyhow::Result<()> {
    let bench = server::Bench::start(&server, 64).await?;
    let plan = scenarios::Plan {
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::ZERO,
        concurrency: 4,
        latency_at: 0.0,
    };
    let mut failed = Vec::new();
    for sc in Scenario::ALL {
        let r = scenarios::run_scenario(&bench, sc, &plan).await;
        let ok = r.errors == 0 && r.ops > 0 && r.setup_error.is_none();
        println!(
            "smoke {:<14} {} ops {:>6} errors {:>3}{}",
            sc.name(),
            if ok { "ok  " } else { "FAIL" },
            r.ops,
            r.errors,
            r.first_error()
                .map(|e| format!("  first error: {e}"))
                .unwrap_or_default()
        );
        if !ok {
            failed.push(sc.name());
        }
    }
    let m = micro::run(Duration::from_millis(200)).await;
    let libs = micro::libraries(Duration::from_millis(20)).await;
    match (&m, &libs) {
        (Ok(m), Ok(libs)) if m.iter().all(|x| x.ops > 0) && libs.iter().all(|x| x.m.ops > 0) => {
            println!("smoke {:<14} ok   {} measurements", "micro", m.len() + libs.len())
        }
        _ => {
            println!("smoke {:<14} FAIL", "micro");
            failed.push("micro");
        }
    }
    bench.stop().await;
    if failed.is_empty() {
        println!("smoke: every scenario completed without errors");
        Ok(())
    } else {
        anyhow::bail!("smoke: failed scenarios: {}", failed.join(", "))
    }
}

async fn scale(
    server: ServerArgs,
    sizes: Vec<usize>,
    duration: f64,
    concurrency: usize,
) -> anyhow::Result<()> {
    report::print_machine();
    let first = sizes.first().copied().unwrap_or(1000);
    let mut bench = server::Bench::start(&server, first).await?;
    let plan = scenarios::Plan {
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs(1),
        concurrency,
        latency_at: 0.0,
    };
    let mut base_p50 = None;
    report::print_header();
    for n in sizes {
        if n > bench.persons {
            let t = std::time::Instant::now();
            let app = bench
                .setup_app
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("cannot seed an attached server"))?;
            seed::seed_range(app, bench.persons, n).await?;
            println!(
                "seeded persons {}..{} in {:.1} s",
                bench.persons,
                n,
                t.elapsed().as_secs_f64()
            );
            bench.persons = n;
        }
        let mut r = scenarios::run_scenario(&bench, Scenario::Login, &plan).await;
        r.label = format!("login@{n}");
        report::print_result(&r);
        let p50 = r.sat.percentile(0.5);
        match base_p50 {
            None => base_p50 = Some(p50),
            Some(b) if b > 0 => println!(
                "  p50 at {n} persons is {:.2}x the p50 at {first}",
                p50 as f64 / b as f64
            ),
            _ => {}
        }
    }
    bench.stop().await;
    Ok(())
}

/// A running peer of `compare` and its two clients.
struct PeerArgs {
    base: String,
    pid: u32,
    /// e.g. `memory` or `redis` (oidc-provider's adapter).
    label: String,
    cc: server::Creds,
    app: server::Creds,
}

async fn compare(
    server: ServerArgs,
    peers: Vec<PeerArgs>,
    names: &[String],
    plan: scenarios::Plan,
) -> anyhow::Result<()> {
    let scenarios = parse_scenarios(names)?;
    report::print_machine();
    let yunid = server::Bench::start(&server, 16).await?;
    let mut attached = Vec::new();
    for p in peers {
        attached.push(
            server::Bench::attach(
                p.pid,
                p.base,
                p.cc,
                p.app,
                yunid.persons,
                format!("oidc-provider ({})", p.label),
            )
            .await?,
        );
    }
    report::print_header();
    let mut rows = Vec::new();
    for sc in scenarios {
        let a = scenarios::run_scenario(&yunid, sc, &plan).await;
        report::print_result(&a);
        let mut others = Vec::new();
        for peer in &attached {
            let b = scenarios::run_scenario(peer, sc, &plan).await;
            report::print_result(&b);
            others.push(b);
        }
        rows.push((sc.name(), a, others));
    }
    report::print_comparison(&rows);
    yunid.stop().await;
    for peer in attached {
        peer.stop().await;
    }
    let errors: u64 = rows
        .iter()
        .map(|(_, a, b)| a.errors + b.iter().map(|r| r.errors).sum::<u64>())
        .sum();
    if errors > 0 {
        eprintln!("{errors} operations failed (see the first errors above)");
    }
    Ok(())
}
