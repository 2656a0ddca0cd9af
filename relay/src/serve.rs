//! The accept loop: bounded connections (in all, per client address, with
//! room kept for connections that have shown a valid token), request-head
//! and idle timeouts, HTTP/1.1 and HTTP/2 on one port.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How many connections may be open, and for how long they may sit idle.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// In all (already lowered to fit the open-file limit).
    pub max: usize,
    /// Anonymous connections (no valid token shown yet) stop here.
    pub max_anonymous: usize,
    pub per_address: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ConnLimits {
    /// `max` lowered to what `open_files` allows, keeping some descriptors
    /// for the store, logs and outgoing Web Push; `reserved_percent` of it
    /// kept for authenticated connections.
    pub fn new(cfg: &pushmfa_config::relay::RelayLimits, open_files: u64) -> ConnLimits {
        let by_files = usize::try_from(open_files.saturating_sub(64)).unwrap_or(usize::MAX);
        let max = cfg.max_connections.min(by_files).max(8);
        let reserved = max * usize::from(cfg.reserved_for_authenticated_percent) / 100;
        ConnLimits {
            max,
            max_anonymous: (max - reserved).max(1),
            per_address: cfg.max_connections_per_address,
            header_timeout: Duration::from_secs(cfg.header_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
        }
    }
}

/// Open connections, counted in all, anonymous, and per address.
#[derive(Default)]
struct Counts {
    open: usize,
    anonymous: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Admits or refuses new connections.
pub struct Gate {
    limits: ConnLimits,
    counts: Mutex<Counts>,
    refused: AtomicU64,
}

/// One admitted connection. Dropping it gives its place back.
pub struct ConnState {
    gate: Arc<Gate>,
    peer: IpAddr,
    authenticated: AtomicBool,
    /// Requests in progress, and since when none has been (the opening,
    /// or the end of the last one). Bytes trickling in do not count.
    active: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Gate {
    pub fn new(limits: ConnLimits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            counts: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    /// A place for a new (anonymous) connection from `peer`, if there is one.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Arc<ConnState>> {
        let mut c = self.counts.lock().ok()?;
        // IPv6 peers count by their /64, as the per-address call limits do.
        let key = prefix64(peer);
        let from_peer = c.per_address.get(&key).copied().unwrap_or(0);
        if c.open >= self.limits.max
            || c.anonymous >= self.limits.max_anonymous
            || from_peer >= self.limits.per_address
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        c.open += 1;
        c.anonymous += 1;
        c.per_address.insert(key, from_peer + 1);
        Some(Arc::new(ConnState {
            gate: self.clone(),
            peer,
            authenticated: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }))
    }

    /// Open connections in all and anonymous ones, and how many were refused.
    pub fn counts(&self) -> (usize, usize, u64) {
        let refused = self.refused.load(Ordering::Relaxed);
        self.counts
            .lock()
            .map_or((0, 0, refused), |c| (c.open, c.anonymous, refused))
    }
}

impl ConnState {
    /// The connection's peer address (a proxy's, behind one).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// A request on this connection showed a valid token: from now on it
    /// counts against the whole cap, not the anonymous one.
    pub fn authenticate(&self) {
        if !self.authenticated.swap(true, Ordering::Relaxed) {
            if let Ok(mut c) = self.gate.counts.lock() {
                c.anonymous = c.anonymous.saturating_sub(1);
            }
        }
    }

    fn request_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut t) = self.idle_since.lock() {
            *t = Instant::now();
        }
    }

    /// Whether to close it: no request in progress, and none for `head`
    /// (anonymous: a request head must follow soon, however slowly its
    /// bytes trickle in) or `idle` (authenticated: a device between polls).
    fn expired(&self, head: Duration, idle: Duration) -> bool {
        if self.active.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let limit = if self.authenticated.load(Ordering::Relaxed) {
            idle
        } else {
            head
        };
        self.idle_since
            .lock()
            .map_or(true, |t| t.elapsed() >= limit)
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        if let Ok(mut c) = self.gate.counts.lock() {
            c.open = c.open.saturating_sub(1);
            if !self.authenticated.load(Ordering::Relaxed) {
                c.anonymous = c.anonymous.saturating_sub(1);
            }
            let key = prefix64(self.peer);
            if let Some(n) = c.per_address.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    c.per_address.remove(&key);
                }
            }
        }
    }
}

tokio::task_local! {
    /// The connection the current request came on (set for every request
    /// served by [`serve`]; absent when the router is called directly).
    static CONNECTION: Arc<ConnState>;
}

/// Marks the current request's connection as authenticated.
pub fn authenticated() {
    let _ = CONNECTION.try_with(|c| c.authenticate());
}

/// The current request's connection.
pub fn connection() -> Option<Arc<ConnState>> {
    CONNECTION.try_with(Arc::clone).ok()
}

/// Serves `router` on `listener` within `gate`'s limits, over TLS when
/// `tls` is given, until the future is dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Arc<Gate>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog in serve_one closes slow and idle connections, by
        // how far they got; hyper's own timer is only a backstop.
        .header_read_timeout(gate.limits.idle_timeout)
        // hyper's minimum: a long-poll holds its read buffer for up to a
        // minute, and request heads here are small (bodies stream through).
        .max_buf_size(8192);
    builder
        .http2()
        .timer(TokioTimer::new())
        // A helper multiplexes every pending login of its host on one
        // connection (one long-poll each); a client that opens more than
        // this waits for a stream, so room for a busy bastion host. Each
        // stream is still held to the per-token and per-address limits.
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept):
                // wait a moment rather than spin.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
        let Some(conn) = gate.admit(canonical(peer)) else {
            // Closed at once: the client sees a reset, not a hang.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let timeouts = (gate.limits.header_timeout, gate.limits.idle_timeout);
        let (builder, router) = (builder.clone(), router.clone());
        match tls.clone() {
            None => {
                tokio::spawn(serve_one(builder, stream, router, conn, timeouts));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    // The handshake counts as the start of the first request.
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(timeouts.0, acceptor.accept(stream)).await
                    {
                        serve_one(builder, stream, router, conn, timeouts).await;
                    }
                });
            }
        }
    }
}

/// An IPv6 address's /64 (IPv4, and v4-mapped, addresses as they are).
pub fn prefix64(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

fn canonical(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer.ip(), IpAddr::V4),
        ip => ip,
    }
}

async fn serve_one<S>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: S,
    router: Router,
    conn: Arc<ConnState>,
    (head, idle): (Duration, Duration),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let per_request = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let conn = per_request.clone();
        let router = router.clone();
        conn.active.fetch_add(1, Ordering::Relaxed);
        let done = Active(conn.clone());
        CONNECTION.scope(conn, async move {
            let resp = router.oneshot(req.map(axum::body::Body::new)).await;
            drop(done);
            resp
        })
    });
    let serving = builder.serve_connection(io, service);
    tokio::pin!(serving);
    // Checked a few times per timeout: a connection lives at most about a
    // quarter longer than its limit.
    let mut check = tokio::time::interval(head.min(idle).max(Duration::from_secs(1)) / 4);
    check.tick().await;
    loop {
        tokio::select! {
            _ = &mut serving => break,
            _ = check.tick() => {
                if conn.expired(head, idle) {
                    break;
                }
            }
        }
    }
}

/// A request in progress on a connection; ends when dropped.
struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// Raises the soft open-file limit to the hard one; returns the limit in
/// effect. Reads the limits from `/proc/self/limits` and calls
/// `setrlimit` only when there is something to raise: the packaged unit
/// sets both (LimitNOFILE) and filters the `@resources` system calls.
pub fn raise_open_files() -> u64 {
    let Some((soft, hard)) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| open_file_limits(&t))
    else {
        return 1024;
    };
    if soft < hard
        && nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
            .is_ok()
    {
        hard
    } else {
        soft
    }
}

/// The "Max open files" line of `/proc/self/limits`: soft and hard.
fn open_file_limits(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut n = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((n.next()??, n.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_file_limits_are_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             63465                63465                processes\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(open_file_limits(text), Some((1024, 524288)));
        assert_eq!(
            open_file_limits(
                "Max open files            unlimited            unlimited            files\n"
            ),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(open_file_limits("garbage"), None);
        assert_eq!(open_file_limits("Max open files  12"), None);
        let (soft, hard) =
            open_file_limits(&std::fs::read_to_string("/proc/self/limits").unwrap()).unwrap();
        assert!(soft <= hard);
    }

    #[test]
    fn the_cap_stays_below_the_open_file_limit_with_room_for_tokens() {
        let cfg = pushmfa_config::relay::RelayLimits::default();
        let l = ConnLimits::new(&cfg, 1024);
        assert_eq!((l.max, l.max_anonymous), (960, 720));
        let l = ConnLimits::new(&cfg, 1 << 20);
        assert_eq!(l.max, cfg.max_connections);
    }
}
