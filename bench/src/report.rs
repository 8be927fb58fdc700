//! Output: the machine, one Markdown table row per scenario (ready for BENCHMARKS.md), JSON lines.

use std::io::Write;
use std::path::Path;

use crate::micro::Micro;
use crate::scenarios::{Phase, ScenarioResult};

pub fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    println!(
        "machine: {model}; cpus online {}; driver sees {cores}; load average {:.2}; {}",
        online.trim(),
        crate::server::loadavg(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
}

pub fn print_header() {
    println!(
        "| scenario | db | conc | ops/s (sat.) | server CPU-ms/op | ops per server CPU-s | p50 ms | p95 ms | p99 ms | paced at ops/s | paced p50 / p95 / p99 ms | max RSS MB | load avg | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

fn ms(us: u32) -> String {
    let v = f64::from(us) / 1000.0;
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn pcts(p: &Phase) -> (String, String, String) {
    (
        ms(p.percentile(0.5)),
        ms(p.percentile(0.95)),
        ms(p.percentile(0.99)),
    )
}

pub fn print_result(r: &ScenarioResult) {
    let s = &r.sat;
    let (p50, p95, p99) = pcts(s);
    let (paced_rate, paced) = match &r.paced {
        Some((rate, p)) => {
            let (a, b, c) = pcts(p);
            (
                format!("{:.0}", p.throughput().min(*rate)),
                format!("{a} / {b} / {c}"),
            )
        }
        None => ("–".into(), "–".into()),
    };
    let rss = r
        .paced
        .as_ref()
        .map_or(s.rss_max_kb, |(_, p)| p.rss_max_kb.max(s.rss_max_kb));
    println!(
        "| {} | {} | {} | {:.0} | {:.3} | {:.0} | {p50} | {p95} | {p99} | {paced_rate} | {paced} | {:.1} | {:.1}–{:.1} | {} |",
        r.label,
        r.db,
        r.concurrency,
        s.throughput(),
        s.cpu_ms_per_op(),
        1000.0 / s.cpu_ms_per_op().max(1e-9),
        rss as f64 / 1024.0,
        s.load_start,
        s.load_end,
        r.errors,
    );
    if let Some(e) = &r.setup_error {
        println!("  setup failed: {e}");
    }
    for e in s
        .error_samples
        .iter()
        .chain(r.paced.iter().flat_map(|(_, p)| p.error_samples.iter()))
    {
        println!("  error: {e}");
    }
    if s.side_ops > 0 {
        let measured = if r.label.starts_with("quick") {
            "SMS and passkey logins"
        } else {
            "SMS logins"
        };
        println!(
            "  (alongside: {} password logins, {:.1}/s; ops/s and latency above are the {measured} only; CPU-ms/op is all server CPU per measured login)",
            s.side_ops,
            s.side_ops as f64 / s.elapsed.as_secs_f64().max(1e-9)
        );
    }
    if r.consents > 0 {
        println!("  ({} consent pages answered)", r.consents);
    }
    if s.hashes > 0 && s.ops > 0 {
        let per_hash = s.hash_cpu_ms / s.hashes as f64;
        println!(
            "  (argon2id inside the server: {} hashes, {:.3} CPU-ms each; everything else {:.3} CPU-ms per op)",
            s.hashes,
            per_hash,
            (s.cpu_ms - s.hash_cpu_ms) / s.ops as f64,
        );
    }
    if s.ops > 0 && r.db == "postgres" {
        let per_op = |ms: f64| ms / s.ops as f64;
        let all = per_op(s.cpu_ms + s.pg_cpu_ms + s.driver_cpu_ms);
        let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(1, |c| {
            c.lines().filter(|l| l.starts_with("processor")).count().max(1)
        });
        println!(
            "  (CPU-ms per op: server {:.3}, PostgreSQL {:.3}, driver {:.3}; the three together {:.3}, i.e. at most {:.0}/s on this machine's {} cores)",
            s.cpu_ms_per_op(),
            per_op(s.pg_cpu_ms),
            per_op(s.driver_cpu_ms),
            all,
            cores as f64 * 1000.0 / all.max(1e-9),
            cores,
        );
    }
}

pub fn print_micro(m: &[Micro]) {
    println!("| crypto floor (one core) | ops/CPU-s | CPU-µs/op | ops/s wall | load avg |");
    println!("|---|---|---|---|---|");
    for x in m {
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            x.name,
            x.per_cpu_sec(),
            1e6 / x.per_cpu_sec().max(1e-9),
            x.per_sec(),
            x.load
        );
    }
}

fn phase_json(p: &Phase) -> serde_json::Value {
    serde_json::json!({
        "ops": p.ops,
        "errors": p.errors,
        "seconds": p.elapsed.as_secs_f64(),
        "ops_per_sec": p.throughput(),
        "server_cpu_ms_per_op": p.cpu_ms_per_op(),
        "postgres_cpu_ms": p.pg_cpu_ms,
        "password_hashes": p.hashes,
        "password_hash_cpu_ms": p.hash_cpu_ms,
        "driver_cpu_ms": p.driver_cpu_ms,
        "p50_ms": f64::from(p.percentile(0.5)) / 1000.0,
        "p95_ms": f64::from(p.percentile(0.95)) / 1000.0,
        "p99_ms": f64::from(p.percentile(0.99)) / 1000.0,
        "max_rss_mb": p.rss_max_kb as f64 / 1024.0,
        "loadavg": [p.load_start, p.load_end],
    })
}

fn append(path: &Path, v: serde_json::Value) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{v}")?;
    Ok(())
}

pub fn append_json(path: &Path, r: &ScenarioResult) -> anyhow::Result<()> {
    append(
        path,
        serde_json::json!({
            "scenario": r.label,
            "db": r.db,
            "concurrency": r.concurrency,
            "saturation": phase_json(&r.sat),
            "paced": r.paced.as_ref().map(|(rate, p)| serde_json::json!({"target_rate": rate, "phase": phase_json(p)})),
            "errors": r.errors,
            "time": chrono::Utc::now().to_rfc3339(),
        }),
    )
}

pub fn append_micro_json(path: &Path, m: &[Micro]) -> anyhow::Result<()> {
    for x in m {
        append(
            path,
            serde_json::json!({"micro": x.name, "ops_per_sec": x.per_sec(), "ops_per_cpu_sec": x.per_cpu_sec(), "loadavg": x.load}),
        )?;
    }
    Ok(())
}

/// The libraries side by side: CPU-µs per operation, the median of the runs and (with more than one
/// run) the fastest and slowest, so the spread on a shared machine shows.
pub fn print_libraries(runs: &[Vec<crate::micro::LibMicro>]) {
    use crate::micro::LIBS;
    let Some(first) = runs.first() else { return };
    let mut ops: Vec<&'static str> = Vec::new();
    for r in first {
        if !ops.contains(&r.op) {
            ops.push(r.op);
        }
    }
    println!(
        "| CPU-µs per operation, median of {} run(s) (min–max) | {} |",
        runs.len(),
        LIBS.join(" | ")
    );
    println!("|---|{}", "---|".repeat(LIBS.len()));
    for op in ops {
        let cells: Vec<String> = LIBS
            .iter()
            .map(|lib| {
                let mut us: Vec<f64> = runs
                    .iter()
                    .flatten()
                    .filter(|r| r.op == op && r.lib == *lib)
                    .map(|r| 1e6 / r.m.per_cpu_sec().max(1e-9))
                    .collect();
                if us.is_empty() {
                    return "–".to_owned();
                }
                us.sort_by(f64::total_cmp);
                let median = us[us.len() / 2];
                if us.len() > 1 {
                    format!("{median:.1} ({:.1}–{:.1})", us[0], us[us.len() - 1])
                } else {
                    format!("{median:.1}")
                }
            })
            .collect();
        println!("| {op} | {} |", cells.join(" | "));
    }
    let loads: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.1}", r.first().map_or(0.0, |x| x.m.load)))
        .collect();
    println!("load average at the start of each run: {}", loads.join(", "));
}

pub fn append_libraries_json(path: &Path, runs: &[Vec<crate::micro::LibMicro>]) -> anyhow::Result<()> {
    for (i, run) in runs.iter().enumerate() {
        for x in run {
            append(
                path,
                serde_json::json!({"micro_lib": x.op, "lib": x.lib, "run": i, "ops_per_cpu_sec": x.m.per_cpu_sec(), "ops_per_sec": x.m.per_sec(), "loadavg": x.m.load}),
            )?;
        }
    }
    Ok(())
}

/// The comparison table of `compare`: yunid and each peer per scenario, with the peer's CPU per
/// operation over yunid's (and, for a peer whose store is Redis, Redis's own CPU beside it).
pub fn print_comparison(rows: &[(&str, ScenarioResult, Vec<ScenarioResult>)]) {
    let Some((_, _, first)) = rows.first() else {
        return;
    };
    let mut head = String::from("| scenario | yunid ops/s | yunid CPU-ms/op |");
    let mut rule = String::from("|---|---|---|");
    for p in first {
        head.push_str(&format!(
            " {l} ops/s | {l} CPU-ms/op | Redis CPU-ms/op | {l} ÷ yunid CPU | (peer + Redis) ÷ yunid |",
            l = p.db
        ));
        rule.push_str("---|---|---|---|---|");
    }
    head.push_str(" errors |");
    rule.push_str("---|");
    println!("{head}\n{rule}");
    for (name, a, peers) in rows {
        let ca = a.sat.cpu_ms_per_op().max(1e-9);
        let mut line = format!(
            "| {name} | {:.0} | {:.3} |",
            a.sat.throughput(),
            a.sat.cpu_ms_per_op()
        );
        let mut errors = vec![a.errors.to_string()];
        for b in peers {
            let cb = b.sat.cpu_ms_per_op();
            let redis = if b.sat.ops > 0 {
                b.sat.redis_cpu_ms / b.sat.ops as f64
            } else {
                0.0
            };
            line.push_str(&format!(
                " {:.0} | {cb:.3} | {redis:.3} | {:.2}x | {:.2}x |",
                b.sat.throughput(),
                cb / ca,
                (cb + redis) / ca
            ));
            errors.push(b.errors.to_string());
        }
        println!("{line} {} |", errors.join(" / "));
        for r in std::iter::once(a).chain(peers) {
            if let Some(e) = r.first_error() {
                println!("  {name} on {}: first error: {e}", r.db);
            }
        }
    }
}
