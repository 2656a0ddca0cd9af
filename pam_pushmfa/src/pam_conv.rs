//! The real [`Conversation`] over libpam's conversation function.

use crate::core::{ConvError, Conversation};
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO};
use pam::conv::Conv;
use zeroize::Zeroizing;

pub struct PamConversation<'a> {
    pub conv: &'a Conv<'a>,
    /// PAM_SILENT: informational messages are suppressed.
    pub silent: bool,
}

impl Conversation for PamConversation<'_> {
    fn info(&mut self, text: &str) -> Result<(), ConvError> {
        if self.silent {
            return Ok(());
        }
        self.conv
            .send(PAM_TEXT_INFO, text)
            .map(|_| ())
            .map_err(|_| ConvError)
    }

    fn error(&mut self, text: &str) -> Result<(), ConvError> {
        if self.silent {
            return Ok(());
        }
        self.conv
            .send(PAM_ERROR_MSG, text)
            .map(|_| ())
            .map_err(|_| ConvError)
    }

    fn prompt(&mut self, text: &str, echo: bool) -> Result<Zeroizing<String>, ConvError> {
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        // A NULL response or a non-UTF-8 answer is a failed conversation.
        match self.conv.send(style, text) {
            Ok(Some(secret)) => secret
                .as_str()
                .map(|s| Zeroizing::new(s.to_owned()))
                .map_err(|_| ConvError),
            _ => Err(ConvError),
        }
    }
}
