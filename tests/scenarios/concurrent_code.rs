//! One recovery code typed into two logins at once, in two separate
//! processes: exactly one wins, every time, and the code is gone from disk.

use base64::Engine;
use pushmfa_helper::codes::{HashParams, hash_code, normalize};
use pushmfa_tests::TestEnv;
use std::io::Write;

fn rounds() -> usize {
    std::env::var("PUSHMFA_RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200)
}

/// Whether `code`'s hash is still among alice's unused hashes on disk.
fn on_disk(e: &TestEnv, code: &str) -> bool {
    let text = std::fs::read_to_string(e.state.join("users/alice.json")).unwrap_or_default();
    let state: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("state: {err}"));
    let rec = &state["recovery"];
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64
        .decode(rec["salt"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let params = HashParams {
        memory_kib: rec["memory_kib"].as_u64().unwrap_or(0) as u32,
        iterations: rec["iterations"].as_u64().unwrap_or(0) as u32,
        parallelism: rec["parallelism"].as_u64().unwrap_or(0) as u32,
    };
    let norm = normalize(code).unwrap_or_else(|err| panic!("{err}"));
    let hash = b64.encode(*hash_code(&norm, &salt, params).unwrap_or_else(|err| panic!("{err}")));
    rec["unused"]
        .as_array()
        .is_some_and(|a| a.iter().any(|h| h.as_str() == Some(hash.as_str())))
}

#[test]
fn same_code_in_two_parallel_logins_has_exactly_one_winner() {
    let mut e = TestEnv::new("[recovery]\ncode_count = 20\n");
    e.start_helper();
    e.service("race", "");
    let mut done = 0;
    while done < rounds() {
        let codes = e.generate("alice");
        let batch = codes.len().min(rounds() - done);
        for code in codes.iter().take(batch) {
            assert!(on_disk(&e, code));
            // Both logins wait at the prompt; then the code reaches both at once.
            let mut racers = [0, 1].map(|_| {
                e.pamtester_cmd("race", "alice", &[], None)
                    .spawn_until_prompt("Recovery code: ")
                    .0
            });
            let input = format!("{code}\n");
            let mut stdins: Vec<_> = racers.iter_mut().filter_map(|c| c.stdin.take()).collect();
            for s in &mut stdins {
                let _ = s.write_all(input.as_bytes());
            }
            drop(stdins);
            let results =
                racers.map(|c| c.wait_with_output().unwrap_or_else(|err| panic!("{err}")));
            let wins = results.iter().filter(|o| o.status.success()).count();
            assert_eq!(
                wins,
                1,
                "round {done}: {} winners\n{}",
                wins,
                results
                    .iter()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            );
            assert!(!on_disk(&e, code), "round {done}: used code still on disk");
            done += 1;
        }
        assert_eq!(e.status("alice").codes_left as usize, codes.len() - batch);
    }
    assert_eq!(done, rounds());
}
