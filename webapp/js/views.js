// The screens. Views build DOM from plain data and report what the user
// did through the handlers they are given; they never touch storage, the
// network or keys (main.js wires them). Text goes in as textContent only.

/** Creates an element: h("p", { class: "x" }, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c);
  }
  return el;
}

/** Who signs in where, as a request shows it (already cleaned). */
export function contextList(shown) {
  return h(
    "dl",
    {},
    h("dt", {}, "Host"),
    h("dd", {}, shown.host),
    h("dt", {}, "User"),
    h("dd", {}, shown.user),
    h("dt", {}, "Service"),
    h("dd", {}, shown.service),
    h("dt", {}, "From"),
    h("dd", {}, shown.rhost || "this computer"),
    h("dt", {}, "Terminal"),
    h("dd", {}, shown.tty || "-"),
  );
}

function title(account) {
  return account.label || `${account.account} on ${account.hostName}`;
}

/** First run, or no accounts: install first, then scan. */
export function welcome(handlers) {
  const input = h("input", { id: "link", type: "url", autocomplete: "off", placeholder: "https://…/app/#enroll?…" });
  return h(
    "section",
    { "aria-labelledby": "welcome-title" },
    h("h2", { id: "welcome-title" }, "Set up this phone"),
    h(
      "ol",
      { class: "steps" },
      h("li", {}, "Add this app to your home screen first (Share, then Add to Home Screen). On iPhone, only home-screen apps keep their keys and get notifications (iOS 16.4 or later)."),
      h("li", {}, "On the computer, run pushmfa enroll, and scan the QR code it shows with your phone's camera."),
    ),
    h(
      "form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          handlers.onLink(input.value);
        },
      },
      h("label", { for: "link" }, "Or paste the enrollment link"),
      input,
      h("div", { class: "actions" }, h("button", { class: "primary approve", type: "submit" }, "Continue")),
    ),
  );
}

/** Confirm an enrollment link: which host and user, and this phone's name. */
export function enrollForm(details, handlers) {
  const name = h("input", { id: "device-name", value: "My phone", maxlength: "64", autocomplete: "off" });
  const message = h("p", { role: "alert", class: "error" });
  const add = h("button", { class: "primary", type: "submit" }, "Add account");
  const form = h(
    "form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        add.disabled = true;
        // The computer checks the registration before the account counts.
        add.textContent = "Waiting for the computer to confirm…";
        message.textContent = "";
        const error = await handlers.onEnroll(name.value);
        if (error) {
          message.textContent = error;
          add.textContent = "Add account";
          add.disabled = false;
        }
      },
    },
    h("h2", {}, "Add an account"),
    h(
      "dl",
      {},
      h("dt", {}, "User"),
      h("dd", { "data-field": "account" }, details.account),
      h("dt", {}, "Host"),
      h("dd", { "data-field": "host" }, details.hostName),
      h("dt", {}, "Issuer"),
      h("dd", {}, details.issuer),
    ),
    h("label", { for: "device-name" }, "Name of this phone (shown to the administrator)"),
    name,
    message,
    h("div", { class: "actions" }, add, h("button", { type: "button", onclick: handlers.onCancel }, "Cancel")),
  );
  return form;
}

const STATUS_TEXT = {
  sending: ["muted", "Sending…"],
  approved: ["done", "Approved. The sign-in continues if the number matches."],
  denied: ["done", "Denied. The sign-in was refused."],
  reported: ["done", "Reported as not you. Further requests are paused; tell your administrator."],
  expired: ["error", "This request expired."],
  gone: ["error", "Answered on another device, or withdrawn."],
};

/** One pending sign-in: what it is, a countdown, the number pad. */
export class RequestCard {
  constructor(request, handlers) {
    this.request = request;
    this.typed = "";
    this.status = "open";
    const s = request.shown;
    this.display = h("output", { class: "typed", "aria-label": "Number typed", "aria-live": "polite" });
    this.countdown = h("p", { class: "countdown muted" });
    this.message = h("p", { role: "alert" });
    const digit = (d) =>
      h("button", { type: "button", "aria-label": `digit ${d}`, onclick: () => this.press(String(d)) }, String(d));
    this.keys = [1, 2, 3, 4, 5, 6, 7, 8, 9].map(digit);
    this.keys.push(
      h("button", { type: "button", "aria-label": "delete last digit", onclick: () => this.press("back") }, "⌫"),
      digit(0),
      h("button", { type: "button", "aria-label": "clear the number", onclick: () => this.press("clear") }, "C"),
    );
    this.approve = h("button", { type: "button", class: "approve", onclick: () => handlers.onAnswer(this, "approve") }, "Approve");
    this.deny = h("button", { type: "button", onclick: () => handlers.onAnswer(this, "deny") }, "Deny");
    this.fraud = h("button", { type: "button", class: "danger", onclick: () => handlers.onAnswer(this, "fraud") }, "Not me");
    const headingId = `req-${request.id.slice(0, 12)}`;
    this.el = h(
      "article",
      {
        class: "card",
        tabindex: "0",
        "aria-labelledby": headingId,
        "data-request": request.id,
        onkeydown: (e) => this.key(e),
      },
      h("h2", { id: headingId }, `${s.user} → ${s.service} on ${s.host}`),
      contextList(s),
      this.countdown,
      h("p", { class: "prompt" }, "Type the number shown at the sign-in prompt:"),
      this.display,
      h("div", { class: "keypad" }, this.keys),
      h("div", { class: "actions" }, this.approve, this.deny, this.fraud),
      this.message,
    );
    this.render();
    this.tick(Date.now());
    // When it became visible (epoch ms, sub-millisecond): for benchmarks.
    this.el.dataset.shownAt = String(performance.timeOrigin + performance.now());
  }

  key(e) {
    if (/^[0-9]$/.test(e.key)) this.press(e.key);
    else if (e.key === "Backspace") this.press("back");
    else return;
    e.preventDefault();
  }

  press(k) {
    if (this.status !== "open") return;
    if (k === "back") this.typed = this.typed.slice(0, -1);
    else if (k === "clear") this.typed = "";
    else if (this.typed.length < 2) this.typed += k;
    this.render();
  }

  /** The typed number, or null when none was typed. */
  number() {
    return this.typed === "" ? null : Number(this.typed);
  }

  setStatus(status, detail) {
    this.status = status;
    this.detail = detail;
    this.render();
    // Opened again (after a refused answer): the countdown shows at once.
    if (status === "open") this.tick(Date.now());
  }

  tick(now) {
    if (this.status !== "open") return;
    const left = Math.ceil((this.request.deadline - now) / 1000);
    if (left <= 0) this.setStatus("expired");
    else this.countdown.textContent = `Expires in ${left} s`;
  }

  render() {
    this.display.textContent = this.typed.padEnd(2, "·");
    const open = this.status === "open";
    for (const b of this.keys) b.disabled = !open;
    this.approve.disabled = !open || this.typed === "";
    this.deny.disabled = !open;
    this.fraud.disabled = !open;
    this.el.dataset.status = this.status;
    // Once answered (or gone), only what happened stays on the card.
    this.el.classList.toggle("closed", !open && this.status !== "sending");
    if (open) {
      this.message.textContent = this.detail ?? "";
      this.message.className = "error";
      return;
    }
    const [cls, text] = STATUS_TEXT[this.status] ?? ["error", this.detail ?? ""];
    this.message.className = cls;
    this.message.textContent = this.status === "error" ? this.detail : text;
    if (this.status !== "sending") this.countdown.textContent = "";
  }
}

/** Whether sign-in requests wake this phone, and the tap that turns it on
 *  (browsers ask for permission only from a tap). */
export function notifications(state, handlers) {
  const text = {
    on: "Notifications are on: a sign-in request wakes this phone.",
    off: "Turn on notifications to hear of a sign-in request when this app is closed.",
    unsupported:
      "This browser cannot show notifications from web apps (on iPhone: add the app to the home screen first). Keep the app open while you sign in.",
  }[state];
  return h(
    "section",
    { "aria-labelledby": "notify-title", "data-push": state },
    h("h2", { id: "notify-title" }, "Notifications"),
    h("p", { class: "muted" }, text),
    state === "off"
      ? h("button", { type: "button", class: "primary", onclick: handlers.onEnable }, "Turn on notifications")
      : null,
  );
}

/** The way into offline approval, for when a sign-in prompt shows a QR
 *  code (no network on the computer or on this phone). */
export function offlineEntry(handlers) {
  return h(
    "section",
    { "aria-labelledby": "offline-entry-title" },
    h("h2", { id: "offline-entry-title" }, "No network?"),
    h("p", { class: "muted" }, "If the sign-in prompt shows a QR code, scan it here for a code to type."),
    h("button", { type: "button", class: "primary", id: "scan-offline", onclick: handlers.onScan }, "Scan a sign-in code"),
  );
}

/** The accounts on this phone, with rename and remove. */
export function accountList(accounts, handlers) {
  return h(
    "section",
    { "aria-labelledby": "accounts-title" },
    h("h2", { id: "accounts-title" }, "Accounts"),
    h(
      "ul",
      { class: "accounts" },
      accounts.map((a) =>
        h(
          "li",
          { "data-account": a.id },
          h("strong", {}, title(a)),
          h("div", { class: "muted" }, `${a.issuer} · ${a.deviceName}`),
          h(
            "div",
            { class: "row" },
            h("button", { type: "button", onclick: () => handlers.onRename(a) }, "Rename"),
            h("button", { type: "button", class: "danger", onclick: () => handlers.onRemove(a) }, "Remove"),
          ),
        ),
      ),
    ),
    h("p", { class: "muted" }, "To add another account, scan the next enrollment QR code with the camera."),
  );
}
