// WebCrypto for the device: a non-extractable P-256 key per account,
// signatures as raw r||s (what docs/protocol.md specifies), the host's
// signature check and the enrollment MAC. No DOM, no network.

import { PUBLIC_KEY_LEN } from "./protocol.js";

const ECDSA = { name: "ECDSA", namedCurve: "P-256" };
const SIGN = { name: "ECDSA", hash: "SHA-256" };

/** A new device key pair; the private key can never be exported. */
export async function generateDeviceKey() {
  return crypto.subtle.generateKey(ECDSA, false, ["sign", "verify"]);
}

/** The uncompressed SEC1 point (65 bytes) of a public key. */
export async function rawPublicKey(publicKey) {
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
  if (raw.length !== PUBLIC_KEY_LEN) throw new Error("unexpected public key length");
  return raw;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** A device's id: the first 16 bytes of SHA-256 of its public key. */
export async function deviceId(rawPublic) {
  return (await sha256(rawPublic)).slice(0, 16);
}

/** Signs `message` with the device's private key: raw r||s, 64 bytes. */
export async function sign(privateKey, message) {
  return new Uint8Array(await crypto.subtle.sign(SIGN, privateKey, message));
}

/** Whether `signature` (raw r||s) over `message` verifies with the raw
 *  SEC1 public key `rawKey` (the host key learned at enrollment). */
export async function verify(rawKey, message, signature) {
  let key;
  try {
    key = await crypto.subtle.importKey("raw", rawKey, ECDSA, false, ["verify"]);
  } catch {
    return false;
  }
  return crypto.subtle.verify(SIGN, key, signature, message);
}

/** HMAC-SHA256 of `message` under `secret` (the enrollment MAC). */
export async function hmacSha256(secret, message) {
  const key = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
}
