//! A recording proxy for the relay, and a search through what it recorded:
//! what the relay could learn from the traffic it carries.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD as B64};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A TCP proxy in front of the relay that keeps a copy of every byte in
/// both directions.
pub struct Recorder {
    pub url: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    /// Listens on loopback and forwards every connection to `upstream`
    /// (`http://host:port`).
    pub fn start(upstream: &str) -> Recorder {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    let record = record.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if let Ok(mut r) = record.lock() {
                                r.extend_from_slice(&buf[..n]);
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Recorder { url, seen }
    }

    /// Everything recorded so far, both directions interleaved.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Where `needle` shows in `traffic`: as is, JSON-escaped, or inside any
/// run of base64url, base64 or hex that decodes (at every alignment).
pub fn reveals(traffic: &[u8], needle: &str) -> Option<String> {
    let n = needle.as_bytes();
    let has = |hay: &[u8]| hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    if has(traffic) {
        return Some("in clear".into());
    }
    let text = String::from_utf8_lossy(traffic);
    let escaped = serde_json::to_string(needle).unwrap_or_default();
    if text.contains(escaped.trim_matches('"')) {
        return Some("JSON-escaped".into());
    }
    let runs = |alphabet: fn(char) -> bool| -> Vec<String> {
        text.split(|c: char| !alphabet(c))
            .filter(|r| r.len() >= 8)
            .map(str::to_owned)
            .collect()
    };
    let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let b64std = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    for run in runs(b64url) {
        for skip in 0..4 {
            let part = &run[skip.min(run.len())..];
            let part = &part[..part.len() - part.len() % 4];
            for decoded in [B64.decode(part), STANDARD_NO_PAD.decode(part)]
                .into_iter()
                .flatten()
            {
                if has(&decoded) {
                    return Some(format!("base64 in {run:.40}"));
                }
            }
        }
        if run.len() % 2 == 0
            && run.chars().all(|c| c.is_ascii_hexdigit())
            && let Ok(bytes) = (0..run.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&run[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
            && has(&bytes)
        {
            return Some(format!("hex in {run:.40}"));
        }
    }
    for run in runs(b64std) {
        let part = &run[..run.len() - run.len() % 4];
        if STANDARD_NO_PAD.decode(part).is_ok_and(|d| has(&d)) {
            return Some(format!("base64 in {run:.40}"));
        }
    }
    None
}
