// HPKE and protocol v2's sealed envelopes against RFC 9180 A.3.1 and the
// cross-language vector in protocol/testdata/vectors.json, the same ones
// protocol/src/sealed.rs passes (node --test webapp/tests/).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as hpke from "../js/hpke.js";
import * as sealed from "../js/sealed.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../../protocol/testdata/${name}`, import.meta.url)));
const rfc = load("hpke-rfc9180-a3.json");
const vectors = load("vectors.json");
const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const r = (name) => unhex(rfc[name]);
const v = (name) => unhex(vectors[name]);

test("RFC 9180 A.3.1 (P-256, HKDF-SHA256, AES-128-GCM) seals and opens byte for byte", async () => {
  assert.deepEqual([rfc.kem_id, rfc.kdf_id, rfc.aead_id, rfc.mode], [hpke.KEM_ID, hpke.KDF_ID, hpke.AEAD_ID, 0]);
  const ephemeral = { privateKey: await hpke.importPrivateKey(r("skEm"), r("pkEm")), publicRaw: r("pkEm") };
  const { enc, context: sender } = await hpke.setupBaseS(r("pkRm"), r("info"), ephemeral);
  assert.equal(hex(enc), rfc.enc);
  const skR = await hpke.importPrivateKey(r("skRm"), r("pkRm"));
  const receiver = await hpke.setupBaseR(enc, skR, r("pkRm"), r("info"));
  for (const e of rfc.encryptions) {
    assert.equal(hex(await sender.seal(unhex(e.aad), unhex(e.pt))), e.ct);
    assert.equal(hex(await receiver.open(unhex(e.aad), unhex(e.ct))), e.pt);
  }
});

test("the sealed challenge vector opens, and seals to the same bytes", async () => {
  const key = await hpke.importPrivateKey(v("sealed_recipient_secret"), v("sealed_recipient_public"));
  const { sealed_channel: ch, sealed_challenge_id: id } = vectors;
  assert.equal(hex(sealed.bindingAad(ch, id)), vectors.sealed_aad);
  const plain = await sealed.open(key, v("sealed_recipient_public"), sealed.Direction.toDevice, ch, id, v("sealed_to_device"));
  assert.equal(hex(plain), vectors.challenge_encoded);
  const ephemeral = {
    privateKey: await hpke.importPrivateKey(v("sealed_ephemeral_secret"), v("sealed_ephemeral_public")),
    publicRaw: v("sealed_ephemeral_public"),
  };
  const again = await sealed.seal(v("sealed_recipient_public"), sealed.Direction.toDevice, ch, id, plain, ephemeral);
  assert.equal(hex(again), vectors.sealed_to_device);
});

async function freshKey() {
  const pair = await hpke.generateKeyPair();
  assert.equal(pair.privateKey.extractable, false);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, raw };
}

test("plaintexts pad to the fixed sizes and come back unchanged", async () => {
  const k = await freshKey();
  for (const len of [0, 1, 300, 1023, 1024, sealed.MAX_PLAINTEXT_LEN]) {
    const plain = Uint8Array.from({ length: len }, (_, i) => (i % 7 === 0 ? 0 : 0x80));
    const s = await sealed.seal(k.raw, sealed.Direction.toHost, "ch", "id", plain);
    assert.equal(s.length, hpke.ENC_LEN + (len < 1024 ? 1024 : 3072) + sealed.TAG_LEN, `${len}`);
    assert.deepEqual(await sealed.open(k.privateKey, k.raw, sealed.Direction.toHost, "ch", "id", s), plain);
  }
  await assert.rejects(
    sealed.seal(k.raw, sealed.Direction.toHost, "ch", "id", new Uint8Array(sealed.MAX_PLAINTEXT_LEN + 1)),
    /too long/,
  );
});

test("another key, channel, challenge or direction, tampering and bad lengths are refused", async () => {
  const k = await freshKey();
  const other = await freshKey();
  const s = await sealed.seal(k.raw, sealed.Direction.toDevice, "ch", "id", Uint8Array.of(1, 2, 3));
  const refused = (key, raw, dir, ch, id, msg) => assert.rejects(sealed.open(key, raw, dir, ch, id, msg), /does not open|no sealed size/);
  await refused(other.privateKey, other.raw, sealed.Direction.toDevice, "ch", "id", s);
  await refused(k.privateKey, k.raw, sealed.Direction.toHost, "ch", "id", s);
  await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch2", "id", s);
  await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id2", s);
  await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "chi", "d", s);
  for (const i of [0, 1, 64, 65, 70, s.length - 1]) {
    const t = s.slice();
    t[i] ^= 1;
    await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id", t);
  }
  for (const cut of [0, 1, 65, 81, s.length - 1]) {
    await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id", s.subarray(0, cut));
  }
  const long = new Uint8Array(s.length + 1);
  long.set(s);
  await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id", long);
  await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id", new Uint8Array(1 << 20));
  await refused(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id", new Uint8Array(s.length));
  await assert.rejects(sealed.seal(Uint8Array.of(4, 1, 2), sealed.Direction.toDevice, "ch", "id", Uint8Array.of(1)));
});

test("a sealed message with no padding marker is refused", async () => {
  const k = await freshKey();
  const { enc, context } = await hpke.setupBaseS(k.raw, sealed.Direction.toDevice);
  const ct = await context.seal(sealed.bindingAad("ch", "id"), new Uint8Array(1024));
  const msg = new Uint8Array(hpke.ENC_LEN + ct.length);
  msg.set(enc);
  msg.set(ct, hpke.ENC_LEN);
  await assert.rejects(sealed.open(k.privateKey, k.raw, sealed.Direction.toDevice, "ch", "id", msg), /does not open/);
});
