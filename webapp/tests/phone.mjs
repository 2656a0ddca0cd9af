// A phone for the end-to-end tests: the web app in Debian's Chromium
// (headless), driven by playwright-core. The Rust scenario that starts the
// real relay, helper and PAM logins sends one JSON command per line on
// stdin; each gets one JSON line back on stdout: {"ok": true, ...} or
// {"ok": false, "error": "..."}.
//
//   node webapp/tests/phone.mjs [--width 360] [--dark]

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const width = Number(args[args.indexOf("--width") + 1]) || 360;
const executablePath = process.env.PUSHMFA_CHROMIUM ?? "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({
  viewport: { width, height: 800 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  colorScheme: args.includes("--dark") ? "dark" : "light",
  // Most scenarios test the page, not the offline cache.
  serviceWorkers: args.includes("--service-workers") ? "allow" : "block",
});
let page = await context.newPage();
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});

const card = (status = "open") => page.locator(`article.card[data-status="${status}"]`).first();

const commands = {
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
  async text() {
    return { text: await page.locator("body").innerText() };
  },
  async wait_request({ timeout = 15000 }) {
    const c = card();
    await c.waitFor({ timeout });
    const dd = await c.locator("dd").allTextContents();
    const [host, user, service, from, tty] = dd;
    return { id: await c.getAttribute("data-request"), host, user, service, from, tty, heading: await c.locator("h2").textContent() };
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
    return { status: await done.getAttribute("data-status"), message: await done.locator("p[role=alert]").textContent() };
  },
  async wait_status({ id, status, timeout = 15000 }) {
    const c = page.locator(`article.card[data-request="${id}"][data-status="${status}"]`);
    await c.waitFor({ timeout });
    return { message: await c.locator("p[role=alert]").textContent() };
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: true });
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
        out.push({ id: a.id, type: k.type, extractable: k.extractable, exported, sigLen: sig.byteLength });
      }
      return { accounts: out };
    });
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
