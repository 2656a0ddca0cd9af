// Web Push for the app: subscribe this browser with the relay's VAPID key
// and register the subscription on every account's channel, so a login
// request wakes the phone. Delivery is a hint: the app still polls.

import { ApiError } from "./api.js";

/** Whether this browser can receive Web Push at all (on iOS: only as a
 *  home-screen app, 16.4 or later). */
export function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** The browser's own subscribe call. Tests replace it through
 *  `globalThis.pushmfaSubscribe` (an offline browser cannot reach its
 *  vendor's push service); nothing else can set it under the page's CSP. */
async function subscribeWith(registration, applicationServerKey) {
  if (typeof globalThis.pushmfaSubscribe === "function") {
    return globalThis.pushmfaSubscribe(applicationServerKey);
  }
  const existing = await registration.pushManager.getSubscription();
  const sub =
    existing ?? (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey }));
  return sub.toJSON();
}

async function relayCall(url, options) {
  let resp;
  try {
    resp = await fetch(url, { cache: "no-store", referrerPolicy: "no-referrer", ...options });
  } catch {
    throw new ApiError("offline", "No connection to the relay.");
  }
  if (!resp.ok) {
    let detail = "";
    try {
      detail = (await resp.json()).error ?? "";
    } catch {
      // keep the status
    }
    throw new ApiError("refused", detail || `The relay answered ${resp.status}.`, resp.status);
  }
  return resp;
}

/** Asks for permission (call from a tap), subscribes, and registers the
 *  subscription for every account. Returns how many accounts it covers. */
export async function enable(accounts) {
  if (!supported()) throw new Error("This browser cannot show notifications from web apps.");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications were not allowed; allow them in the settings.");
  const registration = await navigator.serviceWorker.ready;
  const byRelay = new Map();
  for (const a of accounts) {
    if (!byRelay.has(a.relay)) {
      const key = (await (await relayCall(`${a.relay}/v1/push/key`, {})).json()).public_key;
      byRelay.set(a.relay, await subscribeWith(registration, key));
    }
    const sub = byRelay.get(a.relay);
    await relayCall(`${a.relay}/v1/channels/${encodeURIComponent(a.channelId)}/push`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${a.deviceToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ endpoint: sub.endpoint, p256dh: sub.keys.p256dh, auth: sub.keys.auth }),
    });
  }
  return accounts.length;
}
