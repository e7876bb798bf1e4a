//! A byte stream over the binary messages of a WebSocket.

use core::pin::Pin;
use core::task::{ready, Context, Poll};
use core::time::Duration;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The most bytes one write puts into one WebSocket message.
pub const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// A byte stream carried by the binary messages of a WebSocket.
///
/// Writes become binary messages of at most [`MAX_WRITE_CHUNK`] bytes;
/// reads hand out the bytes of the received binary messages in order, keeping
/// the rest of a message for the next read. Ping and pong messages are
/// answered and skipped by the WebSocket layer; a close message, or the
/// connection ending, reads as end of file. A text message is a protocol
/// error ([`io::ErrorKind::InvalidData`]). Message boundaries carry no
/// meaning.
#[derive(Debug)]
pub struct WsIo<T> {
    ws: WebSocketStream<T>,
    pending: Bytes,
    /// The peer's close message (or the end of the connection) was read.
    eof: bool,
    /// Our side was shut down: writing now is a caller error.
    shut_down: bool,
    /// Told of every message received, for a watchdog.
    heard: Option<Arc<Heard>>,
}

/// When a [`WsIo`] last received a message, for a watchdog on a peer that
/// is known to send something at least every so often.
#[derive(Debug)]
pub(crate) struct Heard {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Heard {
    pub(crate) fn new() -> Heard {
        Heard {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn hear(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// Resolves once nothing has been heard for `limit`, with how long.
    pub(crate) async fn silence(&self, limit: Duration) -> Duration {
        loop {
            let quiet =
                Duration::from_millis(self.now().saturating_sub(self.last.load(Ordering::Relaxed)));
            if quiet >= limit {
                return quiet;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

impl<T> WsIo<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps an open WebSocket.
    pub fn new(ws: WebSocketStream<T>) -> Self {
        WsIo {
            ws,
            pending: Bytes::new(),
            eof: false,
            shut_down: false,
            heard: None,
        }
    }

    /// Tells `heard` of every message received.
    pub(crate) fn with_heard(mut self, heard: Arc<Heard>) -> Self {
        self.heard = Some(heard);
        self
    }

    /// Wraps an open WebSocket from which `received` was already taken:
    /// those bytes are read first.
    pub fn with_received(ws: WebSocketStream<T>, received: Bytes) -> Self {
        WsIo {
            pending: received,
            ..WsIo::new(ws)
        }
    }

    /// Gives back the WebSocket. Bytes already received but not yet read are
    /// lost.
    pub fn into_inner(self) -> WebSocketStream<T> {
        self.ws
    }
}

impl<T> WsIo<T> {
    /// Whether `error` only says that the peer already closed the WebSocket
    /// (and we did not shut down our side ourselves).
    fn peer_closed(&self, error: &tungstenite::Error) -> bool {
        !self.shut_down
            && matches!(
                error,
                tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::SendAfterClosing
                    )
            )
    }
}

fn to_io(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        other => io::Error::other(other),
    }
}

impl<T> AsyncRead for WsIo<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.pending.is_empty() {
                let n = buf.remaining().min(this.pending.len());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let message = ready!(Pin::new(&mut this.ws).poll_next(cx));
            if let (Some(heard), Some(Ok(_))) = (&this.heard, &message) {
                heard.hear();
            }
            match message {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => this.eof = true,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on a binary tunnel",
                    )))
                }
                Some(Err(error)) => return Poll::Ready(Err(to_io(error))),
            }
        }
    }
}

impl<T> AsyncWrite for WsIo<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let n = buf.len().min(MAX_WRITE_CHUNK);
        if this.eof {
            // The peer closed the WebSocket: like a TCP peer that has shut
            // down, it will read nothing more, so the bytes are dropped.
            return Poll::Ready(Ok(n));
        }
        match ready!(Pin::new(&mut this.ws).poll_ready(cx)) {
            Ok(()) => {}
            Err(error) if this.peer_closed(&error) => return Poll::Ready(Ok(n)),
            Err(error) => return Poll::Ready(Err(to_io(error))),
        }
        let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
        match Pin::new(&mut this.ws).start_send(message) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(error) if this.peer_closed(&error) => Poll::Ready(Ok(n)),
            Err(error) => Poll::Ready(Err(to_io(error))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.ws).poll_flush(cx)) {
            Err(error) if !this.peer_closed(&error) => Poll::Ready(Err(to_io(error))),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shut_down = true;
        match ready!(Pin::new(&mut this.ws).poll_close(cx)) {
            Err(error) if !this.peer_closed(&error) => Poll::Ready(Err(to_io(error))),
            _ => Poll::Ready(Ok(())),
        }
    }
}
