//! Listening sockets: handed over by the process that started this one, or bound here.
//!
//! A supervisor (the e2e harness, systemd) may bind the sockets itself and pass them
//! down with systemd's socket activation protocol: `LISTEN_FDS` sockets from fd 3 on,
//! named in order by `LISTEN_FDNAMES` (`gateway.grpc:gateway.metrics:gateway.http:...`).
//! It then knows every address before the process starts, without guessing free ports,
//! and a restarted process takes over the same sockets; connections made meanwhile wait
//! in the socket's backlog instead of being refused. Without such a socket a name binds
//! its configured port, where 0 asks the system for any free one; the address bound is
//! logged either way.
use std::sync::{Mutex, OnceLock};

use listenfd::ListenFd;
use tokio::net::TcpListener;

/// The sockets handed over at start, by name; each is taken once.
struct Inherited {
    names: Vec<String>,
    fds: ListenFd,
}

fn inherited() -> &'static Mutex<Inherited> {
    static INHERITED: OnceLock<Mutex<Inherited>> = OnceLock::new();
    INHERITED.get_or_init(|| {
        let names = std::env::var("LISTEN_FDNAMES")
            .map(|names| names.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        Mutex::new(Inherited {
            names,
            fds: ListenFd::from_env(),
        })
    })
}

/// The socket named `name` (`<service>.grpc`, `<service>.metrics`, `gateway.http`): the
/// one handed over under that name, or else a new one on `host:port`.
pub async fn listen(name: &str, host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let handed = {
        let mut inherited = inherited()
            .lock()
            .map_err(|_| anyhow::anyhow!("listener table poisoned"))?;
        match inherited.names.iter().position(|n| n == name) {
            Some(index) => inherited
                .fds
                .take_tcp_listener(index)
                .map_err(|e| anyhow::anyhow!("inherited socket {name}: {e}"))?,
            None => None,
        }
    };
    let listener = match handed {
        Some(listener) => {
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)?
        }
        None => {
            let address = format!("{host}:{port}");
            TcpListener::bind(&address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?
        }
    };
    tracing::info!(socket = name, address = %listener.local_addr()?, "listening");
    Ok(listener)
}
