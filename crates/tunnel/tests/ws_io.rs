//! The byte-stream adapter over WebSocket messages, on an in-memory pipe.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tunnel::{WsIo, MAX_WRITE_CHUNK};

async fn pair() -> (
    WsIo<tokio::io::DuplexStream>,
    WebSocketStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let client = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    let server = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
    (WsIo::new(client), server)
}

#[tokio::test]
async fn large_writes_become_bounded_binary_messages() {
    let (mut io, mut peer) = pair().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        io.write_all(&data).await.unwrap();
        io.flush().await.unwrap();
        io.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    while let Some(message) = peer.next().await {
        match message.unwrap() {
            Message::Binary(chunk) => {
                assert!(!chunk.is_empty() && chunk.len() <= MAX_WRITE_CHUNK);
                received.extend_from_slice(&chunk);
            }
            Message::Close(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    writer.await.unwrap();
    assert!(received == expected);
}

#[tokio::test]
async fn reads_join_messages_skip_pings_and_end_at_close() {
    let (mut io, mut peer) = pair().await;
    peer.send(Message::Binary(Bytes::from_static(b"hello ")))
        .await
        .unwrap();
    peer.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    peer.send(Message::Binary(Bytes::new())).await.unwrap();
    peer.send(Message::Binary(Bytes::from_static(b"tunnel world")))
        .await
        .unwrap();
    peer.send(Message::Close(None)).await.unwrap();

    // Small reads split messages; the ping is answered, not read.
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    loop {
        let n = io.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, b"hello tunnel world");
    // The peer sees the pong for its ping.
    assert_eq!(
        peer.next().await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"p"))
    );
}

#[tokio::test]
async fn text_messages_are_an_error() {
    let (mut io, mut peer) = pair().await;
    peer.send(Message::text("nope")).await.unwrap();
    let error = io.read(&mut [0u8; 16]).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}
