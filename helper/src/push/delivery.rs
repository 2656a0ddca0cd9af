//! Delivering a challenge through the relay: post it to every device's
//! channel, long-poll for the answers, verify them as they arrive, and take
//! the challenge back when nobody waits for it any more.

use super::challenge::{Issued, Received, Rejected, check_answer};
use crate::ctx::Ctx;
use crate::log::Logger;
use crate::log::Q;
use crate::relay_client::RelayClient;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::envelope;
use pushmfa_protocol::relay_api::{ChallengeResponse, PostChallenge};
use pushmfa_protocol::sealed::{self, Binding, Direction};

/// An answer collected from one device's channel.
pub struct Answer {
    pub response: ChallengeResponse,
    channel: String,
    token: String,
}
use pushmfa_protocol::signed::Decision;
use pushmfa_state::Device;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

/// What one round of waiting produced.
pub enum Waited {
    Accepted(Decision, String),
    WrongNumber(String),
    TimedOut,
    /// The user typed something at the prompt instead.
    Typed(Zeroizing<String>),
}

/// Why a challenge reached no device.
pub struct Undelivered {
    pub why: String,
    /// Every post failed to connect or timed out. False as soon as the
    /// relay answered anything (an error status, garbage): an answer is
    /// never "unreachable", so it can never trigger `failmode = "safe"`.
    pub unreachable: bool,
}

/// Posts the challenge to every device's channel and starts a long-poll
/// for each answer. Fails only if no device could be reached.
pub async fn post_everywhere(
    ctx: &Ctx,
    issued: &Issued,
    devices: &[Device],
    tx: &mpsc::Sender<Answer>,
    pollers: &mut JoinSet<()>,
) -> Result<(), Undelivered> {
    let Some(relay) = ctx.relay.clone() else {
        return Err(Undelivered {
            why: "no backend".into(),
            unreachable: false,
        });
    };
    let encoded = issued.challenge.encode();
    let signature = ctx.host_key.sign(&encoded).map_err(|why| Undelivered {
        why,
        unreachable: false,
    })?;
    let id = B64.encode(issued.challenge.id);
    let expires_in = issued.challenge.expires_at - issued.challenge.issued_at;
    let mut posts = JoinSet::new();
    let mut reached = 0;
    let mut last_error = String::new();
    let mut all_unreachable = true;
    for d in devices {
        let body = match body_for(&id, expires_in, &encoded, &signature, d) {
            Ok(body) => body,
            Err(why) => {
                ctx.log
                    .error(&format!("push to device={} impossible: {why}", Q(&d.name)));
                last_error = why;
                all_unreachable = false;
                continue;
            }
        };
        let (relay, d) = (relay.clone(), d.clone());
        posts.spawn(async move {
            (
                relay
                    .post_challenge(&d.channel_id, &d.channel_token, &body)
                    .await,
                d,
            )
        });
    }
    while let Some(joined) = posts.join_next().await {
        let Ok((result, d)) = joined else { continue };
        match result {
            Ok(()) => {
                reached += 1;
                let (relay, tx, id, deadline) =
                    (relay.clone(), tx.clone(), id.clone(), issued.deadline);
                pollers.spawn(async move {
                    // Long-poll until the deadline. After a refused answer
                    // the relay opens the challenge again, so the real
                    // device can still answer on this channel.
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return;
                        }
                        let wait = left
                            .min(Duration::from_secs(30))
                            .max(Duration::from_secs(1));
                        match relay
                            .wait_response(&d.channel_id, &d.channel_token, &id, wait)
                            .await
                        {
                            Ok(Some(response)) => {
                                let answer = Answer {
                                    response,
                                    channel: d.channel_id.clone(),
                                    token: d.channel_token.clone(),
                                };
                                if tx.send(answer).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => continue,
                            Err(_) => {
                                // Relay hiccup: back off briefly rather than spin.
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                });
            }
            Err(e) => {
                ctx.log.warning(&format!(
                    "push to device={} failed: error={}",
                    Q(&d.name),
                    Q(&e.to_string())
                ));
                last_error = e.to_string();
                all_unreachable &= e.is_unreachable();
            }
        }
    }
    if reached == 0 {
        Err(Undelivered {
            why: last_error,
            unreachable: all_unreachable,
        })
    } else {
        Ok(())
    }
}

/// What to post for device `d`: the challenge and its signature in clear
/// (protocol 1), or both sealed to the device's encryption key and bound
/// to its channel and the challenge id (protocol 2).
fn body_for(
    id: &str,
    expires_in: u64,
    encoded: &[u8],
    signature: &[u8],
    d: &Device,
) -> Result<PostChallenge, String> {
    let mut body = PostChallenge {
        id: id.to_owned(),
        expires_in,
        challenge: String::new(),
        signature: String::new(),
        sealed: None,
    };
    let Some(key) = &d.encryption_key else {
        body.challenge = B64.encode(encoded);
        body.signature = B64.encode(signature);
        return Ok(body);
    };
    let key = B64
        .decode(key)
        .map_err(|_| "its encryption key in the state file is not base64url".to_string())?;
    let signature: &[u8; 64] = signature
        .try_into()
        .map_err(|_| "the host signature is not 64 bytes".to_string())?;
    let plain = envelope::challenge_plaintext(encoded, signature);
    let binding = Binding {
        channel: &d.channel_id,
        challenge_id: id,
    };
    let sealed = sealed::seal(&key, Direction::ToDevice, binding, &plain)
        .map_err(|e| format!("cannot seal the request to it: {e}"))?;
    body.sealed = Some(B64.encode(sealed));
    Ok(body)
}

/// What `answer` carries, opened if it came sealed.
fn unpack(ctx: &Ctx, issued: &Issued, answer: &Answer) -> Result<Received, &'static str> {
    let r = &answer.response;
    let Some(sealed) = &r.sealed else {
        return match (B64.decode(&r.response), B64.decode(&r.signature)) {
            (Ok(approval), Ok(signature)) => Ok(Received {
                approval,
                signature,
                sealed: false,
                assertion: None,
            }),
            _ => Err("the answer is not base64url"),
        };
    };
    let sealed = B64
        .decode(sealed)
        .map_err(|_| "the sealed answer is not base64url")?;
    let id = B64.encode(issued.challenge.id);
    let binding = Binding {
        channel: &answer.channel,
        challenge_id: &id,
    };
    let plain = ctx
        .host_key
        .seal
        .open(Direction::ToHost, binding, &sealed)
        .map_err(|_| "the sealed answer does not open with this host's key")?;
    let a = envelope::Answer::decode(&plain).map_err(|_| "the sealed answer is malformed")?;
    Ok(Received {
        approval: a.approval,
        signature: a.signature.to_vec(),
        sealed: true,
        assertion: a.assertion,
    })
}

/// Takes a challenge back from every device's channel when the login step
/// ends without it (a recovery code typed, an answer from another device,
/// the conversation aborted), so phones stop offering a request nobody
/// waits for. Runs on drop, so every exit path is covered; best effort.
pub struct Withdraw {
    relay: Option<RelayClient>,
    log: Arc<Logger>,
    user: String,
    id: String,
    /// (device name, channel, token) of every device still offering it.
    channels: Vec<(String, String, String)>,
}

impl Withdraw {
    pub fn new(ctx: &Ctx, issued: &Issued, devices: &[Device], decoy: bool) -> Withdraw {
        Withdraw {
            relay: if decoy { None } else { ctx.relay.clone() },
            log: ctx.log.clone(),
            user: issued.challenge.context.user.clone(),
            id: B64.encode(issued.challenge.id),
            channels: devices
                .iter()
                .map(|d| {
                    (
                        d.name.clone(),
                        d.channel_id.clone(),
                        d.channel_token.clone(),
                    )
                })
                .collect(),
        }
    }

    pub fn disarm(&mut self) {
        self.relay = None;
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let Some(relay) = self.relay.take() else {
            return;
        };
        if self.channels.is_empty() {
            return;
        }
        let (id, channels) = (
            std::mem::take(&mut self.id),
            std::mem::take(&mut self.channels),
        );
        let (log, user) = (self.log.clone(), std::mem::take(&mut self.user));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut failed = 0;
                for (_, channel, token) in &channels {
                    if relay.withdraw_challenge(channel, token, &id).await.is_err() {
                        failed += 1;
                    }
                }
                log.debug(&format!(
                    "push request withdrawn user={} devices={} failed={failed}",
                    Q(&user),
                    channels.len()
                ));
            });
        }
    }
}

/// Waits for the first acceptable answer until the challenge's deadline.
/// Bad answers are logged loudly and ignored: a relay can only delay.
pub async fn await_answer(
    ctx: &Ctx,
    issued: &mut Issued,
    devices: &[Device],
    rx: &mut mpsc::Receiver<Answer>,
    user: &str,
    service: &str,
) -> Waited {
    loop {
        let left = issued.deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => m,
            // Deadline, or every poller gave up (decoys have none: wait it out).
            Ok(None) => {
                tokio::time::sleep(issued.deadline.saturating_duration_since(Instant::now())).await;
                return Waited::TimedOut;
            }
            Err(_) => return Waited::TimedOut,
        };
        let received = match unpack(ctx, issued, &msg) {
            Ok(unpacked) => unpacked,
            Err(why) => {
                ctx.log.error(&format!(
                    "push answer REJECTED user={} service={}: {why} (a relay or device sent a bad answer; still waiting)",
                    Q(user),
                    Q(service),
                ));
                reopen(ctx, issued, &msg, why).await;
                continue;
            }
        };
        match check_answer(issued, devices, &received, Instant::now()) {
            Ok(a) => return Waited::Accepted(a.decision, a.device),
            Err(Rejected::WrongNumber) => {
                return Waited::WrongNumber("?".into());
            }
            Err(why) => {
                ctx.log.error(&format!(
                    "push answer REJECTED user={} service={}: {} (a relay or device sent a bad answer; still waiting)",
                    Q(user),
                    Q(service),
                    why.as_str()
                ));
                reopen(ctx, issued, &msg, &why.as_str()).await;
            }
        }
    }
}

/// Tells the relay the answer on that channel was refused: the challenge
/// opens again there (a bogus answer must not use up the real device's
/// chance) and the device is shown why.
async fn reopen(ctx: &Ctx, issued: &Issued, answer: &Answer, why: &str) {
    let Some(relay) = ctx.relay.as_ref() else {
        return;
    };
    let id = B64.encode(issued.challenge.id);
    if let Err(e) = relay
        .refuse_answer(&answer.channel, &answer.token, &id, why)
        .await
    {
        ctx.log.warning(&format!(
            "could not reopen the push request after a refused answer: error={}",
            Q(&e.to_string())
        ));
    }
}
