// A phone for the end-to-end tests: the web app in Debian's Chromium
// (headless), driven by playwright-core. The Rust scenario that starts the
// real relay, helper and PAM logins sends one JSON command per line on
// stdin; each gets one JSON line back on stdout: {"ok": true, ...} or
// {"ok": false, "error": "..."}.
//
//   node webapp/tests/phone.mjs [--width 360] [--dark] [--camera FILE.y4m]
//
// --camera gives the phone a camera that shows FILE (Chromium's fake
// capture device reads it when the app starts the camera).

import { createECDH, createHmac, createDecipheriv, createPublicKey, randomBytes, verify } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const width = Number(args[args.indexOf("--width") + 1]) || 360;
const executablePath = process.env.PUSHMFA_CHROMIUM ?? "/usr/bin/chromium";

const camera = args.includes("--camera") ? args[args.indexOf("--camera") + 1] : null;
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    ...(camera ? ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", `--use-file-for-fake-video-capture=${camera}`] : [])],
});
const context = await browser.newContext({
  viewport: { width, height: 800 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  colorScheme: args.includes("--dark") ? "dark" : "light",
  permissions: camera ? ["camera"] : [],
  // Most scenarios test the page, not the offline cache.
  serviceWorkers: args.includes("--service-workers") ? "allow" : "block",
});
let page = await context.newPage();
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});

// A stand-in for a browser vendor's push service (the real ones, FCM,
// Mozilla, Apple, are not reachable here): it checks what they check (the
// VAPID token: ES256, aud, exp within 24 h; TTL, Urgency, aes128gcm),
// decrypts the message with the subscription's keys (RFC 8291, written
// here independently of the relay's Rust), and hands the plaintext to the
// service worker through DevTools (ServiceWorker.deliverPushMessage).
const pushService = { origin: null, ua: null, auth: null, received: [], registrations: new Map(), cdp: null, waiters: [] };

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const hmac = (key, data) => createHmac("sha256", key).update(data).digest();

function checkVapid(header, origin) {
  const m = /^vapid t=([^,]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header ?? "");
  if (!m) throw new Error(`no VAPID authorization: ${header}`);
  const [h, c, sig] = m[1].split(".");
  const claims = JSON.parse(Buffer.from(c, "base64url"));
  const alg = JSON.parse(Buffer.from(h, "base64url")).alg;
  const raw = Buffer.from(m[2], "base64url");
  const key = createPublicKey({
    key: { kty: "EC", crv: "P-256", x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33, 65)) },
    format: "jwk",
  });
  const ok = verify("sha256", Buffer.from(`${h}.${c}`), { key, dsaEncoding: "ieee-p1363" }, Buffer.from(sig, "base64url"));
  const now = Date.now() / 1000;
  if (alg !== "ES256" || !ok) throw new Error("VAPID signature does not verify");
  if (claims.aud !== origin) throw new Error(`VAPID aud ${claims.aud} is not ${origin}`);
  if (!(claims.exp > now && claims.exp <= now + 24 * 3600)) throw new Error(`VAPID exp ${claims.exp} out of range`);
  if (!/^(mailto:|https:)/.test(claims.sub ?? "")) throw new Error("VAPID sub is not a contact");
  return claims;
}

function decrypt(body) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const ciphertext = body.subarray(21 + idlen);
  const ecdhSecret = pushService.ua.computeSecret(asPublic);
  const prkKey = hmac(pushService.auth, ecdhSecret);
  const keyInfo = Buffer.concat([Buffer.from("WebPush: info\0"), pushService.ua.getPublicKey(), asPublic, Buffer.of(1)]);
  const ikm = hmac(prkKey, keyInfo);
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, Buffer.concat([Buffer.from("Content-Encoding: aes128gcm\0"), Buffer.of(1)])).subarray(0, 16);
  const nonce = hmac(prk, Buffer.concat([Buffer.from("Content-Encoding: nonce\0"), Buffer.of(1)])).subarray(0, 12);
  const d = createDecipheriv("aes-128-gcm", cek, nonce);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const padded = Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - 16)), d.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (padded[end] !== 2) throw new Error("no last-record delimiter");
  return padded.subarray(0, end).toString("utf8");
}

async function onPush(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const entry = { path: req.url, ttl: Number(req.headers.ttl), urgency: req.headers.urgency };
  try {
    if (req.method !== "POST") throw new Error(`method ${req.method}`);
    if (req.headers["content-encoding"] !== "aes128gcm") throw new Error("not aes128gcm");
    entry.vapid = checkVapid(req.headers.authorization, pushService.origin);
    entry.payload = decrypt(Buffer.concat(chunks));
    const [registrationId] = [...pushService.registrations.values()];
    // A push service keeps a message until the browser takes it (within its
    // TTL): deliver again if the service worker showed nothing, which
    // happens when DevTools hands it over while the worker is starting.
    const shown = () =>
      page
        .waitForFunction(
          async (tag) => (await (await navigator.serviceWorker.ready).getNotifications({ tag })).length > 0,
          `pushmfa-${JSON.parse(entry.payload).id}`,
          { timeout: 3000 },
        )
        .then(() => true, () => false);
    entry.deliveries = 0;
    do {
      entry.deliveries += 1;
      await pushService.cdp.send("ServiceWorker.deliverPushMessage", {
        origin: new URL(page.url()).origin,
        registrationId,
        data: entry.payload,
      });
    } while (!(await shown()) && entry.deliveries < 4);
    res.writeHead(201).end();
  } catch (e) {
    entry.error = String(e.message ?? e);
    res.writeHead(400).end();
  }
  pushService.received.push(entry);
  for (const w of pushService.waiters.splice(0)) w();
}

// The app's files from another origin (app_origin), and the relay its
// policy lets it reach (set once the relay has started).
const staticApp = { relay: "" };

const card = (status = "open") => page.locator(`article.card[data-status="${status}"]`).first();

const authn = { cdp: null, id: null };

const commands = {
  /** Offline approval: opens the scanner from the home screen, then reads
   *  the QR code with the camera, or pastes `paste`; returns the request
   *  card's fields, or the reason the app gave for refusing it. */
  async offline_request({ paste = null, timeout = 15000 }) {
    await page.click("#scan-offline");
    await page.locator("#offline").waitFor();
    if (paste !== null) {
      await page.fill("#offline-text", paste);
      await page.getByRole("button", { name: "Check", exact: true }).click();
    }
    const card = page.locator("#offline-request");
    const alert = page.locator("#offline p[role=alert]:not(:empty)");
    await card.or(alert).first().waitFor({ timeout });
    if (!(await card.isVisible())) {
      const refused = await alert.textContent();
      await page.getByRole("button", { name: "Cancel", exact: true }).click();
      return { refused };
    }
    const [host, user, service, from, tty] = await card.locator("dd").allTextContents();
    return { host, user, service, from, tty, heading: await card.locator("h2").textContent() };
  },
  /** On the request card: approve and read the code, or "Not me". */
  async offline_answer({ approve = true }) {
    const card = page.locator("#offline-request");
    if (!approve) {
      await card.getByRole("button", { name: "Not me", exact: true }).click();
      return { notice: await page.locator("main p[role=status]").textContent() };
    }
    await card.getByRole("button", { name: "Approve and show the code", exact: true }).click();
    const code = page.locator("#offline-code output[data-code]");
    await code.waitFor();
    return { code: await code.getAttribute("data-code") };
  },
  async offline_done() {
    await page.locator("#offline-code").getByRole("button", { name: "Done", exact: true }).click();
    await page.locator("#scan-offline").waitFor();
    return {};
  },
  async open({ url }) {
    await page.goto(url);
    await page.waitForSelector("main :is(form, section)");
    return { url: page.url(), title: await page.title() };
  },
  async enroll({ name }) {
    await page.fill("#device-name", name);
    await page.click("text=Add account");
    const note = page.locator("main p.done, main p.error").first();
    await note.waitFor({ timeout: 15000 });
    return { message: await note.textContent(), url: page.url(), history: await page.evaluate(() => history.length) };
  },
  async wait_text({ text, timeout = 10000 }) {
    await page.getByText(text).first().waitFor({ timeout });
    return {};
  },
  async enroll_fails({ name }) {
    await page.fill("#device-name", name);
    await page.click("text=Add account");
    const error = page.locator("form p.error:not(:empty)");
    await error.waitFor({ timeout: 15000 });
    return { message: await error.textContent() };
  },
  async rename({ account, label }) {
    page.once("dialog", (d) => d.accept(label));
    await page.locator(`li[data-account]`, { hasText: account }).getByRole("button", { name: "Rename" }).click();
    await page.locator("li[data-account]", { hasText: label }).waitFor();
    return {};
  },
  async remove({ account }) {
    page.once("dialog", (d) => d.accept());
    const item = page.locator(`li[data-account]`, { hasText: account });
    await item.getByRole("button", { name: "Remove" }).click();
    // Done when the list no longer has it (the notice alone can come first).
    await page.getByText(`Removed ${account}.`).waitFor();
    await item.waitFor({ state: "detached" });
    return {};
  },
  async layout() {
    return page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
      smallestTarget: Math.min(
        ...[...document.querySelectorAll("button, input")].map((b) => Math.min(b.getBoundingClientRect().height, 999)),
      ),
    }));
  },
  async text() {
    return { text: await page.locator("body").innerText() };
  },
  async wait_request({ timeout = 15000 }) {
    const c = card();
    await c.waitFor({ timeout });
    const dd = await c.locator("dd").allTextContents();
    const [host, user, service, from, tty] = dd;
    return {
      id: await c.getAttribute("data-request"),
      host,
      user,
      service,
      from,
      tty,
      heading: await c.locator("h2").textContent(),
      shownAt: Number(await c.getAttribute("data-shown-at")),
    };
  },
  async type({ digits }) {
    for (const d of String(digits)) await card().locator(`button[aria-label="digit ${d}"]`).click();
    return { shown: await card().locator("output").textContent() };
  },
  async press({ button }) {
    const c = card();
    const id = await c.getAttribute("data-request");
    await c.getByRole("button", { name: button, exact: true }).click();
    const done = page.locator(`article.card[data-request="${id}"]:not([data-status="sending"])`);
    await done.waitFor();
    return {
      status: await done.getAttribute("data-status"),
      message: await done.locator("p[role=alert]").textContent(),
      answeredAt: Number(await done.getAttribute("data-answered-at")),
    };
  },
  async wait_status({ id, status, timeout = 15000 }) {
    const c = page.locator(`article.card[data-request="${id}"][data-status="${status}"]`);
    await c.waitFor({ timeout });
    return { message: await c.locator("p[role=alert]").textContent() };
  },
  async wait_alert({ id, text, timeout = 15000 }) {
    const c = page.locator(`article.card[data-request="${id}"]`);
    await c.locator("p[role=alert]", { hasText: text }).waitFor({ timeout });
    return { status: await c.getAttribute("data-status"), message: await c.locator("p[role=alert]").textContent() };
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: true });
    return {};
  },
  async hpkeVectors({ rfc, vectors }) {
    // The app's own hpke.js and sealed.js, as this Chromium runs them,
    // against RFC 9180 A.3.1 and protocol v2's sealed vector; the caller
    // compares what comes back with the files.
    return page.evaluate(async ({ rfc, vectors }) => {
      const hpke = await import("./js/hpke.js");
      const sealed = await import("./js/sealed.js");
      const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
      const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      const r = (k) => unhex(rfc[k]);
      const v = (k) => unhex(vectors[k]);
      const eph = { privateKey: await hpke.importPrivateKey(r("skEm"), r("pkEm")), publicRaw: r("pkEm") };
      const { enc, context } = await hpke.setupBaseS(r("pkRm"), r("info"), eph);
      const skR = await hpke.importPrivateKey(r("skRm"), r("pkRm"));
      const receiver = await hpke.setupBaseR(enc, skR, r("pkRm"), r("info"));
      const rfcOut = [];
      for (const e of rfc.encryptions) {
        const ct = hex(await context.seal(unhex(e.aad), unhex(e.pt)));
        const pt = hex(await receiver.open(unhex(e.aad), unhex(e.ct)));
        rfcOut.push({ ct, pt });
      }
      const key = await hpke.importPrivateKey(v("sealed_recipient_secret"), v("sealed_recipient_public"));
      const ch = vectors.sealed_channel;
      const id = vectors.sealed_challenge_id;
      const to = sealed.Direction.toDevice;
      const opened = hex(await sealed.open(key, v("sealed_recipient_public"), to, ch, id, v("sealed_to_device")));
      const ephS = {
        privateKey: await hpke.importPrivateKey(v("sealed_ephemeral_secret"), v("sealed_ephemeral_public")),
        publicRaw: v("sealed_ephemeral_public"),
      };
      const resealed = hex(await sealed.seal(v("sealed_recipient_public"), to, ch, id, unhex(opened), ephS));
      const tampered = v("sealed_to_device");
      tampered[100] ^= 1;
      let refused = "";
      try {
        await sealed.open(key, v("sealed_recipient_public"), to, ch, id, tampered);
      } catch (e) {
        refused = e.message;
      }
      return { enc: hex(enc), rfc: rfcOut, opened, resealed, refused };
    }, { rfc, vectors });
  },
  async sealedCost({ n = 200 }) {
    // Protocol 2's added work on the phone per login, timed in the page
    // with the app's own modules: open a sealed 300-byte request, seal a
    // 280-byte answer to the host.
    return page.evaluate(async (n) => {
      const hpke = await import("./js/hpke.js");
      const sealed = await import("./js/sealed.js");
      const phone = await hpke.generateKeyPair();
      const phoneRaw = new Uint8Array(await crypto.subtle.exportKey("raw", phone.publicKey));
      const host = await hpke.generateKeyPair();
      const hostRaw = new Uint8Array(await crypto.subtle.exportKey("raw", host.publicKey));
      const request = new Uint8Array(300).fill(7);
      const answer = new Uint8Array(280).fill(5);
      const opens = [];
      const seals = [];
      for (let i = 0; i < n; i++) {
        const box = await sealed.seal(phoneRaw, sealed.Direction.toDevice, "ch", "id", request);
        let t = performance.now();
        await sealed.open(phone.privateKey, phoneRaw, sealed.Direction.toDevice, "ch", "id", box);
        opens.push(performance.now() - t);
        t = performance.now();
        await sealed.seal(hostRaw, sealed.Direction.toHost, "ch", "id", answer);
        seals.push(performance.now() - t);
      }
      return { opens, seals };
    }, n);
  },
  async authenticator({ verified = true }) {
    // A platform authenticator with a screen lock (DevTools' virtual
    // authenticator: internal transport, user verification), or, once
    // added, its user verification switched on or off.
    if (!authn.cdp) {
      authn.cdp = await context.newCDPSession(page);
      await authn.cdp.send("WebAuthn.enable");
      const { authenticatorId } = await authn.cdp.send("WebAuthn.addVirtualAuthenticator", {
        options: {
          protocol: "ctap2",
          ctap2Version: "ctap2_1",
          transport: "internal",
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: verified,
          automaticPresenceSimulation: true,
        },
      });
      authn.id = authenticatorId;
    } else {
      await authn.cdp.send("WebAuthn.setUserVerified", { authenticatorId: authn.id, isUserVerified: verified });
    }
    const { credentials } = await authn.cdp.send("WebAuthn.getCredentials", { authenticatorId: authn.id });
    return { credentials: credentials.length };
  },
  async forge_assertions({ how }) {
    // Makes the page's passkey calls lie, as a broken or malicious app
    // would: "other-bytes" signs another challenge than the approval's,
    // "unverified" lets the authenticator skip the screen lock. The host
    // must refuse both.
    await page.evaluate((how) => {
      const real = navigator.credentials.get.bind(navigator.credentials);
      navigator.credentials.get = (options) => {
        if (how === "other-bytes") options.publicKey.challenge = new Uint8Array(32).fill(1);
        if (how === "unverified") options.publicKey.userVerification = "discouraged";
        return real(options);
      };
    }, how);
    return {};
  },
  async reload() {
    await page.reload();
    await page.waitForSelector("main section");
    return {};
  },
  async keys() {
    // What IndexedDB holds: each account's private key must be a
    // non-extractable CryptoKey that still signs.
    return page.evaluate(async () => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open("pushmfa", 1);
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const all = await new Promise((res) => {
        const r = db.transaction("accounts").objectStore("accounts").getAll();
        r.onsuccess = () => res(r.result);
      });
      const out = [];
      for (const a of all) {
        const k = a.keys.privateKey;
        let exported = "no";
        try {
          await crypto.subtle.exportKey("pkcs8", k);
          exported = "yes";
        } catch (e) {
          exported = e.name;
        }
        const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, k, new Uint8Array([1]));
        // Protocol 2: the encryption key must be just as locked in.
        const s = a.sealKeys?.privateKey;
        let sealExported = "no key";
        if (s) {
          try {
            await crypto.subtle.exportKey("pkcs8", s);
            sealExported = "yes";
          } catch (e) {
            sealExported = e.name;
          }
        }
        out.push({
          protocol: a.protocol ?? 1,
          sealExtractable: s?.extractable ?? null,
          sealExported,
          id: a.id,
          type: k.type,
          extractable: k.extractable,
          exported,
          sigLen: sig.byteLength,
          // The relay credentials, so a test can act as someone who stole them.
          channel: a.channelId,
          deviceToken: a.deviceToken,
        });
      }
      return { accounts: out };
    });
  },
  async static_app_relay({ relay }) {
    staticApp.relay = relay;
    return {};
  },
  async static_app() {
    // The app's files from an origin of the admin's own (app_origin): a
    // plain static server whose policy lets the page reach that relay.
    const root = fileURLToPath(new URL("..", import.meta.url));
    const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
      ".svg": "image/svg+xml", ".webmanifest": "application/manifest+json" };
    const csp = () =>
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' ${staticApp.relay}; manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
    const server = createServer(async (req, res) => {
      const path = normalize(new URL(req.url, "http://x").pathname).replace(/^\/+/, "") || "index.html";
      if (path.startsWith("..") || path.startsWith("tests") || path.startsWith("node_modules") || path.startsWith("package")) {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = await readFile(join(root, path));
        res.writeHead(200, { "Content-Type": types[extname(path)] ?? "application/octet-stream", "Content-Security-Policy": csp() });
        res.end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    return { origin: `http://127.0.0.1:${server.address().port}` };
  },
  async push_service() {
    const server = createServer((req, res) => onPush(req, res));
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    pushService.origin = `http://127.0.0.1:${server.address().port}`;
    pushService.ua = createECDH("prime256v1");
    pushService.ua.generateKeys();
    pushService.auth = randomBytes(16);
    const sub = {
      endpoint: `${pushService.origin}/push/${b64url(randomBytes(8))}`,
      keys: { p256dh: b64url(pushService.ua.getPublicKey()), auth: b64url(pushService.auth) },
    };
    await context.grantPermissions(["notifications"]);
    await context.addInitScript((s) => {
      globalThis.pushmfaSubscribe = async () => s;
    }, sub);
    return { origin: pushService.origin };
  },
  async enable_notifications() {
    pushService.cdp = await context.newCDPSession(page);
    pushService.cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
      for (const r of registrations) if (!r.isDeleted) pushService.registrations.set(r.scopeURL, r.registrationId);
    });
    await pushService.cdp.send("ServiceWorker.enable");
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.getByRole("button", { name: "Turn on notifications" }).click();
    await page.locator('main [data-push="on"], main p.error').first().waitFor();
    return { message: await page.locator("main > p[role=status]").first().textContent() };
  },
  async pushes({ count = 1, timeout = 15000 }) {
    const until = Date.now() + timeout;
    while (pushService.received.length < count && Date.now() < until) {
      await new Promise((r) => {
        pushService.waiters.push(r);
        setTimeout(r, until - Date.now());
      });
    }
    // Delivered is not yet shown: the service worker handles it next.
    await page
      .waitForFunction(
        async (n) => (await (await navigator.serviceWorker.ready).getNotifications()).length >= n,
        count,
        // Its own time: a push received late must still get its turn.
        { timeout: Math.max(10_000, until - Date.now()) },
      )
      .catch(() => undefined);
    const notifications = await page.evaluate(async () =>
      (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({
        title: n.title,
        body: n.body,
        tag: n.tag,
        id: n.data?.id,
      })),
    );
    return { received: pushService.received, notifications };
  },
  async tap_notification({ id }) {
    const [sw] = context.serviceWorkers();
    const how = await sw.evaluate((i) => self.openRequest(i), id);
    const opened = page.locator(`article.card[data-request="${id}"][data-opened="notification"]`);
    await opened.waitFor({ timeout: 5000 });
    return { how };
  },
  async first_render({ url, cpu = 4, latencyMs = 150, kbps = 1600 }) {
    // A cold start on a throttled mid-range phone: a fresh context (no
    // cache, no service worker), CPU slowed down, a slow mobile network.
    const ctx = await browser.newContext({ viewport: { width: 360, height: 800 }, isMobile: true, hasTouch: true });
    const p = await ctx.newPage();
    const cdp = await ctx.newCDPSession(p);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: cpu });
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: latencyMs,
      downloadThroughput: (kbps * 1000) / 8,
      uploadThroughput: (kbps * 500) / 8,
    });
    let bytes = 0;
    p.on("response", async (r) => {
      const b = await r.body().catch(() => Buffer.alloc(0));
      bytes += b.length;
    });
    await p.goto(url, { waitUntil: "load" });
    await p.waitForSelector("main section");
    const t = await p.evaluate(() => ({
      fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
      ready: performance.now(),
    }));
    await ctx.close();
    return { ...t, bytes };
  },
  async sw_ready() {
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 10000 }).catch(
      () => page.reload(),
    );
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 10000 });
    return {};
  },
  async status() {
    const el = page.locator("#status");
    return { text: await el.textContent(), offline: await el.evaluate((e) => e.classList.contains("offline")) };
  },
  async wait_status_text({ text, timeout = 15000 }) {
    await page.locator("#status", { hasText: text }).waitFor({ timeout });
    return {};
  },
  async offline({ on }) {
    await context.setOffline(Boolean(on));
    return {};
  },
  async problems() {
    return { problems };
  },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    const msg = JSON.parse(line);
    if (msg.cmd === "quit") break;
    const run = commands[msg.cmd];
    if (!run) throw new Error(`unknown command ${msg.cmd}`);
    reply = { ok: true, ...(await run(msg)) };
  } catch (e) {
    reply = { ok: false, error: String(e?.message ?? e).split("\n")[0] };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
await browser.close();
// stdin (and a push service, if started) would keep Node running.
process.exit(0);
