//! Length-prefixed JSON frames: a 4-byte big-endian payload length, then the
//! payload `{"v": <version>, "msg": <message>}`.
//!
//! The length is checked against [`MAX_FRAME_LEN`] before anything is
//! allocated, so a peer cannot make the other side buffer more than that.
//! Buffers are `Zeroizing` because frames carry recovery codes.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use zeroize::Zeroizing;

/// Version of the IPC protocol; both sides refuse a frame of another version.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest payload either side accepts (the longest legitimate frame is a
/// status reply or a list of recovery codes, well under 4 KiB).
pub const MAX_FRAME_LEN: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer closed the connection")]
    Closed,
    #[error("frame truncated: the peer closed the connection mid-frame")]
    Truncated,
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("timed out waiting for the peer")]
    TimedOut,
    #[error("protocol version {got} is not supported (expected {PROTOCOL_VERSION})")]
    Version { got: u16 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    v: u16,
    msg: &'a T,
}

/// Decoded after the version was checked, so `v` is not needed again.
#[derive(Deserialize)]
struct Envelope<T> {
    msg: T,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u16,
}

/// Serializes `msg` into a complete frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut out = Zeroizing::new(vec![0u8; 4]);
    serde_json::to_writer(
        &mut *out,
        &EnvelopeRef {
            v: PROTOCOL_VERSION,
            msg,
        },
    )
    .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    let prefix = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
    out[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(out)
}

/// Validates a length prefix: non-zero and within the cap.
pub fn payload_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME_LEN => Err(FrameError::TooLarge(n)),
        n => Ok(n),
    }
}

/// Parses a payload (without the length prefix), checking the version first
/// so an old or new peer gets a version error rather than a parse error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let head: VersionOnly =
        serde_json::from_slice(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if head.v != PROTOCOL_VERSION {
        return Err(FrameError::Version { got: head.v });
    }
    let env: Envelope<T> =
        serde_json::from_slice(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok(env.msg)
}

fn map_read_err(e: io::Error, started: bool) -> FrameError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::TimedOut,
        io::ErrorKind::UnexpectedEof if started => FrameError::Truncated,
        io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => FrameError::Io(e),
    }
}

/// Reads one frame from a blocking reader (the reader's own timeout applies).
pub fn read_frame<T: DeserializeOwned, R: Read>(r: &mut R) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(map_read_err(e, got > 0)),
        }
    }
    let len = payload_len(header)?;
    let mut payload = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut payload)
        .map_err(|e| map_read_err(e, true))?;
    decode(&payload)
}

/// Writes one frame to a blocking writer.
pub fn write_frame<T: Serialize, W: Write>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::TimedOut,
        _ => FrameError::Io(e),
    })?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{Begin, Request};
    use std::io::Cursor;

    fn begin() -> Request {
        Request::Begin(Begin {
            user: "alice".into(),
            service: "sudo".into(),
            rhost: Some("192.0.2.7".into()),
            tty: None,
            ruser: None,
            silent: false,
            after_denial: false,
        })
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&begin()).unwrap();
        let back: Request = read_frame(&mut Cursor::new(bytes.to_vec())).unwrap();
        assert_eq!(back, begin());
    }

    #[test]
    fn garbage_is_malformed() {
        let mut buf = 7u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"garbage");
        let r: Result<Request, _> = read_frame(&mut Cursor::new(buf));
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn unknown_message_type_is_malformed() {
        let payload = br#"{"v":1,"msg":{"type":"make_me_root"}}"#;
        let r: Result<Request, _> = decode(payload);
        assert!(matches!(r, Err(FrameError::Malformed(_))));
    }

    #[test]
    fn oversize_is_rejected_before_reading_payload() {
        let buf = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        let r: Result<Request, _> = read_frame(&mut Cursor::new(buf));
        assert!(matches!(r, Err(FrameError::TooLarge(_))));
        let buf = u32::MAX.to_be_bytes().to_vec();
        let r: Result<Request, _> = read_frame(&mut Cursor::new(buf));
        assert!(matches!(r, Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn encode_refuses_oversize() {
        let big = Request::Begin(Begin {
            user: "a".repeat(MAX_FRAME_LEN),
            service: "x".into(),
            rhost: None,
            tty: None,
            ruser: None,
            silent: false,
            after_denial: false,
        });
        assert!(matches!(encode(&big), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn truncation_is_detected() {
        let bytes = encode(&begin()).unwrap();
        for cut in [1, 3, 5, bytes.len() - 1] {
            let r: Result<Request, _> = read_frame(&mut Cursor::new(bytes[..cut].to_vec()));
            assert!(matches!(r, Err(FrameError::Truncated)), "cut {cut}: {r:?}");
        }
        let r: Result<Request, _> = read_frame(&mut Cursor::new(Vec::new()));
        assert!(matches!(r, Err(FrameError::Closed)));
    }

    #[test]
    fn zero_length_and_wrong_version() {
        let r: Result<Request, _> = read_frame(&mut Cursor::new(vec![0, 0, 0, 0]));
        assert!(matches!(r, Err(FrameError::Empty)));
        let r: Result<Request, _> = decode(br#"{"v":2,"msg":{"type":"ping"}}"#);
        assert!(matches!(r, Err(FrameError::Version { got: 2 })));
    }
}
