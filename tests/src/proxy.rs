//! A TCP relay in front of one of the machine's servers (Postgres, RabbitMQ), so that a
//! test can make it unreachable for one platform alone (for the rest of the test): cut, every connection through it
//! is closed and new ones are closed as soon as they are accepted; restored, it relays
//! again.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay to `target`, listening on a port of its own.
pub struct Proxy {
    pub port: u16,
    target: String,
    up: Arc<AtomicBool>,
    /// Bumped by each cut: every relayed connection ends when it changes.
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// Relays `127.0.0.1:<port>` to `target` (`host:port`) for the rest of the test.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("bound").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0);
        let proxy = Self {
            port,
            target: target.to_owned(),
            up: up.clone(),
            cuts: cuts.clone(),
        };
        let target = target.to_owned();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Both ends closed: the server is gone for the client.
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// `url` with its `host:port` replaced by this relay's.
    pub fn url(&self, url: &str) -> String {
        url.replacen(&self.target, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Closes every connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
