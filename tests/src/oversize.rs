//! Oversized uploads, refused the way a server should: from the declared length alone;
//! and slow clients, cut off.
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Sends only the head of a `POST path` whose body is declared to be `length` bytes, and
/// returns the status code the server answers before reading any of it. A client that
/// writes the whole body can instead see the connection closed under it, depending on
/// timing, which says nothing about the server.
pub async fn declared_length_status(
    port: u16,
    path: &str,
    headers: &[(&str, String)],
    length: usize,
) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server reachable");
    let mut head =
        format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut status_line = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut status_line))
        .await
        .expect("an answer before the body: the server waits for a body it should refuse")
        .expect("an answer");
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"))
}

/// Sends `bytes` to the server on `port`, the first `at_once` of them together and the
/// rest one at a time, `every` apart, as a slow client (or a slowloris) does, reading at
/// the same time: what the server answered and how long after connecting it answered
/// or closed the connection (at most 30 s).
pub async fn trickle(
    port: u16,
    mut bytes: Vec<u8>,
    at_once: usize,
    every: Duration,
) -> (String, Duration) {
    let started = tokio::time::Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server reachable");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let rest = bytes.split_off(at_once.min(bytes.len()));
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
        for byte in rest {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Everything sent: keep the connection open as a slow client would.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&chunk[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    writing.abort();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}
