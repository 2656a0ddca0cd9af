// Protocol v2's sealed envelopes, as protocol/src/sealed.rs makes them:
// HPKE to one recipient, the plaintext padded to a fixed size (0x80, then
// zeros), bound to a channel and a challenge id by the associated data and
// to a direction by the HPKE info. Layout: enc (65 bytes) || ciphertext.

import { ENC_LEN, concat, setupBaseR, setupBaseS } from "./hpke.js";

const enc = new TextEncoder();

export const TAG_LEN = 16;
export const PADDED_LENS = Object.freeze([1024, 3072]);
export const MAX_PLAINTEXT_LEN = PADDED_LENS[PADDED_LENS.length - 1] - 1;
const AAD_TAG = enc.encode("pushmfa-v2-sealed\0");

/** Which way a message travels: each has its own HPKE info. */
export const Direction = Object.freeze({
  toDevice: enc.encode("pushmfa-v2 challenge"),
  toHost: enc.encode("pushmfa-v2 answer"),
});

/** The associated data binding a message to `channel` and `challengeId`. */
export function bindingAad(channel, challengeId) {
  const parts = [AAD_TAG];
  for (const text of [channel, challengeId]) {
    const bytes = enc.encode(text);
    if (bytes.length > 0xffff) throw new Error("id too long to bind");
    parts.push(Uint8Array.of(bytes.length >> 8, bytes.length & 0xff), bytes);
  }
  return concat(...parts);
}

/** The padded size for a plaintext of `len` bytes, or null if too long. */
export function paddedLen(len) {
  return PADDED_LENS.find((p) => p > len) ?? null;
}

/** Seals `plaintext` to the raw public key `recipient`. `ephemeral` is for
 *  test vectors only (see hpke.js). */
export async function seal(recipient, direction, channel, challengeId, plaintext, ephemeral) {
  const padded = paddedLen(plaintext.length);
  if (padded === null) throw new Error(`plaintext of ${plaintext.length} bytes is too long to seal`);
  const body = new Uint8Array(padded);
  body.set(plaintext);
  body[plaintext.length] = 0x80;
  const { enc: encapsulated, context } = await setupBaseS(recipient, direction, ephemeral);
  const ct = await context.seal(bindingAad(channel, challengeId), body);
  return concat(encapsulated, ct);
}

/** Opens `sealed` with the recipient's private key (and its raw public
 *  key); throws "does not open" for anything tampered, sealed to another
 *  key, bound elsewhere or for the other direction, without telling which. */
export async function open(privateKey, publicRaw, direction, channel, challengeId, sealed) {
  const padded = sealed.length - ENC_LEN - TAG_LEN;
  if (!PADDED_LENS.includes(padded)) throw new Error(`sealed message of ${sealed.length} bytes has no sealed size`);
  let body;
  try {
    const context = await setupBaseR(sealed.subarray(0, ENC_LEN), privateKey, publicRaw, direction);
    body = await context.open(bindingAad(channel, challengeId), sealed.subarray(ENC_LEN));
  } catch {
    throw new Error("sealed message does not open");
  }
  let end = body.length - 1;
  while (end >= 0 && body[end] === 0) end--;
  if (end < 0 || body[end] !== 0x80) throw new Error("sealed message does not open");
  return body.slice(0, end);
}
