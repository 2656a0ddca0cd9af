// The wire formats of docs/protocol.md, as protocol/src/signed.rs and
// protocol/src/enroll.rs encode them. No DOM, no network, no keys: this
// module runs in the browser and in Node against the same test vectors.

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export const CHALLENGE_TAG = enc.encode("pushmfa-challenge-v1\0");
export const APPROVAL_TAG = enc.encode("pushmfa-approval-v1\0");
export const ENROLL_MAC_TAG = enc.encode("pushmfa-enroll-v1\0");
export const ENROLLMENT_OUTCOME_TAG = enc.encode("pushmfa-enrollment-outcome-v1\0");
export const ENROLL_MAC_TAG_V2 = enc.encode("pushmfa-enroll-v2\0");
export const ENROLLMENT_OUTCOME_TAG_V2 = enc.encode("pushmfa-enrollment-outcome-v2\0");
export const SIGNATURE_LEN = 64;
export const MAX_FIELD_LEN = 255;
export const PUBLIC_KEY_LEN = 65;
export const NO_NUMBER = 0xff;
export const Decision = Object.freeze({ approve: 1, deny: 2, fraud: 3 });

/** base64url without padding, as every binary value on the wire. */
export function b64urlEncode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decodes base64url (padding optional); throws on anything else. */
export function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
    throw new Error("not base64url");
  }
  const b64 = text.replace(/=+$/, "").replaceAll("-", "+").replaceAll("_", "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** What a user is shown of a caller-controlled text: control, zero-width
 *  and bidi characters become "?" (protocol/src/text.rs). */
export function sanitize(text) {
  // eslint-disable-next-line no-control-regex
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]/gu, "?");
}

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.at = 0;
  }
  take(n) {
    if (this.b.length - this.at < n) throw new Error("message truncated");
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  tag(tag) {
    if (!equalBytes(this.b.subarray(0, tag.length), tag)) {
      throw new Error("message does not start with the expected tag");
    }
    this.at = tag.length;
  }
  text() {
    const n = this.take(1)[0];
    return dec.decode(this.take(n));
  }
  u64() {
    // subarray() keeps the parent's offset: view exactly these 8 bytes.
    const part = this.take(8);
    const v = new DataView(part.buffer, part.byteOffset, 8).getBigUint64(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("time out of range");
    return Number(v);
  }
  end() {
    if (this.at !== this.b.length) throw new Error("trailing bytes after the message");
  }
}

/** What a request shows of a decoded challenge: its text fields cleaned
 *  for display. */
export function shownContext(challenge) {
  return {
    host: sanitize(challenge.hostName),
    user: sanitize(challenge.context.user),
    service: sanitize(challenge.context.service),
    rhost: sanitize(challenge.context.rhost),
    tty: sanitize(challenge.context.tty),
  };
}

/** Decodes a host-signed challenge (its signature is checked elsewhere). */
export function decodeChallenge(bytes) {
  const r = new Reader(bytes);
  r.tag(CHALLENGE_TAG);
  const c = {
    id: r.take(32).slice(),
    hostId: r.take(32).slice(),
    hostName: r.text(),
    context: { user: r.text(), service: r.text(), rhost: r.text(), tty: r.text() },
    issuedAt: r.u64(),
    expiresAt: r.u64(),
  };
  r.end();
  return c;
}

class Writer {
  constructor() {
    this.parts = [];
  }
  bytes(b) {
    this.parts.push(Uint8Array.from(b));
  }
  byte(v) {
    this.parts.push(Uint8Array.of(v));
  }
  text(s) {
    const b = enc.encode(s);
    if (b.length > MAX_FIELD_LEN) throw new Error("text field too long");
    this.byte(b.length);
    this.bytes(b);
  }
  u64(v) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v));
    this.bytes(b);
  }
  u16Prefixed(b) {
    this.byte((b.length >> 8) & 0xff);
    this.byte(b.length & 0xff);
    this.bytes(b);
  }
  done() {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** The bytes a device signs to answer `challenge`. */
export function encodeApproval(challenge, decision, number, deviceId) {
  if (decision === Decision.approve && !(Number.isInteger(number) && number >= 0 && number <= 99)) {
    throw new Error("approving needs the number shown at the login prompt (0-99)");
  }
  const w = new Writer();
  w.bytes(APPROVAL_TAG);
  w.bytes(challenge.id);
  w.bytes(challenge.hostId);
  const c = challenge.context;
  for (const f of [c.user, c.service, c.rhost, c.tty]) w.text(f);
  w.u64(challenge.issuedAt);
  w.u64(challenge.expiresAt);
  w.byte(decision);
  w.byte(decision === Decision.approve ? number : NO_NUMBER);
  w.bytes(deviceId);
  return w.done();
}

/** What the registration MAC covers (protocol/src/enroll.rs). */
export function registrationMacInput(enrollmentId, hostId, publicKey, deviceName) {
  const w = new Writer();
  w.bytes(ENROLL_MAC_TAG);
  for (const part of [enc.encode(enrollmentId), hostId, publicKey, enc.encode(deviceName)]) {
    w.u16Prefixed(part);
  }
  return w.done();
}

/** Protocol 2's registration MAC input: v1's fields, then the encryption
 *  key and the passkey (empty when none), each u16-length-prefixed. */
export function registrationMacInputV2(enrollmentId, hostId, publicKey, deviceName, encryptionKey, passkey) {
  const w = new Writer();
  w.bytes(ENROLL_MAC_TAG_V2);
  for (const part of [enc.encode(enrollmentId), hostId, publicKey, enc.encode(deviceName), encryptionKey, passkey]) {
    w.u16Prefixed(part);
  }
  return w.done();
}

/** Protocol 2's verdict: v1's, with the host's encryption key after the
 *  device key (protocol/src/signed.rs, enrollment_outcome_v2). */
export function enrollmentOutcomeMessageV2(enrollmentId, publicKey, hostEncryptionKey, accepted) {
  const w = new Writer();
  w.bytes(ENROLLMENT_OUTCOME_TAG_V2);
  w.u16Prefixed(enc.encode(enrollmentId));
  w.u16Prefixed(publicKey);
  w.u16Prefixed(hostEncryptionKey);
  w.byte(accepted ? 1 : 0);
  return w.done();
}

/** A sealed request's contents (protocol/src/envelope.rs): the encoded
 *  challenge and the host's signature. */
export function splitChallenge(plain) {
  if (plain.length < SIGNATURE_LEN) throw new Error("sealed request: truncated");
  const at = plain.length - SIGNATURE_LEN;
  return { encoded: plain.slice(0, at), signature: plain.slice(at) };
}

/** A sealed answer's contents: u16 length and the approval, then the
 *  device's signature, then the passkey assertion when there is one
 *  (authenticatorData, clientDataJSON, signature, each u16-prefixed). */
export function encodeAnswer(approval, signature, assertion = null) {
  if (signature.length !== SIGNATURE_LEN) throw new Error("signature is not 64 bytes");
  const w = new Writer();
  w.u16Prefixed(approval);
  w.bytes(signature);
  if (assertion) {
    for (const part of [assertion.authenticatorData, assertion.clientDataJSON, assertion.signature]) {
      if (part.length > 1024) throw new Error("assertion too long");
      w.u16Prefixed(part);
    }
  }
  return w.done();
}

/** A passkey as the registration MAC covers it (protocol/src/passkey.rs):
 *  u16-prefixed origin and credential id, then the 65-byte public key. */
export function encodePasskey(origin, credentialId, publicKey) {
  if (publicKey.length !== PUBLIC_KEY_LEN) throw new Error("passkey public key is not 65 bytes");
  const w = new Writer();
  w.u16Prefixed(enc.encode(origin));
  w.u16Prefixed(credentialId);
  w.bytes(publicKey);
  return w.done();
}

/** What the host signs to accept (or refuse) a registration
 *  (protocol/src/signed.rs, enrollment_outcome). */
export function enrollmentOutcomeMessage(enrollmentId, publicKey, accepted) {
  const w = new Writer();
  w.bytes(ENROLLMENT_OUTCOME_TAG);
  w.u16Prefixed(enc.encode(enrollmentId));
  w.u16Prefixed(publicKey);
  w.byte(accepted ? 1 : 0);
  return w.done();
}

/** Parses an enrollment link (`https://relay/app/#enroll?...`) or URI
 *  (`pushmfa://enroll?...`). Throws an Error that says what is wrong. */
export function parseEnrollLink(link) {
  const text = String(link).trim();
  if (text.length > 4096) throw new Error("the link is too long to be an enrollment link");
  let query;
  const hash = text.indexOf("#enroll?");
  if (text.startsWith("pushmfa://enroll?")) query = text.slice("pushmfa://enroll?".length);
  else if (hash >= 0) query = text.slice(hash + "#enroll?".length);
  else throw new Error("this is not a pushmfa enrollment link (run pushmfa enroll on the computer)");
  const params = new Map();
  for (const kv of query.split("&")) {
    const i = kv.indexOf("=");
    if (i > 0 && !params.has(kv.slice(0, i))) {
      params.set(kv.slice(0, i), decodeURIComponent(kv.slice(i + 1)));
    }
  }
  const get = (name) => {
    const v = params.get(name);
    if (v === undefined) throw new Error(`the enrollment link has no ${name}`);
    return v;
  };
  if (get("v") !== "1") throw new Error("this enrollment link is from a newer version of pushmfa");
  const bytes = (name, len) => {
    let b;
    try {
      b = b64urlDecode(get(name));
    } catch {
      throw new Error(`the enrollment link's ${name} is malformed`);
    }
    if (b.length !== len) throw new Error(`the enrollment link's ${name} is malformed`);
    return b;
  };
  const fields = {
    relay: get("relay"),
    enrollmentId: get("id"),
    secret: bytes("secret", 32),
    hostKey: bytes("host_key", PUBLIC_KEY_LEN),
    hostName: get("host"),
    issuer: get("issuer"),
    account: get("account"),
    // The host wants approvals verified by the screen lock: make a passkey.
    userVerification: params.get("uv") === "1",
  };
  // Where the phone will connect: an http(s) URL with a host and nothing a
  // URL parser or a screen could read two ways (protocol/src/enroll.rs).
  if (!/^https?:\/\/[^/]/.test(fields.relay) || /[\s#?\u0000-\u001f\u007f-\u009f]/.test(fields.relay)) {
    throw new Error("the enrollment link's relay is malformed");
  }
  fields.relay = fields.relay.replace(/\/+$/, "");
  return fields;
}
