//! Reading a QR code drawn in half blocks on a terminal (what the offline
//! prompt shows) back into its text, with an independent decoder (rqrr):
//! each character is two modules, a block being light.

/// The first QR code drawn in `text`, decoded.
pub fn decode_terminal(text: &str) -> Option<String> {
    let (w, h, px) = terminal_to_pixels(text, 4);
    if w == 0 {
        return None;
    }
    // A wide white margin around it, as a camera would see the screen.
    let margin = 32;
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w + 2 * margin, h + 2 * margin, |x, y| {
            if x < margin || y < margin || x >= w + margin || y >= h + margin {
                255
            } else {
                px[(y - margin) * w + (x - margin)]
            }
        });
    let grids = img.detect_grids();
    let (_, content) = grids.first()?.decode().ok()?;
    Some(content)
}

/// The terminal drawing as a greyscale image: `(width, height, pixels)`,
/// `scale` pixels per module (white for light modules).
pub fn terminal_to_pixels(text: &str, scale: usize) -> (usize, usize, Vec<u8>) {
    let art: Vec<Vec<char>> = text
        .lines()
        .filter(|l| l.chars().count() >= 21 && l.chars().all(|c| " █▀▄".contains(c)))
        .map(|l| l.chars().collect())
        .collect();
    let width = art.first().map_or(0, Vec::len);
    let (w, h) = (width * scale, art.len() * 2 * scale);
    let mut px = vec![255u8; w * h];
    for (row, line) in art.iter().enumerate() {
        for (x, c) in line.iter().enumerate() {
            for half in 0..2 {
                // The upper half of a line is its first module row.
                if matches!((c, half), ('█', _) | ('▀', 0) | ('▄', 1)) {
                    continue;
                }
                let y0 = (row * 2 + half) * scale;
                for y in y0..y0 + scale {
                    let start = y * w + x * scale;
                    px[start..start + scale].fill(0);
                }
            }
        }
    }
    (w, h, px)
}

/// The QR code drawn in `text` as a one-frame Y4M video of 640x480, black
/// on white in the middle: what Chromium's fake camera
/// (`--use-file-for-fake-video-capture`) shows, as if the phone's camera
/// looked at the terminal.
pub fn terminal_to_y4m(text: &str) -> Vec<u8> {
    let (w, h) = (640usize, 480usize);
    let modules = terminal_to_pixels(text, 1).0.max(1);
    let scale = (440 / modules).max(1);
    let (qw, qh, qr) = terminal_to_pixels(text, scale);
    let (x0, y0) = ((w - qw.min(w)) / 2, (h - qh.min(h)) / 2);
    let mut frame = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\nFRAME\n").into_bytes();
    let header = frame.len();
    frame.resize(header + w * h, 255);
    for y in 0..qh.min(h) {
        for x in 0..qw.min(w) {
            frame[header + (y0 + y) * w + x0 + x] = qr[y * qw + x];
        }
    }
    // Chroma: grey (no colour) for both 2x2-subsampled planes.
    frame.resize(header + w * h + 2 * (w / 2) * (h / 2), 128);
    frame
}

/// Text with its QR codes and offline requests (different in every login)
/// shown as placeholders, for transcripts.
pub fn mask_offline(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_art = false;
    for line in text.split('\n') {
        if line.chars().count() >= 21 && line.chars().all(|c| " █▀▄".contains(c)) {
            if !in_art {
                out.push("[QR code, in half blocks, at most 80 columns]".to_string());
            }
            in_art = true;
            continue;
        }
        in_art = false;
        let masked = match line.find("PUSHMFA-OFFLINE:") {
            Some(i) => {
                let end = line[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
                    .map_or(line.len(), |n| i + n);
                format!(
                    "{}PUSHMFA-OFFLINE:[the request as text]{}",
                    &line[..i],
                    &line[end..]
                )
            }
            None => line.to_owned(),
        };
        out.push(masked);
    }
    out.join("\n")
}
