// The relay's device API (docs/protocol.md, "Relay API"): register a key,
// long-poll the pending requests with a cursor, send an answer. Every
// failure becomes an ApiError whose `kind` the views can show.

export class ApiError extends Error {
  /** kind: "offline" | "gone" (channel or request no longer there) |
   *  "refused" (the relay said no) | "busy" (429/503). */
  constructor(kind, message, status = 0) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

async function call(url, options) {
  let resp;
  try {
    resp = await fetch(url, { cache: "no-store", referrerPolicy: "no-referrer", ...options });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("offline", "No connection to the relay.");
  }
  if (resp.ok || resp.status === 304) return resp;
  let detail = "";
  try {
    detail = (await resp.json()).error ?? "";
  } catch {
    // not JSON: keep the status alone
  }
  const kind =
    resp.status === 404 || resp.status === 409 || resp.status === 410
      ? "gone"
      : resp.status === 429 || resp.status === 503
        ? "busy"
        : "refused";
  throw new ApiError(kind, detail || `The relay answered ${resp.status}.`, resp.status);
}

/** Registers this device's key for an enrollment; returns the channel. */
export async function register(relay, enrollmentId, registration) {
  const resp = await call(`${relay}/v1/enrollments/${encodeURIComponent(enrollmentId)}/device`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(registration),
  });
  return resp.json();
}

/** Waits up to `waitSecs` for the host's verdict on this device's
 *  registration; null if none came in that time. */
export async function enrollmentOutcome(relay, enrollmentId, deviceToken, waitSecs) {
  const url = `${relay}/v1/enrollments/${encodeURIComponent(enrollmentId)}/outcome?wait=${waitSecs}`;
  const resp = await call(url, { headers: { Authorization: `Bearer ${deviceToken}` } });
  return resp.status === 200 ? resp.json() : null;
}

/** Waits up to `waitSecs` for the pending list to differ from `cursor`
 *  (the ETag of the last list; null for "now"). Returns { changed, list,
 *  cursor }; `changed` is false when the wait ended with nothing new. */
export async function pending(account, cursor, waitSecs, signal) {
  const headers = { Authorization: `Bearer ${account.deviceToken}` };
  if (cursor) headers["If-None-Match"] = cursor;
  const url = `${account.relay}/v1/channels/${encodeURIComponent(account.channelId)}/challenges?wait=${waitSecs}`;
  const resp = await call(url, { headers, signal });
  if (resp.status === 304) return { changed: false, list: null, cursor };
  return { changed: true, list: await resp.json(), cursor: resp.headers.get("ETag") };
}

/** Sends a signed answer to one request. */
export async function answer(account, challengeId, body) {
  const url = `${account.relay}/v1/channels/${encodeURIComponent(account.channelId)}/challenges/${encodeURIComponent(challengeId)}/response`;
  await call(url, {
    method: "POST",
    headers: { Authorization: `Bearer ${account.deviceToken}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}
