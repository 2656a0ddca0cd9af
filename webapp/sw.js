// The service worker: keeps the app shell so the app opens with no
// network (shell files from the cache, refreshed in the background; the
// relay's API under /v1/ is never cached), and turns a Web Push wake-up
// into a notification whose tap opens the request.

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
  "js/hpke.js",
  "js/main.js",
  "js/protocol.js",
  "js/push.js",
  "js/sealed.js",
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

/** The account a push is for, by channel (the same IndexedDB as js/db.js). */
function accountFor(channel) {
  return new Promise((resolve) => {
    const open = indexedDB.open("pushmfa", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("accounts", { keyPath: "id" });
    open.onerror = () => resolve(null);
    open.onsuccess = () => {
      const req = open.result.transaction("accounts").objectStore("accounts").getAll();
      req.onsuccess = () => resolve(req.result.find((a) => a.channelId === channel) ?? null);
      req.onerror = () => resolve(null);
    };
  });
}

// The message (RFC 8291-encrypted to this browser) carries only the
// channel and the request id: the details are fetched and checked by the
// app, against the host's signature, when the user opens it.
self.addEventListener("push", (event) => {
  let hint = null;
  try {
    hint = event.data?.json();
  } catch {
    hint = null;
  }
  event.waitUntil(
    (async () => {
      const account = hint?.v === 1 ? await accountFor(String(hint.channel)) : null;
      const who = account ? `${account.label || `${account.account} on ${account.hostName}`}: ` : "";
      await self.registration.showNotification("Sign-in request", {
        body: `${who}open to review and approve.`,
        tag: `pushmfa-${hint?.id ?? "request"}`,
        requireInteraction: true,
        icon: "icons/icon-192.png",
        data: { id: hint?.id ?? null },
      });
    })(),
  );
});

/** Shows request `id` in an open app window, or opens one on it. */
async function openRequest(id) {
  const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  if (open.length > 0) {
    open[0].postMessage({ type: "show-request", id });
    await open[0].focus().catch(() => undefined);
    return "shown";
  }
  await self.clients.openWindow(`./#request=${encodeURIComponent(id)}`);
  return "opened";
}
// For the end-to-end tests, which cannot tap a notification.
self.openRequest = openRequest;

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openRequest(event.notification.data?.id ?? ""));
});
