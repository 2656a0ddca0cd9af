// What the phone does, without the DOM: enroll a new account from a link,
// check a pending request the way docs/protocol.md obliges a device to,
// and sign an answer. main.js wires these to the views.

import * as api from "./api.js";
import * as wc from "./crypto.js";
import * as db from "./db.js";
import {
  Decision,
  b64urlDecode,
  b64urlEncode,
  decodeChallenge,
  encodeApproval,
  enrollmentOutcomeMessage,
  equalBytes,
  parseEnrollLink,
  registrationMacInput,
  sanitize,
} from "./protocol.js";

/** How long a registered phone waits for the host's verdict, in ms. */
const OUTCOME_WAIT_MS = 120_000;

/** Waits for the host's signed verdict; throws an Error that says why if
 *  the host refused, or if no verdict came. */
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
  let signature;
  try {
    signature = b64urlDecode(String(outcome.signature ?? ""));
  } catch {
    signature = new Uint8Array(0);
  }
  const message = enrollmentOutcomeMessage(e.enrollmentId, publicKey, accepted);
  const signed = await wc.verify(e.hostKey, message, signature);
  if (!signed) throw new Error("The answer was not signed by the computer: nothing was added.");
  if (!accepted) {
    throw new Error(`The computer refused this phone: ${sanitize(String(outcome.message ?? ""))}`);
  }
}

/** Enrolls: a new non-extractable key, registered through the relay the
 *  link names with a MAC under the link's secret; the account is stored
 *  only once the host accepted it (a verdict signed with the host key, so
 *  a relay cannot make a refused phone believe it is enrolled). (The page's Content-Security-Policy
 *  decides which relays it may reach: only its own origin when the relay
 *  serves the app.) */
export async function enroll(link, deviceName) {
  const e = parseEnrollLink(link);
  const name = sanitize(deviceName.trim());
  if (!name || new TextEncoder().encode(name).length > 64) {
    throw new Error("Give this phone a name of 1 to 64 characters.");
  }
  const keys = await wc.generateDeviceKey();
  const publicKey = await wc.rawPublicKey(keys.publicKey);
  const hostId = await wc.sha256(e.hostKey);
  const mac = await wc.hmacSha256(e.secret, registrationMacInput(e.enrollmentId, hostId, publicKey, name));
  e.secret.fill(0);
  const channel = await api.register(e.relay, e.enrollmentId, {
    public_key: b64urlEncode(publicKey),
    device_name: name,
    mac: b64urlEncode(mac),
  });
  await hostAccepted(e, channel.device_token, publicKey);
  const deviceId = await wc.deviceId(publicKey);
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
    addedAt: Date.now(),
  };
  await db.accounts.put(account);
  return account;
}

/** A pending request whose host signature and fields check out, or an
 *  Error saying why it is not shown. */
export async function checkRequest(account, item) {
  const bytes = b64urlDecode(item.challenge);
  const signature = b64urlDecode(item.signature);
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
    shown: {
      host: sanitize(challenge.hostName),
      user: sanitize(challenge.context.user),
      service: sanitize(challenge.context.service),
      rhost: sanitize(challenge.context.rhost),
      tty: sanitize(challenge.context.tty),
    },
  };
}

/** Signs and sends the answer. `number` is what the user typed. */
export async function answer(request, decision, number) {
  const message = encodeApproval(request.challenge, decision, number, request.account.deviceId);
  const signature = await wc.sign(request.account.keys.privateKey, message);
  await api.answer(request.account, request.id, {
    response: b64urlEncode(message),
    signature: b64urlEncode(signature),
  });
}

export { Decision };

/** The account's pending requests when they changed since `cursor`. */
export const pending = api.pending;
