//! `ism`: serve IS-Messenger's services, migrate their databases, and bootstrap tenants.
mod admin;
mod services;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use ism_platform::config::{ServiceName, Settings};

// Every request and event allocates many short-lived buffers across threads; glibc's
// allocator spent a tenth of the platform's CPU there (malloc, free, consolidation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ISM_COMMIT"),
    ")"
);

/// IS-Messenger: omnichannel business messaging.
///
/// Configuration comes from built-in defaults overridden by ISM_<SECTION>__<KEY>
/// environment variables (see docs/configuration.md); `ism config` prints the defaults.
#[derive(Parser)]
#[command(name = "ism", version = VERSION, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one service, or `all` of them in this process (still talking over gRPC and
    /// RabbitMQ). Stops gracefully on SIGTERM, draining in-flight work.
    Serve {
        /// workspaces, gateway, contacts, conversations, broadcasts, workflows,
        /// integrations, or all.
        service: String,
    },
    /// Create (if missing) and migrate one service's database, or `all` (the default).
    Migrate {
        #[arg(default_value = "all")]
        service: String,
    },
    /// Bootstrap tenants and credentials straight in the databases (operators only).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Exchange an API key for an access token (prints the token).
    Token {
        /// The API key, `ism_<prefix>_<secret>`.
        #[arg(long, env = "ISM_API_KEY")]
        api_key: String,
    },
    /// Send a signed message to a custom channel's webhook, as a business's system would.
    Webhook(admin::WebhookArgs),
    /// Print the built-in configuration defaults, every key documented; with
    /// `--effective`, the configuration in effect here, secrets masked.
    Config {
        /// The defaults with this environment's `ISM_*` overrides, as JSON, secrets masked.
        #[arg(long)]
        effective: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Arc::new(Settings::load()?);
    match cli.command {
        Command::Serve { service } => {
            ism_platform::metrics::build_info(env!("CARGO_PKG_VERSION"), env!("ISM_COMMIT"));
            services::serve(settings, &service).await
        }
        Command::Migrate { service } => {
            let _telemetry = ism_platform::telemetry::init(&settings.telemetry, "ism-migrate")?;
            for name in selected(&service)? {
                services::migrate(&settings, name).await?;
                tracing::info!(service = %name, "migrated");
            }
            Ok(())
        }
        Command::Admin(command) => admin::run(&settings, command).await,
        Command::Token { api_key } => admin::token(&settings, &api_key).await,
        Command::Webhook(args) => admin::webhook(&settings, args).await,
        Command::Config { effective: false } => {
            print!("{}", ism_platform::config::DEFAULTS);
            Ok(())
        }
        Command::Config { effective: true } => {
            println!("{}", settings.effective()?);
            Ok(())
        }
    }
}

/// The services `name` stands for: one, or every one for `all`.
fn selected(name: &str) -> anyhow::Result<Vec<ServiceName>> {
    if name == "all" {
        Ok(ServiceName::ALL.to_vec())
    } else {
        Ok(vec![name.parse().map_err(anyhow::Error::msg)?])
    }
}
