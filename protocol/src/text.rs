//! Making untrusted text safe to put on a terminal.

/// Replaces characters that could rewrite a terminal or reorder text: C0/C1
/// control characters (ESC, CR, BEL, ...; `\n` is kept only when
/// `allow_newline`), DEL, and Unicode bidi/zero-width format characters.
pub fn sanitize(s: &str, allow_newline: bool) -> String {
    s.chars()
        .map(|c| {
            if (c == '\n' && allow_newline) || !is_dangerous(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'   // zero-width, LRM/RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{061C}'              // arabic letter mark
            | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn strips_escapes_and_bidi() {
        assert_eq!(sanitize("a\x1b[2Jb\rc\u{7f}", false), "a?[2Jb?c?");
        assert_eq!(sanitize("x\u{202E}gpj.exe", false), "x?gpj.exe");
        assert_eq!(sanitize("\u{9b}31m", false), "?31m");
        assert_eq!(sanitize("line1\nline2", true), "line1\nline2");
        assert_eq!(sanitize("line1\nline2", false), "line1?line2");
        assert_eq!(
            sanitize("héllo wörld 203.0.113.7", false),
            "héllo wörld 203.0.113.7"
        );
    }
}
