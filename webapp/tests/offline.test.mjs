// Offline approval in the web app's modules against
// protocol/testdata/vectors.json (the Rust side passes the same vectors).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as off from "../js/offline.js";
import * as p from "../js/protocol.js";

const vectors = JSON.parse(readFileSync(new URL("../../protocol/testdata/vectors.json", import.meta.url)));
const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const v = (name) => unhex(vectors[name]);

test("the offline key and code match the vectors", async () => {
  const key = await off.deriveKey(v("enroll_secret"), v("device_id"));
  assert.equal(key.extractable, false);
  assert.deepEqual(key.usages, ["sign"]);
  assert.equal(await off.responseCode(key, v("challenge_encoded")), vectors.offline_code);
  // The key itself: the vector's bytes give the same code.
  const raw = await crypto.subtle.importKey("raw", v("offline_key"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  assert.equal(await off.responseCode(raw, v("challenge_encoded")), vectors.offline_code);
  const other = v("challenge_encoded");
  other[30] ^= 1;
  assert.notEqual(await off.responseCode(key, other), vectors.offline_code);
});

test("the request text parses, wrapped and in any case", () => {
  const text = vectors.offline_request_text;
  const wrapped = text.toLowerCase().match(/.{1,70}/g).join("\n  ");
  for (const t of [text, wrapped, ` ${text}\n`]) {
    const { encoded, signature } = off.parseRequestText(t);
    assert.equal(p.hex(encoded), vectors.challenge_encoded);
    assert.equal(p.hex(signature), vectors.challenge_host_signature);
  }
});

test("garbage, truncated and oversized requests are refused with a reason", () => {
  const text = vectors.offline_request_text;
  assert.throws(() => off.parseRequestText("hello"), /not a pushmfa sign-in request/);
  assert.throws(() => off.parseRequestText("PUSHMFA-OFFLINE:AB!"), /does not belong/);
  assert.throws(() => off.parseRequestText(`PUSHMFA-OFFLINE:${"A".repeat(off.MAX_TEXT_LEN)}`), /too long/);
  for (let cut = off.TEXT_PREFIX.length; cut < text.length; cut += 7) {
    assert.throws(() => off.parseRequestText(text.slice(0, cut)), Error, `cut at ${cut}`);
  }
  // RFC 4648 vectors, and non-canonical tails.
  assert.equal(new TextDecoder().decode(off.base32Decode("MZXW6YTBOI")), "foobar");
  assert.throws(() => off.base32Decode("MZ"), /damaged/);
  assert.throws(() => off.base32Decode("MZX"), /damaged/);
});

test("a request is checked against the enrolled host and user", async () => {
  const key = await off.deriveKey(v("enroll_secret"), v("device_id"));
  const account = { hostId: v("host_id"), hostKey: v("host_public_key"), account: "alice", offlineKey: key };
  const text = vectors.offline_request_text;
  const req = await off.checkRequest([account], text);
  assert.deepEqual(req.shown, { host: "web-1.example.org", user: "alice", service: "sshd", rhost: "203.0.113.7", tty: "ssh" });
  assert.equal(await off.approve(req), vectors.offline_code);
  await assert.rejects(off.checkRequest([{ ...account, account: "bob" }], text), /user alice, who is not enrolled/);
  await assert.rejects(off.checkRequest([{ ...account, hostId: new Uint8Array(32) }], text), /not enrolled with/);
  await assert.rejects(off.checkRequest([{ ...account, offlineKey: undefined }], text), /enroll again/);
  // Signed by another key: refused, whatever the account.
  const { encoded, signature } = off.parseRequestText(text);
  signature[5] ^= 1;
  const b32 = (bytes) => {
    const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = "";
    for (const b of bytes) bits += b.toString(2).padStart(8, "0");
    return bits.match(/.{1,5}/g).map((c) => A[parseInt(c.padEnd(5, "0"), 2)]).join("");
  };
  const forged = off.TEXT_PREFIX + b32(new Uint8Array([...encoded, ...signature]));
  await assert.rejects(off.checkRequest([account], forged), /NOT signed/);
});
