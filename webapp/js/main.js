// Boot and wiring: storage, the relay and the keys on one side (device.js,
// api.js, db.js), the screens on the other (views.js). Only this module
// knows both.

import * as db from "./db.js";
import * as device from "./device.js";
import { parseEnrollLink, sanitize } from "./protocol.js";
import * as offline from "./offline.js";
import { offlineCard, offlineCode, offlineScan } from "./offline_views.js";
import * as push from "./push.js";
import * as scan from "./scan.js";
import { RequestCard, accountList, enrollForm, h, notifications, offlineEntry, welcome } from "./views.js";

const app = document.getElementById("app");
const statusLine = document.getElementById("status");
/** Open request cards by "<account id>/<request id>". */
const cards = new Map();
/** One long-poll per account, by account id. */
const pollers = new Map();
let requestsSection = null;
const REMOVE_AFTER_MS = 15000;
const POLL_WAIT_SECS = 30;

function setStatus(text, isOffline = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("offline", isOffline);
}

/** Retry waits, cut short when the browser says it is online again. */
const retryWaits = new Set();
window.addEventListener("online", () => {
  for (const wake of retryWaits) wake();
});

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      retryWaits.delete(done);
      resolve();
    };
    const t = setTimeout(done, ms);
    retryWaits.add(done);
    signal?.addEventListener("abort", done);
  });
}

function title(a) {
  return a.label || `${a.account} on ${a.hostName}`;
}

async function boot() {
  if ("serviceWorker" in navigator) {
    // A module worker: it shares the app's modules to open sealed pushes.
    navigator.serviceWorker.register("sw.js", { type: "module" }).catch(() => {
      // No offline shell (e.g. a private window): the app still works online.
    });
  }
  setInterval(tick, 1000);
  if (location.hash.startsWith("#request=")) {
    // Opened from a notification: the card appears once polled.
    const id = decodeURIComponent(location.hash.slice("#request=".length));
    history.replaceState(null, "", location.pathname + location.search);
    showRequest(id);
  }
  if (location.hash.startsWith("#enroll?")) {
    const link = location.href;
    // The fragment holds the enrollment secret: off the address bar and
    // out of history at once; it lives only in memory until used.
    history.replaceState(null, "", location.pathname + location.search);
    return showEnroll(link);
  }
  return showHome();
}

function showEnroll(link) {
  let details;
  try {
    details = parseEnrollLink(link);
  } catch (e) {
    return showHome(e.message, true);
  }
  stopPolling();
  setStatus("");
  app.replaceChildren(
    enrollForm(
      { account: sanitize(details.account), hostName: sanitize(details.hostName), issuer: sanitize(details.issuer) },
      {
        onEnroll: async (name) => {
          try {
            const a = await device.enroll(link, name);
            link = null;
            await showHome(`Added ${title(a)}. Sign-in requests appear here.`);
            return null;
          } catch (e) {
            if (e.kind === "gone") {
              return "This enrollment link has expired or was already used: run pushmfa enroll again.";
            }
            if (e.kind === "offline") {
              return `Cannot reach the relay at ${sanitize(details.relay)}. Check the connection; if this app is not served by that relay, its administrator must allow it (app_origin).`;
            }
            return e.message;
          }
        },
        onCancel: () => showHome(),
      },
    ),
  );
  app.focus();
}

/** Bumped by every showHome: a render whose read finished after a newer
 *  one started must not paint an older account list over it. */
let homeRenders = 0;

async function showHome(notice, isError = false) {
  const render = ++homeRenders;
  let accounts;
  try {
    accounts = await db.accounts.all();
    if (render !== homeRenders) return;
  } catch {
    app.replaceChildren(h("p", { class: "error" }, "This browser does not let the app store its keys (private mode?)."));
    return;
  }
  const note = notice ? h("p", { class: isError ? "error" : "done", role: "status" }, notice) : null;
  if (accounts.length === 0) {
    stopPolling();
    setStatus("");
    app.replaceChildren(...[note, welcome({ onLink: (l) => showEnroll(l) })].filter(Boolean));
    return;
  }
  requestsSection = h(
    "section",
    { "aria-labelledby": "requests-title", id: "requests" },
    h("h2", { id: "requests-title" }, "Sign-in requests"),
    h("p", { class: "muted empty" }, "No sign-in is waiting. Keep this app open, or come back when a sign-in asks."),
    [...cards.values()].map((c) => c.el),
  );
  const pushState = !push.supported()
    ? "unsupported"
    : Notification.permission === "granted" && localStorage.getItem("pushmfa-push") === "on"
      ? "on"
      : "off";
  const unregistered = accounts.filter((a) => !a.pushRegistered);
  if (pushState === "on" && unregistered.length > 0) {
    // A new account joins the subscription the others already have.
    registerPush(unregistered).catch(() => undefined);
  }
  app.replaceChildren(
    ...[
      note,
      requestsSection,
      notifications(pushState, { onEnable: () => enableNotifications(accounts) }),
      offlineEntry({ onScan: showOffline }),
      accountList(accounts, { onRename: rename, onRemove: remove }),
    ].filter(Boolean),
  );
  updateEmpty();
  syncPollers(accounts);
  // The QR reader for offline approval, fetched now while the relay that
  // serves the app is reachable (offline approval is for when it is not).
  scan.prepare().catch(() => undefined);
}

function updateEmpty() {
  const empty = requestsSection?.querySelector(".empty");
  if (empty) empty.hidden = cards.size > 0;
}

function stopPolling() {
  for (const c of pollers.values()) c.abort();
  pollers.clear();
}

function syncPollers(accounts) {
  const ids = new Set(accounts.map((a) => a.id));
  for (const [id, c] of pollers) {
    if (!ids.has(id)) {
      c.abort();
      pollers.delete(id);
    }
  }
  for (const a of accounts) {
    if (!pollers.has(a.id)) {
      const c = new AbortController();
      pollers.set(a.id, c);
      poll(a, c.signal);
    }
  }
  if (!statusLine.classList.contains("offline")) setStatus("Waiting for sign-in requests");
}

/** Long-polls one account's channel: each answer is the pending list when
 *  it changed since `cursor`, or "nothing new" after the wait. */
async function poll(account, signal) {
  let cursor = null;
  let backoff = 1000;
  let failing = false;
  while (!signal.aborted) {
    try {
      // After a failure, a quick look first: the status line recovers at
      // once instead of after a whole long-poll.
      const r = await device.pending(account, cursor, failing ? 0 : POLL_WAIT_SECS, signal);
      if (statusLine.classList.contains("offline")) setStatus("Waiting for sign-in requests");
      backoff = 1000;
      failing = false;
      if (!r.changed) continue;
      cursor = r.cursor;
      await showRequests(account, r.list.challenges ?? []);
    } catch (e) {
      if (signal.aborted || e.name === "AbortError") return;
      failing = true;
      if (e.kind === "gone" || e.status === 401) {
        setStatus(`${title(account)} was removed on the host: remove it here too.`, true);
        await sleep(60000, signal);
      } else {
        setStatus(e.kind === "busy" ? "The relay is busy. Retrying…" : "No connection to the relay. Retrying…", true);
        await sleep(backoff, signal);
        // A request lives about a minute: never wait long to look again.
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
}

async function showRequests(account, items) {
  const seen = new Set();
  for (const item of items) {
    const key = `${account.id}/${item.id}`;
    seen.add(key);
    const refused = item.refused ? `The computer refused the last answer (${sanitize(String(item.refused))}). Answer again if this is you.` : null;
    const existing = cards.get(key);
    if (existing) {
      // Offered again after the host refused an answer: open the card again
      // and say why. An open card says so too: someone else holding this
      // phone's relay token may have answered, which the user should know.
      if (refused && existing.status !== "sending" && existing.detail !== refused) {
        if (existing.status !== "open") existing.typed = "";
        existing.setStatus("open", refused);
      }
      continue;
    }
    let request;
    try {
      request = await device.checkRequest(account, item);
    } catch (e) {
      // A relay (or anyone) made this up: never shown as approvable.
      console.warn(`request ${item.id}: ${e.message}`);
      continue;
    }
    const card = new RequestCard(request, { onAnswer });
    if (refused) card.setStatus("open", refused);
    cards.set(key, card);
    // Newest first: the one the user is looking at the computer for.
    requestsSection?.querySelector(".empty")?.after(card.el);
    if (item.id === wantedRequest) showRequest(item.id);
    else if (cards.size === 1) card.el.focus();
  }
  for (const [key, card] of cards) {
    if (key.startsWith(`${account.id}/`) && !seen.has(key) && card.status === "open") {
      card.setStatus("gone");
      removeLater(key);
    }
  }
  updateEmpty();
}

function removeLater(key) {
  setTimeout(() => {
    cards.get(key)?.el.remove();
    cards.delete(key);
    updateEmpty();
  }, REMOVE_AFTER_MS);
}

const RESULT = { approve: "approved", deny: "denied", fraud: "reported" };

async function onAnswer(card, what) {
  card.el.dataset.answeredAt = String(performance.timeOrigin + performance.now());
  const number = card.number();
  if (what === "approve" && number === null) return;
  card.setStatus("sending");
  try {
    await device.answer(card.request, device.Decision[what], number);
    card.setStatus(RESULT[what]);
    removeLater(card.request.key);
  } catch (e) {
    if (e.kind === "gone") {
      card.setStatus("gone");
      removeLater(card.request.key);
    } else {
      // Not sent: the user may try again while the request lives.
      card.setStatus("open", e.kind === "offline" ? "No connection: the answer was not sent. Try again." : e.message);
    }
  }
}

function tick() {
  const now = Date.now();
  for (const [key, card] of cards) {
    const was = card.status;
    card.tick(now);
    if (was === "open" && card.status === "expired") removeLater(key);
  }
}

/** Registers the push subscription on `accounts`' channels, once each. */
async function registerPush(accounts) {
  await push.enable(accounts);
  for (const a of accounts) {
    a.pushRegistered = true;
    await db.accounts.put(a);
  }
}

async function enableNotifications(accounts) {
  try {
    await registerPush(accounts);
    localStorage.setItem("pushmfa-push", "on");
    await showHome("Notifications are on: sign-in requests wake this phone.");
  } catch (e) {
    await showHome(e.message, true);
  }
}

/** A request a notification was for, whose card has not arrived yet. */
let wantedRequest = null;

/** Shows the request a notification was for: its card now, or as soon as
 *  the poll brings it. */
function showRequest(id) {
  wantedRequest = id;
  for (const [key, card] of cards) {
    if (key.endsWith(`/${id}`)) {
      wantedRequest = null;
      card.el.focus();
      card.el.scrollIntoView({ block: "start" });
      card.el.dataset.opened = "notification";
    }
  }
}

if (navigator.serviceWorker) {
  // Assigning onmessage (not addEventListener) also starts the queue.
  navigator.serviceWorker.onmessage = (e) => {
    if (e.data?.type === "show-request") showRequest(String(e.data.id));
  };
}

async function rename(a) {
  const label = prompt("Name for this account", title(a));
  if (label === null) return;
  a.label = sanitize(label.trim()).slice(0, 64);
  await db.accounts.put(a);
  await showHome();
}

async function remove(a) {
  if (!confirm(`Remove ${title(a)} from this phone? Its key is deleted; to use this phone again for it, enroll again.`)) {
    return;
  }
  await db.accounts.remove(a.id);
  for (const [key, card] of cards) {
    if (key.startsWith(`${a.id}/`)) {
      card.el.remove();
      cards.delete(key);
    }
  }
  await showHome(`Removed ${title(a)}. Ask your administrator to remove the device on the host too.`);
}

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#enroll?")) {
    const link = location.href;
    history.replaceState(null, "", location.pathname + location.search);
    showEnroll(link);
  }
});

boot();

/** Offline approval: the camera (or a paste), the request, the code. */
async function showOffline() {
  stopPolling();
  setStatus("");
  let scanner = null;
  const leave = () => {
    scanner?.stop();
    showHome();
  };
  const check = async (text) => {
    scanner?.stop();
    try {
      const request = await offline.checkRequest(await db.accounts.all(), text);
      showOfflineRequest(request);
    } catch (e) {
      view.say(e.message);
    }
  };
  const view = offlineScan({ onText: check, onCancel: leave });
  app.replaceChildren(view.el);
  app.focus();
  try {
    scanner = await scan.start(view.video, check);
  } catch (e) {
    view.noCamera(e.message);
  }
}

function showOfflineRequest(request) {
  app.replaceChildren(
    offlineCard(request, {
      onApprove: async () => {
        const code = await offline.approve(request);
        app.replaceChildren(offlineCode(request, code, { onDone: () => showHome() }));
      },
      onReject: () => showHome("Not approved: no code was shown. If you did not start this sign-in, tell your administrator."),
    }),
  );
  app.focus();
}
