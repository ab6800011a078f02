//! `crm-server`: run the crm HTTP server and administer its data.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use crm_core::secrets::SecretKey;
use crm_core::{AccountId, ApiKeyId, CampaignId, ChannelId, Crm, Role};
use crm_http::{Config, Server};
use secrecy::ExposeSecret;

/// The binary's allocator (feature `mimalloc`, on by default): the request
/// path allocates a little per field and per row, and mimalloc's thread-local
/// free lists make that cheaper than glibc's malloc (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// crm: a WhatsApp-first customer-engagement server.
///
/// With nothing configured it runs on embedded defaults: a SQLite database in
/// ./crm-data/, an in-memory rate limiter, a secret key generated into
/// ./crm-data/secret.keys, and a channel of the `recording` kind (messages are
/// stored but not delivered until a WhatsApp channel is added).
/// Settings come from defaults, then ./crm.toml (or --config), then environment
/// variables: DATABASE_URL, REDIS_URL, CRM_LISTEN, PORT, CRM_DATA_DIR,
/// CRM_LOG_FORMAT, RUST_LOG, CRM_CORS_ORIGINS, CRM_BODY_LIMIT_BYTES,
/// CRM_REQUEST_TIMEOUT_SECS, CRM_DATABASE_POOL_SIZE, CRM_RATE_LIMIT_PER_KEY_PER_MINUTE,
/// CRM_RATE_LIMIT_PER_IP_PER_MINUTE, CRM_SESSION_TTL_MINUTES,
/// CRM_SHUTDOWN_GRACE_SECS, CRM_DEFAULT_COUNTRY, CRM_SECRET_KEYS,
/// CRM_SECRET_KEYS_FILE, CRM_WORKERS, CRM_WORKER_LISTEN,
/// CRM_DISPATCH_CONCURRENCY, CRM_SEND_MAX_ATTEMPTS, CRM_SEND_DEADLINE_SECS,
/// CRM_API_KEY_CACHE_SECS, CRM_CHANNEL_CACHE_SECS, CRM_TRUSTED_PROXIES,
/// CRM_SECURE_COOKIES.
#[derive(Debug, Parser)]
#[command(name = "crm-server", version, about, long_about)]
struct Cli {
    /// A TOML configuration file (default: ./crm.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server and the background workers (the default). On an
    /// empty database it creates an account and prints its admin API key once.
    Serve {
        /// Serve HTTP only; `crm-server worker` processes send the messages
        /// (same as CRM_WORKERS=false).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the background workers (the message dispatcher, …) without the
    /// API, so web and workers scale separately on one PostgreSQL. With
    /// CRM_WORKER_LISTEN it serves /health, /ready and /metrics there.
    Worker,
    /// Manage the keys that seal channel credentials.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts (tenants).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage API keys.
    #[command(name = "api-key")]
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Manage contacts.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Create, start, pause, resume, cancel and watch campaigns (a template
    /// sent to an audience through one channel at the channel's pace). The
    /// sending is done by the workers of `serve` or `worker` processes, or by
    /// this command with `--work`.
    Campaign {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Pair WhatsApp Web channels from the terminal.
    #[cfg(feature = "whatsapp-web")]
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
}

#[cfg(feature = "whatsapp-web")]
#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// Pair a whatsapp-web channel: prints the QR code to scan (WhatsApp →
    /// Linked devices → Link a device), or with --phone the code to type on
    /// that phone, and waits until the session is connected. Run it while
    /// no other process holds the session (stop the workers, or use the
    /// API's /qr and /pair routes there).
    Pair {
        /// The channel.
        id: ChannelId,
        /// Pair by phone-number code for this number (+55…) instead of a QR code.
        #[arg(long)]
        phone: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum CampaignCommand {
    /// Create a campaign (a draft; `--start` starts it, `--at` schedules it).
    /// The audience is one of `--tag`, `--stage` or `--list FILE` (one
    /// contact id or phone per line).
    Create {
        /// The account.
        #[arg(long)]
        account: AccountId,
        /// A name.
        #[arg(long)]
        name: String,
        /// The stored template's name.
        #[arg(long)]
        template: String,
        /// The template's language.
        #[arg(long, default_value = "pt_BR")]
        language: String,
        /// The channel (default: the account's default channel).
        #[arg(long)]
        channel: Option<ChannelId>,
        /// Everyone with this tag.
        #[arg(long, group = "audience")]
        tag: Option<String>,
        /// Everyone in this lead stage.
        #[arg(long, group = "audience")]
        stage: Option<String>,
        /// A file of contact ids or phones, one per line.
        #[arg(long, group = "audience")]
        list: Option<PathBuf>,
        /// A template variable for everyone, `name=value` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Start it now.
        #[arg(long, conflicts_with = "at")]
        start: bool,
        /// Start it at this time (RFC 3339, e.g. 2026-12-01T09:00:00Z).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List the account's campaigns.
    List {
        /// The account.
        #[arg(long)]
        account: AccountId,
    },
    /// Start a draft or scheduled campaign now.
    Start(CampaignRef),
    /// Pause a running campaign.
    Pause(CampaignRef),
    /// Resume a paused campaign.
    Resume(CampaignRef),
    /// Cancel a campaign.
    Cancel(CampaignRef),
    /// Delete a campaign that is not under way (a draft, completed or
    /// cancelled) with its recipient list; its messages stay.
    Delete(CampaignRef),
    /// Show a campaign's progress with a progress bar until it ends.
    Watch {
        #[command(flatten)]
        campaign: CampaignRef,
        /// Run the workers (dispatcher, campaign runner and tracker) in this
        /// process while watching, for when no server or worker is running.
        #[arg(long)]
        work: bool,
    },
}

#[derive(Debug, clap::Args)]
struct CampaignRef {
    /// The account.
    #[arg(long)]
    account: AccountId,
    /// The campaign.
    id: CampaignId,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Print a new random key as `<id>:<base64>` for CRM_SECRET_KEYS. To
    /// rotate: put the new key first and the old one after it, restart, run
    /// `secrets reseal`, then drop the old key.
    GenerateKey {
        /// The key id (1–32 of a-z, 0-9, - _).
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Seal every stored credential again with the active (first) key.
    Reseal,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account and print its id and an owner API key (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it (shown once).
    Create {
        /// The account it acts in.
        #[arg(long)]
        account: AccountId,
        /// A label.
        #[arg(long)]
        name: String,
        /// viewer, agent, admin or owner.
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: Role,
    },
    /// List an account's keys (never their secrets).
    List {
        /// The account.
        #[arg(long)]
        account: AccountId,
    },
    /// Revoke a key; it stops working at once.
    Revoke {
        /// The account.
        #[arg(long)]
        account: AccountId,
        /// The key id (from `api-key list`).
        #[arg(long)]
        id: ApiKeyId,
    },
}

#[derive(Debug, Subcommand)]
enum ContactsCommand {
    /// Import contacts from a CSV file with a header row. Columns: name, phone
    /// (required); email, whatsapp_id, tags (separated by `;` or `|`),
    /// lead_score, lead_stage, opt_in (optional). Valid rows are stored in
    /// batches; the summary lists every rejected row with its line and reason.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The account to import into.
        #[arg(long)]
        account: AccountId,
        /// Country code for phones written without one (e.g. 55 for Brazil).
        #[arg(long, default_value = "55")]
        default_country: String,
        /// Rows per batch (1 to 10,000).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Batches written at once (each in its own transaction); with 1, a
        /// storage failure leaves exactly the batches before it stored.
        #[arg(long, default_value_t = crm_http::import::BATCHES_IN_FLIGHT)]
        jobs: usize,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("crm-server: {e}");
            return ExitCode::from(2);
        }
    };
    crm_http::init_tracing(config.log_format, &config.log_filter);
    let result = match cli.command.unwrap_or(Command::Serve { no_workers: false }) {
        Command::Serve { no_workers } => {
            let mut config = config;
            if no_workers {
                config.workers = false;
            }
            serve(config).await
        }
        Command::Worker => crm_http::run_worker(Server::builder(config)).await,
        Command::Secrets { command } => secrets(config, command).await,
        Command::Migrate => open(&config).await.map(|_| println!("migrations applied")),
        Command::Account { command } => account(config, command).await,
        Command::ApiKey { command } => api_key(config, command).await,
        Command::Contacts { command } => contacts(config, command).await,
        Command::Campaign { command } => campaign(config, command).await,
        #[cfg(feature = "whatsapp-web")]
        Command::Channel { command } => channel(config, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crm-server: {}", crm_http::error_chain(&e, "\n  caused by: "));
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> crm_core::Result<()> {
    let mut server = Server::build(config.clone()).await?;
    let addr = server.local_addr().map_err(|e| crm_core::Error::Config { message: e.to_string() })?;
    let bootstrap = server.take_bootstrap();
    // Installs the SIGINT/SIGTERM handlers before anything announces the server.
    let run = server.run_until_stopped();
    if let Some(b) = bootstrap {
        println!("First start: created account {} with an owner API key (shown only now):", b.account_id);
        println!("\n    {}\n", b.admin_key.expose());
        println!("Store it safely; create more keys with `crm-server api-key create`.");
        println!("Dashboard login (shown only now): {} / {}", b.owner_email, b.owner_password.expose_secret());
    }
    println!("crm listening on http://{addr}");
    println!("  dashboard: http://{addr}/dashboard");
    println!("  API docs:  http://{addr}/docs");
    println!("  try:       curl -H 'Authorization: Bearer <key>' http://{addr}/api/v1/contacts");
    tracing::info!(%addr, database = %crm_http::config::redact_url(config.database_url().expose_secret()), "listening");
    run.await.map_err(|e| crm_core::Error::Config { message: format!("server stopped: {e}") })
}

/// The service as the server assembles it (store, keys, channel kinds),
/// without workers or HTTP.
async fn open(config: &Config) -> crm_core::Result<Crm> {
    let parts = Server::builder(config.clone()).bootstrap(false).assemble(false).await?;
    Ok(parts.state.crm().clone())
}

#[cfg(feature = "whatsapp-web")]
async fn channel(config: Config, command: ChannelCommand) -> crm_core::Result<()> {
    let ChannelCommand::Pair { id, phone, timeout } = command;
    let phone = phone.map(|p| crm_core::Phone::parse(&p)).transpose()?;
    let parts = Server::builder(config.clone()).bootstrap(false).assemble(false).await?;
    let shown = |p: crm_http::PairingProgress| match p {
        crm_http::PairingProgress::Qr(qr) => {
            println!("Scan this QR code with WhatsApp (Linked devices → Link a device); it changes every ~20 s:\n");
            println!("{qr}");
        }
        crm_http::PairingProgress::Code(code) => {
            println!("On the phone: WhatsApp → Linked devices → Link a device → Link with phone number instead,");
            println!("and type this code:\n\n    {code}\n");
        }
        crm_http::PairingProgress::State(state) => println!("session: {state}"),
    };
    let timeout = std::time::Duration::from_secs(timeout.clamp(10, 3600));
    crm_http::pair_channel(&parts.state, &config, id, phone.as_ref(), timeout, shown).await?;
    println!("paired: channel {id} is connected");
    Ok(())
}

async fn secrets(config: Config, command: SecretsCommand) -> crm_core::Result<()> {
    match command {
        SecretsCommand::GenerateKey { id } => {
            println!("{}", SecretKey::generate(id)?.export());
        }
        SecretsCommand::Reseal => {
            let crm = open(&config).await?;
            let n = crm.reseal_credentials().await?;
            println!("re-sealed the credentials of {n} channel(s)");
        }
    }
    Ok(())
}

async fn account(config: Config, command: AccountCommand) -> crm_core::Result<()> {
    let crm = open(&config).await?;
    match command {
        AccountCommand::Create { name } => {
            let account = crm_core::Account::new(&name, crm.clock().now())?;
            let (account, _, token) = crm.create_account_with_owner_key(account, "owner (CLI)").await?;
            println!("account {} ({})", account.id, account.name);
            println!("owner API key (shown only now): {}", token.expose());
        }
    }
    Ok(())
}

async fn api_key(config: Config, command: ApiKeyCommand) -> crm_core::Result<()> {
    let crm = open(&config).await?;
    match command {
        ApiKeyCommand::Create { account, name, role } => {
            crm.store().get_account(account).await?;
            let (key, token) = crm.create_api_key(account, &name, role, None).await?;
            println!("key {} ({}, {})", key.id, key.name, key.role.as_str());
            println!("API key (shown only now): {}", token.expose());
        }
        ApiKeyCommand::List { account } => {
            for k in crm.store().list_api_keys(account).await? {
                let state = match (k.revoked_at, k.expires_at) {
                    (Some(t), _) => format!("revoked {}", t.to_rfc3339()),
                    (None, Some(e)) => format!("expires {}", e.to_rfc3339()),
                    (None, None) => "active".into(),
                };
                println!("{}  crm_{}_…  {:<7} {:<32} {}", k.id, k.prefix, k.role.as_str(), k.name, state);
            }
        }
        ApiKeyCommand::Revoke { account, id } => {
            let k = crm.revoke_api_key(account, id).await?;
            println!("revoked {} ({})", k.id, k.name);
        }
    }
    Ok(())
}

async fn contacts(config: Config, command: ContactsCommand) -> crm_core::Result<()> {
    let ContactsCommand::Import { file, account, default_country, batch, jobs } = command;
    let crm = open(&config).await?;
    crm.store().get_account(account).await?;
    let report =
        crm_http::import::import_csv_with(&crm, account, &file, &default_country, batch.max(1), jobs, true).await?;
    println!("imported {} contact(s); rejected {}", report.imported, report.rejected_total());
    for r in &report.rejected {
        println!("  line {}: {}", r.line, r.reason);
    }
    if report.rejected_unlisted > 0 {
        println!("  … and {} more rejected line(s), not listed", report.rejected_unlisted);
    }
    Ok(())
}

async fn campaign(config: Config, command: CampaignCommand) -> crm_core::Result<()> {
    let crm = open(&config).await?;
    let show = |c: &crm_core::Campaign| {
        let at = c.scheduled_at.map(|t| format!(" at {}", t.to_rfc3339())).unwrap_or_default();
        println!("campaign {}  {:<9} {}{at}", c.id, c.state.as_str(), c.name);
    };
    match command {
        CampaignCommand::Create { account, name, template, language, channel, tag, stage, list, vars, start, at } => {
            let audience = match (tag, stage, list) {
                (Some(t), _, _) => crm_core::Audience::Tag { tag: crm_core::Tag::parse(&t)? },
                (_, Some(s), _) => crm_core::Audience::Stage { stage: crm_core::LeadStage::parse(&s)? },
                (_, _, Some(file)) => crm_http::campaign::read_audience(&file)?,
                _ => {
                    return Err(crm_core::Error::validation("audience", "give --tag, --stage or --list"));
                }
            };
            let mut variables = crm_core::Variables::new();
            for v in vars {
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| crm_core::Error::validation("var", format!("{v:?} is not name=value")))?;
                variables.insert(k.to_owned(), val.to_owned());
            }
            let input = crm_core::NewCampaign {
                name,
                channel_id: channel,
                template,
                language: Some(language),
                variables,
                audience,
                scheduled_at: at,
            };
            let mut c = crm.create_campaign(account, input).await?;
            if start {
                c = crm.start_campaign(account, c.id).await?;
            }
            show(&c);
        }
        CampaignCommand::List { account } => {
            let mut page = crm_core::PageRequest::first(200)?;
            loop {
                let p = crm.list_campaigns(account, &page).await?;
                p.items.iter().for_each(show);
                match p.next_cursor {
                    Some(cursor) => page = crm_core::PageRequest::new(Some(&cursor), 200)?,
                    None => break,
                }
            }
        }
        CampaignCommand::Start(r) => show(&crm.start_campaign(r.account, r.id).await?),
        CampaignCommand::Pause(r) => show(&crm.pause_campaign(r.account, r.id).await?),
        CampaignCommand::Resume(r) => show(&crm.resume_campaign(r.account, r.id).await?),
        CampaignCommand::Cancel(r) => show(&crm.cancel_campaign(r.account, r.id).await?),
        CampaignCommand::Delete(r) => {
            crm.delete_campaign(r.account, r.id).await?;
            println!("deleted campaign {}", r.id);
        }
        CampaignCommand::Watch { campaign: r, work } => {
            let runtime = if work {
                use crm_core::workers::Runtime;
                let (dispatcher, runner, tracker) = (crm.dispatcher(), crm.campaign_runner(), crm.campaign_tracker());
                let (d, ro, t) = (dispatcher.options(), runner.options(), tracker.options());
                let rb = Runtime::builder(crm.store().clone())
                    .event_worker(std::sync::Arc::new(dispatcher), d)
                    .job_worker(std::sync::Arc::new(runner), ro)
                    .event_worker(std::sync::Arc::new(tracker), t);
                Some(rb.build().start().await?)
            } else {
                None
            };
            let every = std::time::Duration::from_millis(500);
            let view = crm_http::campaign::watch(&crm, r.account, r.id, true, every).await;
            if let Some(rt) = runtime {
                rt.shutdown(std::time::Duration::from_secs(5)).await;
            }
            let view = view?;
            let k = view.counters;
            println!(
                "campaign {} {}: {} recipient(s), sent {}, delivered {}, read {}, failed {}, skipped {}, replied {}",
                view.campaign.id,
                view.campaign.state.as_str(),
                k.recipients,
                k.sent,
                k.delivered,
                k.read,
                k.failed,
                k.skipped,
                k.replied
            );
        }
    }
    Ok(())
}
