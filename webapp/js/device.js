// What the phone does, without the DOM: enroll a new account from a link,
// check a pending request the way docs/protocol.md obliges a device to,
// and sign an answer. main.js wires these to the views.

import * as api from "./api.js";
import * as wc from "./crypto.js";
import * as db from "./db.js";
import * as hpke from "./hpke.js";
import * as offline from "./offline.js";
import {
  Decision,
  b64urlDecode,
  b64urlEncode,
  decodeChallenge,
  encodeAnswer,
  encodeApproval,
  encodePasskey,
  enrollmentOutcomeMessageV2,
  equalBytes,
  parseEnrollLink,
  registrationMacInputV2,
  sanitize,
  shownContext,
  splitChallenge,
} from "./protocol.js";
import * as sealed from "./sealed.js";

/** How long a registered phone waits for the host's verdict, in ms. */
const OUTCOME_WAIT_MS = 120_000;

/** Waits for the host's signed verdict; throws an Error that says why if
 *  the host refused, or if no verdict came. Returns the host's encryption
 *  key, which the verdict carries under the host's signature. */
async function hostAccepted(e, deviceToken, publicKey) {
  const deadline = Date.now() + OUTCOME_WAIT_MS;
  let outcome = null;
  while (!outcome) {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    if (left <= 0) {
      throw new Error("The computer did not confirm this phone. See what pushmfa enroll printed there, and run it again.");
    }
    outcome = await api.enrollmentOutcome(e.relay, e.enrollmentId, deviceToken, Math.min(left, 30));
  }
  const accepted = outcome.accepted === true;
  const bytes = (value) => {
    try {
      return b64urlDecode(String(value ?? ""));
    } catch {
      return new Uint8Array(0);
    }
  };
  const hostEncryptionKey = bytes(outcome.host_encryption_key);
  if (hostEncryptionKey.length !== 65) {
    throw new Error("The computer's pushmfa is too old for this app (it does not seal requests): nothing was added.");
  }
  const message = enrollmentOutcomeMessageV2(e.enrollmentId, publicKey, hostEncryptionKey, accepted);
  const signed = await wc.verify(e.hostKey, message, bytes(outcome.signature));
  if (!signed) throw new Error("The answer was not signed by the computer: nothing was added.");
  if (!accepted) {
    throw new Error(`The computer refused this phone: ${sanitize(String(outcome.message ?? ""))}`);
  }
  return hostEncryptionKey;
}

/** A platform passkey for this account (the host asked for approvals
 *  verified by the screen lock), or null where the browser has none: the
 *  account then works for services that do not ask for it. */
async function createPasskey(e) {
  const available = await globalThis.PublicKeyCredential?.isUserVerifyingPlatformAuthenticatorAvailable?.().catch(() => false);
  if (!available) return null;
  const cred = await navigator.credentials.create({
    publicKey: {
      rp: { id: location.hostname, name: "pushmfa" },
      user: {
        id: crypto.getRandomValues(new Uint8Array(16)),
        name: `${sanitize(e.account)}@${sanitize(e.hostName)}`,
        displayName: `${sanitize(e.account)} on ${sanitize(e.hostName)}`,
      },
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      authenticatorSelection: { authenticatorAttachment: "platform", userVerification: "required", residentKey: "discouraged" },
      attestation: "none",
      timeout: 120_000,
    },
  });
  // ES256's SubjectPublicKeyInfo: a fixed 26-byte header, then the point.
  const spki = new Uint8Array(cred.response.getPublicKey());
  if (cred.response.getPublicKeyAlgorithm() !== -7 || spki.length !== 91 || spki[26] !== 4) {
    throw new Error("This phone made a passkey of a kind the computer cannot check.");
  }
  const id = new Uint8Array(cred.rawId);
  return { id, blob: encodePasskey(location.origin, id, spki.slice(26)) };
}

/** The passkey's assertion over `message` (the approval): the user proves
 *  it is them with the screen lock or a fingerprint. */
async function assertPasskey(account, message) {
  const challenge = await wc.sha256(message);
  let got;
  try {
    got = await navigator.credentials.get({
      publicKey: {
        challenge,
        rpId: location.hostname,
        allowCredentials: [{ type: "public-key", id: account.passkeyId }],
        userVerification: "required",
        timeout: 60_000,
      },
    });
  } catch {
    throw new Error("Your screen lock or fingerprint was not confirmed, so nothing was sent. Try again.");
  }
  const r = got.response;
  return {
    authenticatorData: new Uint8Array(r.authenticatorData),
    clientDataJSON: new Uint8Array(r.clientDataJSON),
    signature: new Uint8Array(r.signature),
  };
}

/** Enrolls: a new non-extractable signing key, a non-extractable
 *  encryption key (protocol 2: requests reach this phone sealed to it) and
 *  a non-extractable offline key (codes for offline approval),
 *  registered through the relay the link names with a MAC under the link's
 *  secret; the account is stored only once the host accepted it (a verdict
 *  signed with the host key, so a relay cannot make a refused phone believe
 *  it is enrolled, nor give it an encryption key of its own). (The page's
 *  Content-Security-Policy decides which relays it may reach: only its own
 *  origin when the relay serves the app.) */
export async function enroll(link, deviceName) {
  const e = parseEnrollLink(link);
  const name = sanitize(deviceName.trim());
  if (!name || new TextEncoder().encode(name).length > 64) {
    throw new Error("Give this phone a name of 1 to 64 characters.");
  }
  const keys = await wc.generateDeviceKey();
  const publicKey = await wc.rawPublicKey(keys.publicKey);
  const sealKeys = await hpke.generateKeyPair();
  const sealPublic = await wc.rawPublicKey(sealKeys.publicKey);
  const hostId = await wc.sha256(e.hostKey);
  const passkey = e.userVerification ? await createPasskey(e) : null;
  const macInput = registrationMacInputV2(e.enrollmentId, hostId, publicKey, name, sealPublic, passkey?.blob ?? new Uint8Array(0));
  const mac = await wc.hmacSha256(e.secret, macInput);
  // The key for offline codes, derived from the secret before it is wiped
  // (the host derives the same one when it accepts this phone).
  const deviceId = await wc.deviceId(publicKey);
  const offlineKey = await offline.deriveKey(e.secret, deviceId);
  e.secret.fill(0);
  const channel = await api.register(e.relay, e.enrollmentId, {
    public_key: b64urlEncode(publicKey),
    device_name: name,
    mac: b64urlEncode(mac),
    encryption_key: b64urlEncode(sealPublic),
    ...(passkey ? { passkey: b64urlEncode(passkey.blob) } : {}),
  });
  const hostEncryptionKey = await hostAccepted(e, channel.device_token, publicKey);
  const account = {
    id: b64urlEncode(deviceId),
    relay: e.relay,
    channelId: channel.channel_id,
    deviceToken: channel.device_token,
    hostKey: e.hostKey,
    hostId,
    hostName: sanitize(e.hostName),
    issuer: sanitize(e.issuer),
    account: sanitize(e.account),
    label: "",
    deviceName: name,
    deviceId,
    keys,
    protocol: 2,
    sealKeys,
    sealPublic,
    hostEncryptionKey,
    passkeyId: passkey?.id ?? null,
    offlineKey,
    addedAt: Date.now(),
  };
  await db.accounts.put(account);
  return account;
}

/** A pending request whose host signature and fields check out, or an
 *  Error saying why it is not shown. */
export async function checkRequest(account, item) {
  const { bytes, signature } = await unseal(account, item);
  if (!(await wc.verify(account.hostKey, bytes, signature))) {
    throw new Error("not signed by the enrolled host: ignored");
  }
  const challenge = decodeChallenge(bytes);
  if (!equalBytes(challenge.hostId, account.hostId)) throw new Error("names another host: ignored");
  if (b64urlEncode(challenge.id) !== item.id) throw new Error("id differs from the signed one: ignored");
  if (challenge.context.user !== account.account) throw new Error("is for another user: ignored");
  const lifetime = Math.max(0, challenge.expiresAt - challenge.issuedAt);
  const expiresIn = Math.min(Number(item.expires_in) || 0, lifetime);
  return {
    key: `${account.id}/${item.id}`,
    id: item.id,
    account,
    challenge,
    // The host's clock decides expiry; the countdown runs on ours.
    deadline: Date.now() + expiresIn * 1000,
    shown: shownContext(challenge),
  };
}

/** The challenge bytes and the host's signature of a pending item: opened
 *  with the account's encryption key (protocol 2), or as they came
 *  (accounts enrolled before it). Neither kind takes the other's. */
async function unseal(account, item) {
  const v2 = account.protocol === 2;
  if (!item.sealed) {
    if (v2) throw new Error("came unsealed to a phone that takes sealed requests only: ignored");
    return { bytes: b64urlDecode(item.challenge), signature: b64urlDecode(item.signature) };
  }
  if (!v2) throw new Error("came sealed to an account enrolled before sealing: ignored");
  const plain = await sealed.open(
    account.sealKeys.privateKey,
    account.sealPublic,
    sealed.Direction.toDevice,
    account.channelId,
    item.id,
    b64urlDecode(item.sealed),
  );
  const { encoded, signature } = splitChallenge(plain);
  return { bytes: encoded, signature };
}

/** Signs and sends the answer. `number` is what the user typed. Sealed to
 *  the host (protocol 2), so the relay does not learn the decision. */
export async function answer(request, decision, number) {
  const account = request.account;
  const message = encodeApproval(request.challenge, decision, number, account.deviceId);
  // Asked first, while the tap that started it still counts as the user's.
  const assertion = account.passkeyId ? await assertPasskey(account, message) : null;
  const signature = await wc.sign(account.keys.privateKey, message);
  if (account.protocol !== 2) {
    await api.answer(account, request.id, {
      response: b64urlEncode(message),
      signature: b64urlEncode(signature),
    });
    return;
  }
  const box = await sealed.seal(
    account.hostEncryptionKey,
    sealed.Direction.toHost,
    account.channelId,
    request.id,
    encodeAnswer(message, signature, assertion),
  );
  await api.answer(account, request.id, { sealed: b64urlEncode(box) });
}

export { Decision };

/** The account's pending requests when they changed since `cursor`. */
export const pending = api.pending;
