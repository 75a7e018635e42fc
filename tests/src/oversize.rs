//! Oversized uploads, refused the way a server should: from the declared length alone.
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
