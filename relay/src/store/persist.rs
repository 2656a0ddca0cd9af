//! Device channels on disk: `<data>/channels.json`, replaced atomically
//! (temp file, fsync, rename, fsync of the directory). Only token hashes are
//! stored. A corrupt file stops the relay with an error instead of being
//! reset, which would silently unenroll every device.

use super::records::ChannelKeys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::relay_api::PushSubscription;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::Path;

const FILE: &str = "channels.json";
/// A channels file larger than this is refused.
const MAX_LEN: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    channels: Vec<SavedChannel>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedChannel {
    id: String,
    helper_token_sha256: String,
    device_token_sha256: String,
    created_at: u64,
    /// The device's Web Push subscription, if it registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push: Option<PushSubscription>,
}

/// What survives a restart of a channel.
#[derive(Debug, Clone)]
pub struct Durable {
    pub keys: ChannelKeys,
    pub created_at: u64,
    pub push: Option<PushSubscription>,
}

fn hash32(s: &str) -> Result<[u8; 32], String> {
    super::records::decode_hash(s).ok_or_else(|| "malformed token hash".to_owned())
}

pub fn load(dir: &Path) -> Result<HashMap<String, Durable>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(FILE);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if meta.len() > MAX_LEN {
        return Err(format!("{}: larger than {MAX_LEN} bytes", path.display()));
    }
    let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let saved: Saved = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{}: corrupt ({e}); restore it from a backup or move it away to start empty",
            path.display()
        )
    })?;
    if saved.version != 1 {
        return Err(format!(
            "{}: unsupported version {}",
            path.display(),
            saved.version
        ));
    }
    saved
        .channels
        .into_iter()
        .map(|c| {
            let keys = ChannelKeys {
                helper: hash32(&c.helper_token_sha256)?,
                device: hash32(&c.device_token_sha256)?,
            };
            let durable = Durable {
                keys,
                created_at: c.created_at,
                push: c.push,
            };
            Ok((c.id, durable))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("{}: corrupt ({e})", path.display()))
}

pub fn save<'a>(
    dir: &Path,
    channels: impl Iterator<Item = (&'a String, &'a Durable)>,
) -> std::io::Result<()> {
    let saved = Saved {
        version: 1,
        channels: channels
            .map(|(id, c)| SavedChannel {
                id: id.clone(),
                helper_token_sha256: B64.encode(c.keys.helper),
                device_token_sha256: B64.encode(c.keys.device),
                created_at: c.created_at,
                push: c.push.clone(),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    pushmfa_config::replace_file(&dir.join(FILE), &bytes, 0o600, None)
}
