//! Offline approval: a request pasted from a login prompt (or read from its
//! QR code) is checked against the enrolled host key, and approving it
//! gives the 8-digit code to type at that prompt. No network is used.

use crate::{Account, AuthError, Store};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::offline::{KEY_LEN, format_code, parse_request_text, response_code};
use pushmfa_protocol::signed::{self, Challenge};
use pushmfa_protocol::text::sanitize;
use zeroize::Zeroizing;

/// A pasted request whose host signature checked out, and its account.
#[derive(Debug)]
pub struct OfflineRequest {
    pub account: Account,
    pub challenge: Challenge,
    encoded: Vec<u8>,
}

impl OfflineRequest {
    /// Checks `text` (`PUSHMFA-OFFLINE:...`, whitespace ignored) against
    /// the accounts enrolled for its host and user.
    pub fn parse(store: &Store, text: &str) -> Result<OfflineRequest, AuthError> {
        let (encoded, sig) =
            parse_request_text(text).map_err(|e| AuthError::Usage(e.to_string()))?;
        let challenge =
            Challenge::decode(&encoded).map_err(|e| AuthError::Usage(format!("request: {e}")))?;
        let mut on_host = Vec::new();
        for account in store.accounts()? {
            let host_key = account.host_key()?;
            if signed::host_id(&host_key) == challenge.host_id {
                on_host.push((account, host_key));
            }
        }
        if on_host.is_empty() {
            return Err(AuthError::Usage(
                "this request comes from a computer this authenticator is not enrolled with".into(),
            ));
        }
        let signed_by_host = on_host
            .iter()
            .any(|(_, key)| signed::verify(key, &encoded, &sig).is_ok());
        if !signed_by_host {
            return Err(AuthError::Usage(
                "this request is NOT signed by the enrolled computer: do not type any code for it"
                    .into(),
            ));
        }
        let account = on_host
            .into_iter()
            .map(|(a, _)| a)
            .find(|a| a.account == challenge.context.user)
            .ok_or_else(|| {
                AuthError::Usage(format!(
                    "this request is for user {}, who is not enrolled here",
                    sanitize(&challenge.context.user, false)
                ))
            })?;
        Ok(OfflineRequest {
            account,
            challenge,
            encoded,
        })
    }

    /// What the user is asked to approve, with control characters removed.
    pub fn describe(&self) -> String {
        crate::describe(&self.account, &self.challenge, "offline")
    }

    /// The code that approves this request, as `1234 5678`.
    pub fn approval_code(&self) -> Result<String, AuthError> {
        let stored = self.account.offline_key.as_deref().ok_or_else(|| {
            AuthError::Usage(
                "this account was enrolled before offline approval existed: re-enroll it for offline approval"
                    .into(),
            )
        })?;
        let bytes = Zeroizing::new(
            B64.decode(stored)
                .map_err(|_| AuthError::Key("stored offline key is not base64"))?,
        );
        let key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| AuthError::Key("stored offline key has the wrong length"))?,
        );
        Ok(format_code(response_code(&key, &self.encoded)))
    }
}
