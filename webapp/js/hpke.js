// HPKE (RFC 9180), base mode, for the one suite protocol v2 uses:
// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM. WebCrypto only:
// ECDH for the KEM, HMAC for HKDF's extract and expand (WebCrypto's HKDF
// does both at once, and the labeled steps need them apart), AES-GCM for
// the AEAD. No DOM, no network; runs in the browser and in Node.

const enc = new TextEncoder();
const ECDH = { name: "ECDH", namedCurve: "P-256" };

export const KEM_ID = 0x0010;
export const KDF_ID = 0x0001;
export const AEAD_ID = 0x0001;
export const ENC_LEN = 65;
export const KEY_LEN = 16;
export const NONCE_LEN = 12;

/** The byte arrays one after another. */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function i2osp(value, len) {
  const out = new Uint8Array(len);
  for (let i = len - 1, v = value; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v & 0xff;
  return out;
}

const VERSION = enc.encode("HPKE-v1");
const SUITE_KEM = concat(enc.encode("KEM"), i2osp(KEM_ID, 2));
const SUITE_HPKE = concat(enc.encode("HPKE"), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(AEAD_ID, 2));

async function hmac(key, data) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

/** HKDF-Extract (RFC 5869): an empty salt is 32 zero bytes. */
function extract(salt, ikm) {
  return hmac(salt.length ? salt : new Uint8Array(32), ikm);
}

/** HKDF-Expand (RFC 5869) to `len` bytes (at most 255 * 32). */
async function expand(prk, info, len) {
  const out = new Uint8Array(len);
  let t = new Uint8Array();
  for (let i = 1, at = 0; at < len; i++) {
    t = await hmac(prk, concat(t, info, Uint8Array.of(i)));
    out.set(t.subarray(0, Math.min(t.length, len - at)), at);
    at += t.length;
  }
  return out;
}

const labeledExtract = (suite, salt, label, ikm) =>
  extract(salt, concat(VERSION, suite, enc.encode(label), ikm));

const labeledExpand = (suite, prk, label, info, len) =>
  expand(prk, concat(i2osp(len, 2), VERSION, suite, enc.encode(label), info), len);

async function extractAndExpand(dh, kemContext) {
  const prk = await labeledExtract(SUITE_KEM, new Uint8Array(), "eae_prk", dh);
  return labeledExpand(SUITE_KEM, prk, "shared_secret", kemContext, 32);
}

async function ecdh(privateKey, rawPublic) {
  const pub = await crypto.subtle.importKey("raw", rawPublic, ECDH, false, []);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: pub }, privateKey, 256));
}

async function rawPublic(publicKey) {
  return new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
}

/** A new ECDH P-256 key pair whose private key cannot be exported. */
export function generateKeyPair() {
  return crypto.subtle.generateKey(ECDH, false, ["deriveBits"]);
}

/** An ECDH private key from its scalar `d` and its raw public key (for test
 *  vectors, whose keys are given as bytes). */
export function importPrivateKey(d, publicRaw) {
  const b64u = (b) => btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const jwk = {
    kty: "EC",
    crv: "P-256",
    d: b64u(d),
    x: b64u(publicRaw.subarray(1, 33)),
    y: b64u(publicRaw.subarray(33, 65)),
  };
  return crypto.subtle.importKey("jwk", jwk, ECDH, false, ["deriveBits"]);
}

async function keySchedule(sharedSecret, info) {
  const pskIdHash = await labeledExtract(SUITE_HPKE, new Uint8Array(), "psk_id_hash", new Uint8Array());
  const infoHash = await labeledExtract(SUITE_HPKE, new Uint8Array(), "info_hash", info);
  const context = concat(Uint8Array.of(0), pskIdHash, infoHash);
  const secret = await labeledExtract(SUITE_HPKE, sharedSecret, "secret", new Uint8Array());
  const key = await labeledExpand(SUITE_HPKE, secret, "key", context, KEY_LEN);
  const baseNonce = await labeledExpand(SUITE_HPKE, secret, "base_nonce", context, NONCE_LEN);
  return new Context(await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]), baseNonce);
}

/** An HPKE encryption context: each seal or open uses the next nonce. */
class Context {
  #key;
  #baseNonce;
  #seq = 0;

  constructor(key, baseNonce) {
    this.#key = key;
    this.#baseNonce = baseNonce;
  }

  #nextNonce() {
    const nonce = this.#baseNonce.slice();
    const seq = i2osp(this.#seq++, NONCE_LEN);
    for (let i = 0; i < NONCE_LEN; i++) nonce[i] ^= seq[i];
    return nonce;
  }

  /** Ciphertext and its 16-byte tag. */
  async seal(aad, plaintext) {
    const iv = this.#nextNonce();
    return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, this.#key, plaintext));
  }

  /** The plaintext; throws if the ciphertext, tag or `aad` is not what was sealed. */
  async open(aad, ciphertext) {
    const iv = this.#nextNonce();
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, this.#key, ciphertext));
  }
}

/** SetupBaseS: `{enc, context}` for the recipient's raw public key.
 *  `ephemeral` ({privateKey, publicRaw}) replaces the fresh key pair, for
 *  test vectors only. */
export async function setupBaseS(recipientRaw, info, ephemeral) {
  let privateKey = ephemeral?.privateKey;
  let encapsulated = ephemeral?.publicRaw;
  if (!privateKey) {
    const pair = await generateKeyPair();
    privateKey = pair.privateKey;
    encapsulated = await rawPublic(pair.publicKey);
  }
  const dh = await ecdh(privateKey, recipientRaw);
  const shared = await extractAndExpand(dh, concat(encapsulated, recipientRaw));
  return { enc: encapsulated, context: await keySchedule(shared, info) };
}

/** SetupBaseR: the context for `enc`, with the recipient's private key and
 *  its raw public key. */
export async function setupBaseR(encapsulated, privateKey, recipientRaw, info) {
  const dh = await ecdh(privateKey, encapsulated);
  const shared = await extractAndExpand(dh, concat(encapsulated, recipientRaw));
  return keySchedule(shared, info);
}
