//! The client side of the helper's admin calls, blocking (the `pushmfa` CLI,
//! tests, benchmarks): one request and its reply over the helper's socket.

use crate::frame::{self, FrameError};
use crate::ipc::{AdminReply, AdminRequest, Request, Response};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the helper at {path}: {error} (is pushmfa-helper running? see `pushmfa doctor`)"
    )]
    Connect { path: String, error: std::io::Error },
    #[error("helper: {0}")]
    Frame(#[from] FrameError),
    #[error("refused: {0}")]
    Refused(String),
    #[error("unexpected answer from the helper")]
    Unexpected,
}

/// Sends one admin request and returns the reply.
pub fn call(
    socket: &Path,
    req: AdminRequest,
    timeout: Duration,
) -> Result<AdminReply, ClientError> {
    let mut s = UnixStream::connect(socket).map_err(|error| ClientError::Connect {
        path: socket.display().to_string(),
        error,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(FrameError::Io)?;
    s.set_write_timeout(Some(timeout)).map_err(FrameError::Io)?;
    frame::write_frame(&mut s, &Request::Admin(req))?;
    match frame::read_frame::<Response, _>(&mut s)? {
        Response::AdminReply(r) => Ok(r),
        Response::Refused { message } => Err(ClientError::Refused(message)),
        _ => Err(ClientError::Unexpected),
    }
}

/// A connection for calls answered more than once (enrollment).
pub struct Session {
    stream: UnixStream,
}

impl Session {
    pub fn start(socket: &Path, req: AdminRequest) -> Result<Session, ClientError> {
        let mut stream = UnixStream::connect(socket).map_err(|error| ClientError::Connect {
            path: socket.display().to_string(),
            error,
        })?;
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(FrameError::Io)?;
        frame::write_frame(&mut stream, &Request::Admin(req))?;
        Ok(Session { stream })
    }

    /// The next reply, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Result<AdminReply, ClientError> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(FrameError::Io)?;
        match frame::read_frame::<Response, _>(&mut self.stream)? {
            Response::AdminReply(r) => Ok(r),
            Response::Refused { message } => Err(ClientError::Refused(message)),
            _ => Err(ClientError::Unexpected),
        }
    }
}
