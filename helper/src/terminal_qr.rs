//! QR codes drawn with text for a PAM prompt: two rows of modules per line
//! in half blocks, with no escape sequences (the module would strip them).
//!
//! Light modules are drawn as blocks, dark ones as blanks, so the code is
//! right on the usual light-on-dark terminal; on a dark-on-light one it is
//! inverted, which the web app's scanner reads too. A quiet zone of two
//! modules (scanners need little on a screen) keeps 14 versions inside 80
//! columns.

use qrcode::{Color, EcLevel, QrCode};

/// Columns a login prompt may use.
pub const MAX_COLUMNS: usize = 80;
const QUIET: usize = 2;

/// `text` as lines of half blocks, or None when it would not fit in
/// `MAX_COLUMNS` (or is too long for any QR code).
pub fn render(text: &str) -> Option<String> {
    // Low error correction: a screen is not a scuffed label, and a smaller
    // code fits more terminals.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    let width = code.width();
    let side = width + 2 * QUIET;
    if side > MAX_COLUMNS {
        return None;
    }
    let colors = code.to_colors();
    let light = |x: usize, y: usize| -> bool {
        if x < QUIET || y < QUIET || x >= width + QUIET || y >= width + QUIET {
            return true;
        }
        colors[(y - QUIET) * width + (x - QUIET)] == Color::Light
    };
    let mut out = String::with_capacity(side * side * 2);
    for row in (0..side).step_by(2) {
        for x in 0..side {
            let top = light(x, row);
            // An odd side leaves the last line's lower half to the quiet zone.
            let bottom = row + 1 >= side || light(x, row + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_square_of_half_blocks_inside_80_columns() {
        let art = render("PUSHMFA-OFFLINE:ABCDEFGH234567").unwrap();
        let lines: Vec<&str> = art.lines().collect();
        let side = lines[0].chars().count();
        assert!(side <= MAX_COLUMNS);
        assert_eq!(lines.len(), side.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == side));
        // The quiet zone: the first line is all light.
        assert!(lines[0].chars().all(|c| c == '█'));
    }

    #[test]
    fn too_much_for_80_columns_is_refused() {
        assert!(render(&"A".repeat(1200)).is_none());
    }
}
