//! Async framed connection to one client, with a timeout on every read.

use pushmfa_protocol::frame::{self, FrameError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use zeroize::Zeroizing;

pub struct Conn {
    stream: UnixStream,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn { stream }
    }

    /// Reads one frame, or fails after `timeout`.
    pub async fn recv<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, FrameError> {
        match tokio::time::timeout(timeout, self.recv_inner()).await {
            Ok(r) => r,
            Err(_) => Err(FrameError::TimedOut),
        }
    }

    async fn recv_inner<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.stream.read(&mut header[got..]).await? {
                0 if got == 0 => return Err(FrameError::Closed),
                0 => return Err(FrameError::Truncated),
                n => got += n,
            }
        }
        let len = frame::payload_len(header)?;
        let mut payload = Zeroizing::new(vec![0u8; len]);
        self.stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => FrameError::Truncated,
                _ => FrameError::Io(e),
            })?;
        frame::decode(&payload)
    }

    /// Resolves when the client has gone (its end closed), or spoke out of
    /// turn while it should be waiting for us. Cancel-safe.
    pub async fn closed(&mut self) {
        let mut byte = [0u8; 1];
        loop {
            if self.stream.readable().await.is_err() {
                return;
            }
            match self.stream.try_read(&mut byte) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // 0: end of stream; data or an error: no longer a waiting client.
                _ => return,
            }
        }
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        let bytes = frame::encode(msg)?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }
}
