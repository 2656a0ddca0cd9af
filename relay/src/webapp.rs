//! The phone web app (`webapp/`), embedded in the binary and served under
//! `/app/` with a strict Content-Security-Policy: one binary deploys the
//! relay and the app, and the page can load nothing from anywhere else.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Only this origin's scripts, styles, images and API; no inline code, no
/// frames, no plugins, no forms posting elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!("../../webapp/", $path)),
        }
    };
}

/// Every file of the app (a test checks that none is missing).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("manifest.webmanifest", "application/manifest+json"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
    asset!("icons/icon.svg", "image/svg+xml"),
    asset!("icons/icon-192.png", "image/png"),
    asset!("icons/icon-512.png", "image/png"),
    asset!("js/api.js", "text/javascript; charset=utf-8"),
    asset!("js/crypto.js", "text/javascript; charset=utf-8"),
    asset!("js/db.js", "text/javascript; charset=utf-8"),
    asset!("js/device.js", "text/javascript; charset=utf-8"),
    asset!("js/hpke.js", "text/javascript; charset=utf-8"),
    asset!("js/main.js", "text/javascript; charset=utf-8"),
    asset!("js/offline.js", "text/javascript; charset=utf-8"),
    asset!("js/offline_views.js", "text/javascript; charset=utf-8"),
    asset!("js/protocol.js", "text/javascript; charset=utf-8"),
    asset!("js/push.js", "text/javascript; charset=utf-8"),
    asset!("js/scan.js", "text/javascript; charset=utf-8"),
    asset!("js/sealed.js", "text/javascript; charset=utf-8"),
    asset!("js/views.js", "text/javascript; charset=utf-8"),
    asset!("js/vendor/jsqr.js", "text/javascript; charset=utf-8"),
    asset!("js/vendor/jsqr.LICENSE", "text/plain; charset=utf-8"),
];

/// `/app/...` (and `/` and `/app`, which lead there).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::permanent("/app/") }))
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(|| async { serve("index.html") }))
        .route(
            "/app/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

fn serve(path: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The service worker keeps its own copy; the browser must ask each time,
    // so an upgraded relay's app is picked up at the next start.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn files(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if rel != "tests" && rel != "node_modules" {
                    files(&p, base, out);
                }
            } else if !rel.starts_with("package") {
                out.push(rel);
            }
        }
    }

    #[test]
    fn every_app_file_is_served_and_cached_offline() {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../webapp");
        let mut on_disk = Vec::new();
        files(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        served.sort();
        assert_eq!(on_disk, served, "webapp/ and ASSETS differ");
        let sw = std::str::from_utf8(ASSETS.iter().find(|a| a.path == "sw.js").unwrap().body)
            .unwrap()
            .to_owned();
        for a in ASSETS.iter().filter(|a| a.path != "sw.js") {
            assert!(
                sw.contains(&format!("\"{}\"", a.path)),
                "{} is not in sw.js's SHELL",
                a.path
            );
        }
    }

    #[test]
    fn the_page_carries_no_inline_code() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
    }
}
