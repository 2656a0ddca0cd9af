// The web app's encodings against protocol/testdata/vectors.json, the same
// vectors the Rust side passes (node --test webapp/tests/).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as wc from "../js/crypto.js";
import * as p from "../js/protocol.js";

const vectors = JSON.parse(readFileSync(new URL("../../protocol/testdata/vectors.json", import.meta.url)));
const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const v = (name) => unhex(vectors[name]);

test("the challenge vector decodes and its host signature verifies", async () => {
  const c = p.decodeChallenge(v("challenge_encoded"));
  assert.equal(c.hostName, "web-1.example.org");
  assert.deepEqual(c.context, { user: "alice", service: "sshd", rhost: "203.0.113.7", tty: "ssh" });
  assert.equal(p.hex(c.hostId), vectors.host_id);
  assert.equal(c.expiresAt - c.issuedAt, 60);
  assert.ok(await wc.verify(v("host_public_key"), v("challenge_encoded"), v("challenge_host_signature")));
  const tampered = v("challenge_encoded");
  tampered[tampered.length - 1] ^= 1;
  assert.ok(!(await wc.verify(v("host_public_key"), tampered, v("challenge_host_signature"))));
  assert.ok(!(await wc.verify(Uint8Array.of(4, 1, 2), v("challenge_encoded"), v("challenge_host_signature"))));
});

test("the approval is encoded byte for byte and the device id matches", async () => {
  const c = p.decodeChallenge(v("challenge_encoded"));
  const bytes = p.encodeApproval(c, p.Decision.approve, 47, v("device_id"));
  assert.equal(p.hex(bytes), vectors.approval_encoded);
  assert.equal(p.hex(await wc.deviceId(v("device_public_key"))), vectors.device_id);
  assert.ok(await wc.verify(v("device_public_key"), bytes, v("approval_signature")));
  const deny = p.encodeApproval(c, p.Decision.deny, 47, v("device_id"));
  assert.equal(deny[deny.length - 17], 0xff, "deny carries no number");
  assert.throws(() => p.encodeApproval(c, p.Decision.approve, null, v("device_id")), /number/);
  assert.throws(() => p.encodeApproval(c, p.Decision.approve, 100, v("device_id")), /number/);
});

test("a key made here signs what the host verifies, and cannot be exported", async () => {
  const keys = await wc.generateDeviceKey();
  assert.equal(keys.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const raw = await wc.rawPublicKey(keys.publicKey);
  const sig = await wc.sign(keys.privateKey, v("approval_encoded"));
  assert.equal(sig.length, 64);
  assert.ok(await wc.verify(raw, v("approval_encoded"), sig));
});

test("the registration MAC input and MAC match the vectors", async () => {
  const input = p.registrationMacInput(
    vectors.enroll_id,
    v("host_id"),
    v("device_public_key"),
    vectors.enroll_device_name,
  );
  assert.equal(p.hex(input), vectors.enroll_mac_input);
  assert.equal(p.hex(await wc.hmacSha256(v("enroll_secret"), input)), vectors.enroll_mac);
});

test("protocol 2's registration MAC, verdict and answer layout match the Rust side", async () => {
  const input = p.registrationMacInputV2(
    vectors.enroll_id,
    v("host_id"),
    v("device_public_key"),
    vectors.enroll_device_name,
    v("sealed_recipient_public"),
    new Uint8Array(0),
  );
  assert.equal(p.hex(input), vectors.enroll_mac_input_v2);
  assert.equal(p.hex(await wc.hmacSha256(v("enroll_secret"), input)), vectors.enroll_mac_v2);
  const verdict = p.enrollmentOutcomeMessageV2(vectors.enroll_id, v("device_public_key"), v("sealed_ephemeral_public"), true);
  assert.equal(p.hex(verdict), vectors.enroll_outcome_v2_accepted);
  const answer = p.encodeAnswer(Uint8Array.of(1, 2, 3, 4), new Uint8Array(64).fill(9));
  assert.equal(p.hex(answer.subarray(0, 6)), "000401020304");
  assert.equal(answer.length, 2 + 4 + 64);
  assert.throws(() => p.encodeAnswer(Uint8Array.of(1), new Uint8Array(63)), /64 bytes/);
  const { encoded, signature } = p.splitChallenge(Uint8Array.from({ length: 70 }, (_, i) => i));
  assert.equal(encoded.length, 6);
  assert.equal(signature[0], 6);
  assert.throws(() => p.splitChallenge(new Uint8Array(63)), /truncated/);
});

test("the host's enrollment verdict matches the vector; a refusal is another message", async () => {
  const accepted = p.enrollmentOutcomeMessage(vectors.enroll_id, v("device_public_key"), true);
  assert.equal(p.hex(accepted), vectors.enroll_outcome_accepted);
  assert.ok(await wc.verify(v("host_public_key"), accepted, v("enroll_outcome_signature")));
  const refused = p.enrollmentOutcomeMessage(vectors.enroll_id, v("device_public_key"), false);
  assert.ok(!(await wc.verify(v("host_public_key"), refused, v("enroll_outcome_signature"))));
});

test("garbage, truncated and oversized challenges are refused", () => {
  const good = v("challenge_encoded");
  assert.throws(() => p.decodeChallenge(new Uint8Array()), /tag/);
  assert.throws(() => p.decodeChallenge(p.APPROVAL_TAG), /tag/);
  for (const cut of [p.CHALLENGE_TAG.length, 40, good.length - 1]) {
    assert.throws(() => p.decodeChallenge(good.subarray(0, cut)), /truncated/);
  }
  const long = new Uint8Array(good.length + 1);
  long.set(good);
  assert.throws(() => p.decodeChallenge(long), /trailing/);
  const badUtf8 = good.slice();
  badUtf8[p.CHALLENGE_TAG.length + 64 + 1] = 0xff;
  assert.throws(() => p.decodeChallenge(badUtf8));
});

const query =
  "v=1&relay=http%3A%2F%2F127.0.0.1%3A8480&id=K7vQ2mXp9Ls4Tg8Wn3Rb6A" +
  `&secret=${p.b64urlEncode(v("enroll_secret"))}&host_key=${p.b64urlEncode(v("host_public_key"))}` +
  "&host=web-1&issuer=pushmfa&account=alice";

test("enrollment links parse in both forms; bad ones say what is wrong", () => {
  for (const link of [`pushmfa://enroll?${query}`, `http://127.0.0.1:8480/app/#enroll?${query}`]) {
    const e = p.parseEnrollLink(link);
    assert.equal(e.relay, "http://127.0.0.1:8480");
    assert.equal(e.enrollmentId, "K7vQ2mXp9Ls4Tg8Wn3Rb6A");
    assert.equal(p.hex(e.secret), vectors.enroll_secret);
    assert.equal(e.account, "alice");
  }
  assert.throws(() => p.parseEnrollLink("https://example.org/"), /not a pushmfa enrollment link/);
  assert.throws(() => p.parseEnrollLink(`pushmfa://enroll?${query.replace("v=1", "v=2")}`), /newer version/);
  assert.throws(() => p.parseEnrollLink(`pushmfa://enroll?${query.replace("&account=alice", "")}`), /no account/);
  assert.throws(() => p.parseEnrollLink(`pushmfa://enroll?${query.replace(/secret=[^&]+/, "secret=AAAA")}`), /secret/);
  assert.throws(() => p.parseEnrollLink(`pushmfa://enroll?${query.replace(/secret=[^&]+/, "secret=*")}`), /secret/);
  assert.throws(() => p.parseEnrollLink(`pushmfa://enroll?${query}&x=${"a".repeat(5000)}`), /too long/);
});

test("an enrollment link whose relay is not a plain http(s) URL is refused", () => {
  const good = "pushmfa://enroll?v=1&relay=https%3A%2F%2Fr.example&id=a&secret=" + "B".repeat(43) +
    "&host_key=" + "B".repeat(87) + "&host=h&issuer=i&account=a";
  assert.equal(p.parseEnrollLink(good).relay, "https://r.example");
  for (const relay of ["ftp%3A%2F%2Fr", "https%3A%2F%2F", "https%3A%2F%2Fr%2Fapp%2F%23enroll%3Fv%3D2", "https%3A%2F%2Fa%20b", "https%3A%1F%2Fr"]) {
    assert.throws(() => p.parseEnrollLink(good.replace("https%3A%2F%2Fr.example", relay)), /relay is malformed/, relay);
  }
});

test("what a caller controls is cleaned before it is shown", () => {
  assert.equal(p.sanitize("a\x1b[2Jb"), "a?[2Jb");
  assert.equal(p.sanitize("evil\u202egnp.exe"), "evil?gnp.exe");
  assert.equal(p.sanitize("ok é"), "ok é");
  assert.throws(() => p.b64urlDecode("a+b/"), /base64url/);
  assert.deepEqual(p.b64urlDecode(p.b64urlEncode(Uint8Array.of(0, 255, 7))), Uint8Array.of(0, 255, 7));
});
