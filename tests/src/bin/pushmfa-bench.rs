//! Benchmarks for docs/benchmarks.md. Build everything in release mode first:
//!
//! ```sh
//! cargo build --release --workspace && target/release/pushmfa-bench [login|argon2|concurrent|all]
//! ```
//!
//! Uses the default Argon2id cost (m=19456 KiB, t=2, p=1), real libpam, the
//! release module and a release helper process.

use pushmfa_helper::codes::{HashParams, SALT_LEN, hash_code};
use pushmfa_tests::{TestEnv, rc};
use std::time::{Duration, Instant};

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} median={:.2} ms p99={:.2} ms min={:.2} ms max={:.2} ms",
        samples.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

const DEFAULT_COST: &str =
    "[recovery]\ncode_count = 20\nargon2_memory_kib = 19456\nargon2_iterations = 2\n";

fn argon2() {
    let p = HashParams {
        memory_kib: 19456,
        iterations: 2,
        parallelism: 1,
    };
    let salt = [1u8; SALT_LEN];
    let samples = (0..50)
        .map(|_| {
            let t = Instant::now();
            let _ = hash_code("1A2B3C4D5E6F7G80", &salt, p);
            t.elapsed()
        })
        .collect();
    stats("argon2id m=19456KiB t=2 p=1, one hash", samples);
}

fn login() {
    let mut e = TestEnv::new(DEFAULT_COST);
    e.start_helper();
    e.service("bench", "");
    let mut samples = Vec::new();
    while samples.len() < 100 {
        for code in e.generate("alice") {
            let t = Instant::now();
            let (code, _) = e.pam("bench", "alice").answer(code.as_str()).run();
            samples.push(t.elapsed());
            assert_eq!(code, rc::SUCCESS);
        }
    }
    stats(
        "recovery-code login through libpam (pam_start..pam_end)",
        samples,
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn concurrent() {
    const N: usize = 100;
    let mut e = TestEnv::new(&format!(
        "[recovery]\ncode_count = 1\nargon2_memory_kib = 19456\nargon2_iterations = 2\n{}",
        std::env::var("BENCH_EXTRA").unwrap_or_default()
    ));
    e.start_helper();
    e.service("bench", "timeout=60");
    let codes: Vec<(String, String)> = (0..N)
        .map(|i| {
            let user = format!("user{i}");
            let code = e.generate(&user).remove(0);
            (user, code)
        })
        .collect();
    let idle_rss = peak_rss_kib(e.helper_pid());
    let start = Instant::now();
    let results: Vec<(i32, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = codes
            .iter()
            .map(|(user, code)| {
                let e = &e;
                s.spawn(move || {
                    let t = Instant::now();
                    let (rc_, _) = e.pam("bench", user).answer(code.as_str()).run();
                    (rc_, t.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((-1, Duration::ZERO)))
            .collect()
    });
    let wall = start.elapsed();
    let ok = results.iter().filter(|(r, _)| *r == rc::SUCCESS).count();
    println!(
        "{N} concurrent logins: {ok} succeeded in {:.2} s = {:.1} logins/s; helper peak RSS {} KiB (after setup {} KiB)",
        wall.as_secs_f64(),
        N as f64 / wall.as_secs_f64(),
        peak_rss_kib(e.helper_pid()),
        idle_rss,
    );
    stats(
        "per-login latency under that load",
        results.into_iter().map(|(_, d)| d).collect(),
    );
    assert_eq!(ok, N);
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    match what.as_str() {
        "argon2" => argon2(),
        "login" => login(),
        "concurrent" => concurrent(),
        "all" => {
            argon2();
            login();
            concurrent();
        }
        other => {
            eprintln!("usage: pushmfa-bench [login|argon2|concurrent|all] (got {other})");
            std::process::exit(2);
        }
    }
}
