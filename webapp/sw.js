// The service worker (a module): keeps the app shell so the app opens
// with no network (shell files from the cache, refreshed in the
// background; the relay's API under /v1/ is never cached), and turns a Web
// Push message into a notification whose tap opens the request. With
// protocol 2 the message carries the request sealed to this phone: opened
// and checked here exactly as the app checks it, the notification says
// who signs in where.

import * as db from "./js/db.js";
import { checkRequest } from "./js/device.js";

const CACHE = "pushmfa-shell-v3";
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
  "js/offline.js",
  "js/offline_views.js",
  "js/protocol.js",
  "js/push.js",
  "js/scan.js",
  "js/sealed.js",
  "js/vendor/jsqr.js",
  "js/vendor/jsqr.LICENSE",
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

/** What a push is about, for the notification: "alice → sudo on web-1
 *  from 203.0.113.7" when it carries a sealed request that opens and
 *  checks out for the account, else who it is for, else nothing. */
async function describe(hint) {
  if (hint?.v !== 1) return "";
  const account = (await db.accounts.all().catch(() => [])).find((a) => a.channelId === String(hint.channel));
  if (!account) return "";
  const who = `${account.label || `${account.account} on ${account.hostName}`}: `;
  if (typeof hint.sealed !== "string") return who;
  try {
    const r = await checkRequest(account, { id: String(hint.id), sealed: hint.sealed, expires_in: 0 });
    const from = r.shown.rhost ? ` from ${r.shown.rhost}` : "";
    return `${r.shown.user} → ${r.shown.service} on ${r.shown.host}${from}. `;
  } catch {
    // Not for this phone, tampered or stale: say only whose it is.
    return who;
  }
}

// Without protocol 2 the message (RFC 8291-encrypted to this browser)
// carries only the channel and the request id: the details are fetched and
// checked by the app when the user opens it.
self.addEventListener("push", (event) => {
  let hint = null;
  try {
    hint = event.data?.json();
  } catch {
    hint = null;
  }
  event.waitUntil(
    (async () => {
      // A notification must not wait on storage or crypto: after 5 s it
      // goes out with what is known (nothing but the request id).
      const about = await Promise.race([
        describe(hint),
        new Promise((resolve) => setTimeout(() => resolve(""), 5000)),
      ]);
      const rest = about.endsWith(": ") ? "open to review and approve." : "Open to review and approve.";
      await self.registration.showNotification("Sign-in request", {
        body: `${about}${rest}`,
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
