//! Records read back from Redis hashes. A field that does not parse makes
//! the record absent (as if expired), never a wrong one.

use crate::store::records::{Pending, Slot, decode_hash};
use std::collections::HashMap;

/// Challenges from a `pend:` hash's fields and values, in turn.
pub(super) fn pending_from_fields(flat: &[String]) -> HashMap<String, Pending> {
    let mut parts: HashMap<&str, HashMap<&str, &str>> = HashMap::new();
    for pair in flat.chunks_exact(2) {
        if let Some((id, kind)) = pair[0].rsplit_once(':') {
            parts.entry(id).or_default().insert(kind, &pair[1]);
        }
    }
    parts
        .into_iter()
        .filter_map(|(id, f)| {
            let record = serde_json::from_str(f.get("r")?).ok()?;
            let pending = Pending {
                record,
                expires_ms: f.get("x")?.parse().ok()?,
                answered: f.contains_key("a"),
                refused: f.get("f").map(|s| (*s).to_owned()),
                response: f.get("s").and_then(|s| serde_json::from_str(s).ok()),
            };
            Some((id.to_owned(), pending))
        })
        .collect()
}

pub(super) fn slot_from_fields(f: &HashMap<String, String>) -> Option<Slot> {
    Some(Slot {
        helper_token: decode_hash(f.get("helper")?)?,
        expires_ms: f.get("exp")?.parse().ok()?,
        client: f.get("client")?.parse().ok()?,
        device_token: f.get("device").and_then(|d| decode_hash(d)),
        result: f.get("result").and_then(|r| serde_json::from_str(r).ok()),
        outcome: f.get("outcome").and_then(|o| serde_json::from_str(o).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_fields_become_challenges_and_broken_ones_are_skipped() {
        let rec = r#"{"id":"a","challenge":"Yw","signature":"cw","expires_in":60}"#;
        let flat: Vec<String> = [
            ("a:r", rec),
            ("a:x", "5000"),
            ("a:a", "1"),
            ("a:s", r#"{"response":"cg","signature":"cw"}"#),
            ("b:r", "{not json"),
            ("b:x", "5000"),
            ("c:x", "5000"),
            ("odd", ""),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect();
        let p = pending_from_fields(&flat);
        assert_eq!(p.len(), 1, "only the whole record counts");
        let a = &p["a"];
        assert!(a.answered && a.response.is_some() && a.expires_ms == 5000);
    }
}
