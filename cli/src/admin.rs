//! Operator commands: tenant bootstrap, tokens, and signed test webhooks.
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ism_platform::auth::Role;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::{db, grpc};
use ism_proto::gateway::v1::CreateChannelRequest;
use ism_proto::types::v1::ChannelType;
use ism_proto::workspaces::v1::ExchangeApiKeyRequest;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use serde_json::json;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an Organization; prints its id.
    CreateOrganization {
        #[arg(long)]
        name: String,
    },
    /// Create a Workspace in an Organization; prints its id.
    CreateWorkspace {
        #[arg(long)]
        organization: Uuid,
        #[arg(long)]
        name: String,
    },
    /// Create an API key; prints the key, which is never shown again.
    CreateApiKey {
        #[arg(long)]
        workspace: Uuid,
        #[arg(long, default_value = "admin")]
        name: String,
        /// owner, manager or agent.
        #[arg(long, default_value = "owner")]
        role: String,
    },
    /// Add a User to a Workspace; prints the User's id.
    CreateUser {
        #[arg(long)]
        workspace: Uuid,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// owner, manager or agent.
        #[arg(long, default_value = "agent")]
        role: String,
    },
    /// Mint an access token acting as a User (valid auth.token_ttl_seconds); prints it.
    UserToken {
        #[arg(long, env = "ISM_DEMO_USER_ID")]
        user: Uuid,
    },
    /// Connect a custom API channel; prints its id and webhook secret.
    CreateChannel {
        #[arg(long)]
        workspace: Uuid,
        #[arg(long)]
        name: String,
        /// Where replies are POSTed.
        #[arg(long)]
        outbound_url: String,
    },
    /// Create a demo Workspace with an owner API key and a custom channel, and write
    /// their details as shell variables to FILE (reused while the Workspace exists).
    Demo {
        #[arg(long, default_value = ".ism/demo.env")]
        file: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8099/outbound")]
        outbound_url: String,
    },
}

pub async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let workspaces = db::prepare(
        &settings.database,
        ServiceName::Workspaces,
        &ism_workspaces::MIGRATOR,
    )
    .await?;
    match command {
        AdminCommand::CreateOrganization { name } => {
            println!(
                "{}",
                ism_workspaces::admin::create_organization(&workspaces, &name).await?
            );
        }
        AdminCommand::CreateWorkspace { organization, name } => {
            println!(
                "{}",
                ism_workspaces::admin::create_workspace(&workspaces, organization, &name)
                    .await?
                    .id
            );
        }
        AdminCommand::CreateApiKey {
            workspace,
            name,
            role,
        } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let (_, secret) =
                ism_workspaces::admin::create_api_key(&workspaces, workspace, &name, role).await?;
            println!("{secret}");
        }
        AdminCommand::CreateUser {
            workspace,
            email,
            name,
            role,
        } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let user =
                ism_workspaces::admin::create_user(&workspaces, workspace, &email, &name, role)
                    .await?;
            println!("{}", user.id);
        }
        AdminCommand::UserToken { user } => {
            let (token, _) = ism_workspaces::admin::user_token(&workspaces, settings, user).await?;
            println!("{token}");
        }
        AdminCommand::CreateChannel {
            workspace,
            name,
            outbound_url,
        } => {
            let (channel, secret) =
                create_channel(settings, workspace, &name, &outbound_url).await?;
            println!("channel_id={}\nwebhook_secret={secret}", channel.id);
        }
        AdminCommand::Demo { file, outbound_url } => {
            demo(settings, &workspaces, &file, &outbound_url).await?
        }
    }
    Ok(())
}

async fn create_channel(
    settings: &Settings,
    workspace: Uuid,
    name: &str,
    outbound_url: &str,
) -> anyhow::Result<(ism_proto::gateway::v1::Channel, String)> {
    let gateway = db::prepare(
        &settings.database,
        ServiceName::Gateway,
        &ism_gateway::MIGRATOR,
    )
    .await?;
    let request = CreateChannelRequest {
        r#type: ChannelType::Custom as i32,
        name: name.to_owned(),
        outbound_url: outbound_url.to_owned(),
    };
    Ok(ism_gateway::create_channel(&gateway, workspace, &request).await?)
}

async fn demo(
    settings: &Settings,
    workspaces: &sqlx::PgPool,
    file: &PathBuf,
    outbound_url: &str,
) -> anyhow::Result<()> {
    if let Ok(existing) = std::fs::read_to_string(file) {
        let workspace_id = existing
            .lines()
            .find_map(|l| l.strip_prefix("ISM_DEMO_WORKSPACE_ID="))
            .and_then(|id| id.parse::<Uuid>().ok());
        if let Some(id) = workspace_id
            && sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1)",
            )
            .bind(id)
            .fetch_one(workspaces)
            .await?
        {
            let mut contents = existing;
            if !contents.contains("ISM_DEMO_USER_ID=") {
                let user = demo_owner(workspaces, id).await?;
                contents.push_str(&format!("ISM_DEMO_USER_ID={user}\n"));
                std::fs::write(file, &contents)?;
            }
            print!("{contents}");
            return Ok(());
        }
    }
    let organization = ism_workspaces::admin::create_organization(workspaces, "Demo").await?;
    let workspace =
        ism_workspaces::admin::create_workspace(workspaces, organization, "demo").await?;
    let (_, api_key) =
        ism_workspaces::admin::create_api_key(workspaces, workspace.id, "demo owner", Role::Owner)
            .await?;
    let (channel, secret) =
        create_channel(settings, workspace.id, "Demo custom channel", outbound_url).await?;
    let user = demo_owner(workspaces, workspace.id).await?;
    let contents = format!(
        "ISM_DEMO_WORKSPACE_ID={}\nISM_API_KEY={api_key}\nISM_DEMO_CHANNEL_ID={}\nISM_DEMO_WEBHOOK_SECRET={secret}\nISM_DEMO_USER_ID={user}\n",
        workspace.id, channel.id
    );
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(file, &contents)?;
    print!("{contents}");
    Ok(())
}

/// The demo Workspace's owner User, created when missing.
async fn demo_owner(workspaces: &sqlx::PgPool, workspace: Uuid) -> anyhow::Result<Uuid> {
    const EMAIL: &str = "owner@demo.example.com";
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE workspace_id = $1 AND lower(email) = $2 AND deactivated_at IS NULL",
    )
    .bind(workspace)
    .bind(EMAIL)
    .fetch_optional(workspaces)
    .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let user =
        ism_workspaces::admin::create_user(workspaces, workspace, EMAIL, "Demo Owner", Role::Owner)
            .await?;
    Ok(user.id)
}

pub async fn token(settings: &Settings, api_key: &str) -> anyhow::Result<()> {
    let channel = grpc::channel(&settings.service(ServiceName::Workspaces).endpoint)?;
    let response = WorkspaceServiceClient::new(channel)
        .exchange_api_key(ExchangeApiKeyRequest {
            api_key: api_key.to_owned(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    println!("{}", response.into_inner().access_token);
    Ok(())
}

#[derive(Args)]
pub struct WebhookArgs {
    /// The custom channel's id.
    #[arg(long, env = "ISM_DEMO_CHANNEL_ID")]
    channel: Uuid,
    /// The channel's webhook secret.
    #[arg(long, env = "ISM_DEMO_WEBHOOK_SECRET")]
    secret: String,
    /// The sender's id in your system.
    #[arg(long)]
    from: String,
    /// The sender's display name.
    #[arg(long, default_value = "")]
    name: String,
    #[arg(long)]
    text: String,
    /// Your id for the message (a retry must reuse it); a new UUID by default.
    #[arg(long)]
    message_id: Option<String>,
}

pub async fn webhook(settings: &Settings, args: WebhookArgs) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&json!({
        "message_id": args.message_id.unwrap_or_else(|| Uuid::now_v7().to_string()),
        "from": { "id": args.from, "name": args.name },
        "text": args.text,
    }))?;
    let url = format!(
        "http://127.0.0.1:{}/webhooks/custom/{}",
        settings
            .section::<ism_gateway::config::GatewaySettings>()?
            .http_port,
        args.channel
    );
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(
            ism_gateway::SIGNATURE_HEADER,
            ism_gateway::sign(args.secret.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await?;
    println!("{} {}", response.status(), response.text().await?);
    Ok(())
}
