// The offline approval screens: the camera and a paste box, the request to
// approve, then the code. Like views.js, they build DOM from plain data and
// report through handlers; main.js wires them to the camera and the keys.

import { contextList, h } from "./views.js";

/** Scan the QR code at the sign-in prompt, or paste its text. */
export function offlineScan(handlers) {
  const video = h("video", { class: "camera", playsinline: true, muted: true, "aria-label": "Camera" });
  const cameraNote = h("p", { class: "muted camera-note" });
  const message = h("p", { role: "alert", class: "error" });
  const text = h("textarea", { id: "offline-text", rows: "4", autocomplete: "off", spellcheck: "false", placeholder: "PUSHMFA-OFFLINE:…" });
  const el = h(
    "section",
    { "aria-labelledby": "offline-title", id: "offline" },
    h("h2", { id: "offline-title" }, "Sign in without network"),
    h(
      "p",
      { class: "muted" },
      "When the sign-in prompt shows a QR code, point the camera at it. This works with no network on the phone or the computer.",
    ),
    video,
    cameraNote,
    message,
    h(
      "form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          handlers.onText(text.value);
        },
      },
      h("label", { for: "offline-text" }, "No camera? Paste the line that starts with PUSHMFA-OFFLINE:"),
      text,
      h(
        "div",
        { class: "actions" },
        h("button", { class: "primary", type: "submit" }, "Check"),
        h("button", { type: "button", onclick: handlers.onCancel }, "Cancel"),
      ),
    ),
  );
  return {
    el,
    video,
    /** Why the request cannot be used. */
    say: (msg) => {
      message.textContent = msg;
    },
    /** Why the camera cannot be used (pasting still works). */
    noCamera: (msg) => {
      video.hidden = true;
      cameraNote.textContent = msg;
    },
  };
}

/** A checked request: who signs in where, then approve (shows the code) or
 *  not. */
export function offlineCard(request, handlers) {
  const s = request.shown;
  return h(
    "article",
    { class: "card", id: "offline-request", "aria-labelledby": "offline-request-title" },
    h("h2", { id: "offline-request-title" }, `${s.user} → ${s.service} on ${s.host}`),
    contextList(s),
    h("p", { class: "prompt" }, "Signed by the computer. Approve only a sign-in you started yourself: the code lets it in."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "approve", onclick: handlers.onApprove }, "Approve and show the code"),
      h("button", { type: "button", class: "danger", onclick: handlers.onReject }, "Not me"),
    ),
  );
}

/** The code to type at the prompt. */
export function offlineCode(request, code, handlers) {
  const s = request.shown;
  return h(
    "article",
    { class: "card", id: "offline-code", "aria-labelledby": "offline-code-title" },
    h("h2", { id: "offline-code-title" }, `${s.user} → ${s.service} on ${s.host}`),
    h("p", {}, "Type this code at the sign-in prompt:"),
    h("output", { class: "offline-code", "data-code": code, "aria-label": `Code ${code}` }, code),
    h("p", { class: "muted" }, "It works for this sign-in only, until its prompt times out."),
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: handlers.onDone }, "Done")),
  );
}
