// Offline approval (docs/protocol.md, "Offline approval"): a request read
// from the login prompt's QR code, or pasted, is checked against the host
// key enrolled for its account; approving it gives the 8-digit code the
// user types at that prompt. No network, no DOM.

import * as wc from "./crypto.js";
import { SIGNATURE_LEN, decodeChallenge, equalBytes, sanitize, shownContext, splitChallenge } from "./protocol.js";

const enc = new TextEncoder();
export const KEY_INFO = enc.encode("pushmfa-offline-v1");
export const CODE_TAG = enc.encode("pushmfa-offline-v1\0");
export const TEXT_PREFIX = "PUSHMFA-OFFLINE:";
/** Longest request text read, whitespace removed. */
export const MAX_TEXT_LEN = 4096;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** The account's offline key, derived from the enrollment secret: a
 *  non-extractable HMAC key (the page can use it, never read it). */
export async function deriveKey(secret, deviceId) {
  const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  const info = new Uint8Array(KEY_INFO.length + deviceId.length);
  info.set(KEY_INFO);
  info.set(deviceId, KEY_INFO.length);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info },
    ikm,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign"],
  );
}

/** The code for `encoded` (the signed challenge's bytes), as "1234 5678". */
export async function responseCode(key, encoded) {
  const input = new Uint8Array(CODE_TAG.length + encoded.length);
  input.set(CODE_TAG);
  input.set(encoded, CODE_TAG.length);
  const tag = new DataView(await crypto.subtle.sign("HMAC", key, input));
  const value = tag.getBigUint64(0) % 100_000_000n;
  const digits = value.toString().padStart(8, "0");
  return `${digits.slice(0, 4)} ${digits.slice(4)}`;
}

/** RFC 4648 base32 (upper case, no padding) to bytes; throws on a stray
 *  character or leftover bits, so one byte string has one text. */
export function base32Decode(text) {
  const out = [];
  let acc = 0;
  let bits = 0;
  for (const c of text) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new Error(`The request has a character that does not belong (${JSON.stringify(c)}); copy it whole.`);
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if (bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) throw new Error("The request is cut short or damaged; copy it again.");
  return Uint8Array.from(out);
}

/** The challenge bytes and host signature in a request text (whitespace
 *  and letter case ignored), or an Error saying what is wrong with it. */
export function parseRequestText(text) {
  const compact = String(text).replace(/\s+/g, "");
  if (compact.length > MAX_TEXT_LEN) throw new Error("That is too long for a sign-in request.");
  const upper = compact.toUpperCase();
  if (!upper.startsWith(TEXT_PREFIX)) {
    throw new Error("That is not a pushmfa sign-in request (it starts with PUSHMFA-OFFLINE:).");
  }
  const plain = base32Decode(upper.slice(TEXT_PREFIX.length));
  if (plain.length <= SIGNATURE_LEN) throw new Error("The request is cut short or damaged; copy it again.");
  const { encoded, signature } = splitChallenge(plain);
  try {
    decodeChallenge(encoded);
  } catch {
    throw new Error("The request is cut short or damaged; copy it again.");
  }
  return { encoded, signature };
}

/** A request checked the way docs/protocol.md obliges a device to: signed
 *  by the host key of an account on this phone, for that account's user.
 *  Throws an Error that says why not. */
export async function checkRequest(accounts, text) {
  const { encoded, signature } = parseRequestText(text);
  const challenge = decodeChallenge(encoded);
  const onHost = accounts.filter((a) => equalBytes(a.hostId, challenge.hostId));
  if (onHost.length === 0) {
    throw new Error("This request comes from a computer this phone is not enrolled with.");
  }
  if (!(await wc.verify(onHost[0].hostKey, encoded, signature))) {
    throw new Error("This request is NOT signed by the enrolled computer. Do not type any code for it.");
  }
  const account = onHost.find((a) => a.account === challenge.context.user);
  if (!account) {
    throw new Error(`This request is for user ${sanitize(challenge.context.user)}, who is not enrolled on this phone.`);
  }
  if (!account.offlineKey) {
    throw new Error("This account was added before offline approval existed: remove it and enroll again to use it.");
  }
  return {
    account,
    encoded,
    shown: shownContext(challenge),
  };
}

/** The code that approves a checked request. */
export function approve(request) {
  return responseCode(request.account.offlineKey, request.encoded);
}
