//! Prints a fresh set of test vectors as JSON (how protocol/testdata/vectors.json
//! was made): `cargo run -p pushmfa-protocol --features sealed --example make_vectors`.
//! ECDSA signatures are randomized, so each run differs; any run is valid.
//! The enrollment MAC entries (`enroll_*`) are fixed inputs, kept by hand.

use pushmfa_protocol::signed::{Approval, Challenge, Context, Decision, device_id, host_id};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rng = SystemRandom::new();
    let key = |rng: &SystemRandom| -> Result<(Vec<u8>, EcdsaKeyPair), Box<dyn std::error::Error>> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(|_| "keygen")?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
            .map_err(|_| "pkcs8")?;
        Ok((pkcs8.as_ref().to_vec(), pair))
    };
    let (host_pkcs8, host) = key(&rng)?;
    let (dev_pkcs8, dev) = key(&rng)?;
    let challenge = Challenge {
        id: [0x11; 32],
        host_id: host_id(host.public_key().as_ref()),
        host_name: "web-1.example.org".into(),
        context: Context {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "203.0.113.7".into(),
            tty: "ssh".into(),
        },
        issued_at: 1_795_000_000,
        expires_at: 1_795_000_060,
    };
    let c_bytes = challenge.encode();
    let c_sig = host.sign(&rng, &c_bytes).map_err(|_| "sign")?;
    let approval = Approval::answer(
        &challenge,
        Decision::Approve,
        Some(47),
        device_id(dev.public_key().as_ref()),
    );
    let a_bytes = approval.encode();
    let a_sig = dev.sign(&rng, &a_bytes).map_err(|_| "sign")?;
    let o_bytes = pushmfa_protocol::signed::enrollment_outcome(
        "K7vQ2mXp9Ls4Tg8Wn3Rb6A",
        dev.public_key().as_ref(),
        true,
    );
    let o_sig = host.sign(&rng, &o_bytes).map_err(|_| "sign")?;
    // Protocol v2: the challenge sealed to a device's encryption key, with
    // the ephemeral key derived from a fixed ikm so the app can reseal it.
    use pushmfa_protocol::sealed::{Binding, Direction, OpeningKey, seal_with_ephemeral};
    let recipient = OpeningKey::generate()?;
    let ephemeral_ikm = [0x45u8; 32];
    let ephemeral = OpeningKey::derive(&ephemeral_ikm)?;
    let binding = Binding {
        channel: "Xw3Zr8Qk2LmN5pTa9VbC1d",
        challenge_id: "EREREREREREREREREREREREREREREREREREREREREREf",
    };
    let sealed = seal_with_ephemeral(
        &recipient.public_key(),
        Direction::ToDevice,
        binding,
        &c_bytes,
        &ephemeral_ikm,
    )?;
    println!(
        "{}",
        serde_json::json!({
            "sealed_recipient_secret": hex(recipient.secret()),
            "sealed_recipient_public": hex(&recipient.public_key()),
            "sealed_ephemeral_ikm": hex(&ephemeral_ikm),
            "sealed_ephemeral_secret": hex(ephemeral.secret()),
            "sealed_ephemeral_public": hex(&ephemeral.public_key()),
            "sealed_channel": binding.channel,
            "sealed_challenge_id": binding.challenge_id,
            "sealed_aad": hex(&binding.aad()?),
            "sealed_to_device": hex(&sealed),
            "host_pkcs8": hex(&host_pkcs8),
            "host_public_key": hex(host.public_key().as_ref()),
            "host_id": hex(&challenge.host_id),
            "device_pkcs8": hex(&dev_pkcs8),
            "device_public_key": hex(dev.public_key().as_ref()),
            "device_id": hex(&approval.device_id),
            "challenge_encoded": hex(&c_bytes),
            "challenge_host_signature": hex(c_sig.as_ref()),
            "approval_encoded": hex(&a_bytes),
            "approval_signature": hex(a_sig.as_ref()),
            "enroll_outcome_accepted": hex(&o_bytes),
            "enroll_outcome_signature": hex(o_sig.as_ref()),
        })
    );
    Ok(())
}
