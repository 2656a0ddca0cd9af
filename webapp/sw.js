// The service worker: keeps the app shell so the app opens with no
// network. Shell files are served from the cache and refreshed in the
// background; the relay's API (/v1/) is never cached.

const CACHE = "pushmfa-shell-v1";
const SHELL = [
  "./",
  "index.html",
  "app.css",
  "manifest.webmanifest",
  "icons/icon.svg",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "js/api.js",
  "js/crypto.js",
  "js/db.js",
  "js/device.js",
  "js/main.js",
  "js/protocol.js",
  "js/views.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const scope = new URL(self.registration.scope);
  if (event.request.method !== "GET" || url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) {
    return;
  }
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(event.request, { ignoreSearch: true });
      const fresh = fetch(event.request)
        .then((resp) => {
          if (resp.ok) cache.put(event.request, resp.clone());
          return resp;
        })
        .catch(() => cached ?? Response.error());
      if (cached) {
        event.waitUntil(fresh.then(() => undefined));
        return cached;
      }
      return fresh;
    }),
  );
});
