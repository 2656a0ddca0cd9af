//! The connections' life: tracking whether Redis is there (so that
//! requests fail at once while it is not), and the subscriber that turns
//! pub/sub messages into this instance's wake-ups.

use crate::wakeups::{Hub, Topic};
use fred::clients::SubscriberClient;
use fred::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pub/sub channel that carries wake-ups (the message is a topic).
pub(super) const WAKE: &str = "pushmfa:wake";

/// Logs to stderr (the journal), one write per line.
/// Lines logged before [`start_logging`] wait there, so that the relay's
/// "listening on" line comes first (scripts and units wait for it).
pub(super) fn log(line: &str) {
    let line = format!("pushmfa-relay: {line}\n");
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    match held.as_mut() {
        Some(lines) => lines.push(line),
        None => {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
}

static HELD: Mutex<Option<Vec<String>>> = Mutex::new(Some(Vec::new()));

/// Writes the lines held since start-up, and from now on logs at once.
pub fn start_logging() {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    for line in held.take().unwrap_or_default() {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
}

/// Tracks (in `up`) and logs when the connection to Redis is lost and
/// when it is back. While it is down, a PING every 250 ms tells when it
/// works again (so an error that did not cost the connection costs only
/// that long).
pub(super) fn report_connection_changes(client: &Client, up: Arc<AtomicBool>) {
    let mut errors = client.error_rx();
    let client = client.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                e = errors.recv() => match e {
                    Ok((e, _)) => {
                        if up.swap(false, Ordering::Relaxed) {
                            log(&format!("redis: connection lost ({e}); answering 503 until it is back"));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = tick.tick(), if !up.load(Ordering::Relaxed) => {
                    let ping = client.ping::<String>(None);
                    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), ping).await {
                        up.store(true, Ordering::Relaxed);
                        log("redis: connected again");
                    }
                }
            }
        }
    });
}

/// Feeds wake-ups from Redis to this instance's waiters. After every
/// (re)connect it subscribes again and then wakes every waiter, since
/// messages sent while it was away are gone.
pub(super) fn fan_out(subscriber: SubscriberClient, hub: Hub) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = messages.recv() => match m {
                    Ok(m) => {
                        if let Some(t) = m.value.as_string().as_deref().and_then(Topic::from_wire) {
                            hub.touch(&t);
                        }
                    }
                    // Too many at once: some were skipped, so look again everywhere.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => hub.touch_all(),
                    Err(_) => return,
                },
                r = reconnects.recv() => match r {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Subscribing twice is harmless; missing it is not.
                        while let Err(e) = subscriber.subscribe(WAKE).await {
                            log(&format!("redis: cannot subscribe to wake-ups: {e}"));
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        hub.touch_all();
                    }
                    Err(_) => return,
                },
            }
        }
    });
}
