//! User verification: an answer's passkey assertion, checked against the
//! passkey its device registered (protocol::passkey).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::envelope::Assertion;
use pushmfa_protocol::passkey::{Passkey, PasskeyError};
use pushmfa_state::Device;

/// Why an answer does not show its user was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    /// The device has no passkey, or the answer no assertion.
    NoPasskey,
    Failed(PasskeyError),
}

/// The device's passkey vouches that its user was verified for exactly
/// this approval.
pub fn user_verified(
    device: &Device,
    approval: &[u8],
    assertion: Option<&Assertion>,
) -> Result<(), Unverified> {
    let (Some(passkey), Some(assertion)) = (&device.passkey, assertion) else {
        return Err(Unverified::NoPasskey);
    };
    let passkey = B64
        .decode(passkey)
        .map_err(|_| Unverified::Failed(PasskeyError::Malformed))
        .and_then(|b| Passkey::decode(&b).map_err(Unverified::Failed))?;
    passkey
        .verify(approval, assertion)
        .map_err(Unverified::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(passkey: Option<&Passkey>) -> Device {
        Device {
            id: "d".into(),
            name: "phone".into(),
            public_key: String::new(),
            channel_id: "c".into(),
            channel_token: "t".into(),
            added_at: 0,
            encryption_key: Some(B64.encode([4u8; 65])),
            passkey: passkey.map(|p| B64.encode(p.encode())),
            offline_key: None,
        }
    }

    #[test]
    fn no_passkey_or_an_assertion_that_does_not_verify_is_refused() {
        let assertion = Assertion {
            authenticator_data: vec![0; 37],
            client_data_json: b"{}".to_vec(),
            signature: vec![0x30, 0],
        };
        assert_eq!(
            user_verified(&device(None), b"approval", Some(&assertion)),
            Err(Unverified::NoPasskey)
        );
        let passkey = Passkey {
            origin: "https://relay.example.org".into(),
            credential_id: vec![1; 16],
            public_key: [4; 65],
        };
        assert_eq!(
            user_verified(&device(Some(&passkey)), b"approval", None),
            Err(Unverified::NoPasskey)
        );
        assert_eq!(
            user_verified(&device(Some(&passkey)), b"approval", Some(&assertion)),
            Err(Unverified::Failed(PasskeyError::OtherRelyingParty))
        );
        let mut broken = device(None);
        broken.passkey = Some("!!".into());
        assert_eq!(
            user_verified(&broken, b"approval", Some(&assertion)),
            Err(Unverified::Failed(PasskeyError::Malformed))
        );
    }
}
