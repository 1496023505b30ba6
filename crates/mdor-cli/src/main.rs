//! The `mdor` binary: serve the API, migrate, manage tokens and organisations, load the
//! device register and datasets, generate synthetic data, and run the demo.

mod account;
mod audit;
mod config;
mod demo;
mod keys;
mod load;
mod research;
mod submit;
mod surveillance;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use mdor_domain::OdsCode;
use mdor_service::{Ctx, NewOrganisation, OrganisationKind, Role, SubmissionSettings, TokenId};
use mdor_store::{ConnectOptions, Store};

use crate::config::{Config, FlagOverrides};

/// mimalloc rather than glibc's allocator: bulk submission spent about a quarter of its time
/// in malloc and free, and long-running servers fragment less (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "mdor", version, about = "Medical Device Outcome Registry")]
struct Cli {
    /// Configuration file (default: ./mdor.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Database URL, overriding the configuration (sqlite://PATH or postgres://…).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the schema must be current: run `mdor migrate` first).
    Serve {
        /// Address to listen on, overriding the configuration.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage the device register.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Providers' expected activity, against which data quality reports completeness.
    #[command(subcommand)]
    Activity(ActivityCommand),
    /// Write a synthetic national dataset (deterministic per seed) to a directory.
    Synth {
        #[arg(long, default_value_t = 100_000)]
        procedures: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "demo-data/dataset")]
        out: PathBuf,
        /// Also write `submission.ndjson`: every procedure as an `mdor_core` 1.2 record from
        /// this provider, for `mdor submit` (benchmarks and tests of bulk submission).
        #[arg(long)]
        submission_provider: Option<String>,
    },
    /// Submit a provider's file of procedures (NDJSON or CSV, layout per dataset in
    /// docs/datasets.md) as the operator: validated, committed in chunks, reported per record.
    Submit {
        file: PathBuf,
        /// The registry whose dataset the records follow, e.g. mdor_core.
        #[arg(long)]
        registry: String,
        /// The dataset version; the registry's latest by default.
        #[arg(long)]
        version: Option<String>,
        /// ODS code of the provider the records are from.
        #[arg(long)]
        provider: String,
        /// ndjson or csv; by default from the file's extension (.csv is CSV).
        #[arg(long)]
        format: Option<String>,
        /// Write the per-record report (NDJSON) here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Load a dataset directory written by `mdor synth` into the database.
    Load {
        dir: PathBuf,
        /// Run surveillance after the load (as `mdor surveil` with its defaults).
        #[arg(long)]
        surveil: bool,
    },
    /// Run surveillance: MaxSPRT per device model and lot, risk-adjusted CUSUM per provider and
    /// consultant, outliers and ratings; keep signal state and print the alerts raised.
    Surveil {
        /// Analysis date, YYYY-MM-DD; follow-up is censored here (default: today).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Print the whole run as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Create a fresh demo database with synthetic data, print tokens, and serve.
    Demo {
        #[arg(long, default_value_t = demo::DEFAULT_PROCEDURES)]
        procedures: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the demo keeps its database and dataset.
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
    },
    /// Reports for analysts.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The audit log: signing keys, signed checkpoints, verification, database privileges.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Staff and patient accounts: the TOTP sealing key, creation, idle expiry, OpenID Connect
    /// links.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// The key-encryption key of patient identifiers: create one, show, rotate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Approved research projects and their pseudonymised extracts.
    #[command(subcommand)]
    Research(research::ResearchCommand),
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Survivorship of one device model (cumulative revision, hazard ratio), as JSON.
    Survivorship {
        #[arg(long)]
        udi_di: String,
        /// Compute it this many times, logging each time: later ones reuse the cohort read by
        /// the first, as a server does for a minute (for timing).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; the secret is printed once and never stored.
    Create {
        /// ODS code of the organisation the token acts for.
        #[arg(long)]
        org: String,
        /// provider_submitter, regulator or admin.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "api token")]
        label: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Add or update an organisation.
    Add {
        #[arg(long)]
        ods: String,
        #[arg(long)]
        name: String,
        /// provider, regulator, registry or manufacturer.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
enum RegisterCommand {
    /// Load device register entries from a CSV file (layout in docs/device-register.md).
    Load { file: PathBuf },
}

#[derive(Subcommand)]
enum ActivityCommand {
    /// Load expected procedure counts per provider and month from a CSV file
    /// (`ods_code,month,expected_procedures`, layout in docs/data-quality.md); a month loaded
    /// again replaces its figure, and a file with any bad line loads nothing.
    Load { file: PathBuf },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the commented example configuration.
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let flags = FlagOverrides {
        database_url: cli.database_url.clone(),
        listen,
    };
    match cli.command {
        Command::Config(ConfigCommand::Example) => {
            print(config::EXAMPLE);
            Ok(())
        }
        Command::Synth {
            procedures,
            seed,
            out,
            submission_provider,
        } => {
            synth(procedures, seed, &out)?;
            if let Some(provider) = submission_provider {
                let written = submit::write_synthetic_submission(&out, &provider)?;
                print(&format!(
                    "wrote {written} mdor_core 1.2 records from {provider} to {}\n",
                    out.join("submission.ndjson").display()
                ));
            }
            Ok(())
        }
        Command::Demo {
            procedures,
            seed,
            listen,
            dir,
        } => demo::run(procedures, seed, &listen, &dir).await,
        Command::Audit(command) if command.is_offline() => audit::run_offline(command),
        Command::Account(command) if command.is_offline() => account::run_offline(command),
        Command::Keys(command) if command.is_offline() => keys::run_offline(command),
        command => {
            let config = Config::load(cli.config.as_deref(), &flags)?;
            telemetry::init(config.log_format);
            let store = open_store(&config).await?;
            let catalogue = mdor_service::shipped_catalogue()
                .context("loading the dataset definitions compiled into mdor")?;
            let mut ctx = Ctx::new(store).with_submissions(SubmissionSettings::new(
                config.submissions_dir.clone(),
                config.max_upload_bytes,
                config.chunk_records,
                Arc::new(catalogue),
            ));
            if let Some(settings) = &config.oidc {
                let provider =
                    mdor_service::OidcProvider::new(settings.clone()).map_err(load::describe)?;
                ctx = ctx.with_oidc(provider);
            }
            match command {
                Command::Serve { .. } => {
                    ctx.check_ready()
                        .await
                        .context("checking the database schema")?;
                    repair_interrupted_load(&ctx).await?;
                    let keys = ctx
                        .key_status()
                        .await
                        .context("opening the identifier keys (keys.kek_file or MDOR_KEYS__KEK)")?;
                    tracing::info!(
                        kek = %keys.kek_id,
                        field_key = keys.current_field_key,
                        "identifier keys open"
                    );
                    if keys.live_field_keys > 1 || keys.plain_patients > 0 {
                        tracing::warn!(
                            "a key rotation or the sealing of older identifiers is unfinished: \
                             run `mdor keys rotate` (or `mdor migrate`) again"
                        );
                    }
                    // People sign in only where the accounts key is configured; passkeys are
                    // bound to the configured origin (or to localhost, said here).
                    let ctx = match &config.accounts_key_file {
                        Some(_) => ctx.with_account_key(account::load_key(&config)?),
                        None => {
                            tracing::warn!(
                                "accounts.key_file is not set: people cannot sign in, only API tokens work"
                            );
                            ctx
                        }
                    };
                    if !config.webauthn_configured {
                        tracing::warn!(
                            origin = %config.webauthn.origin,
                            "webauthn is not configured: passkeys are bound to this machine's localhost"
                        );
                    }
                    let relying = mdor_service::webauthn::Relying::new(&config.webauthn)
                        .map_err(|error| anyhow::anyhow!("{error}"))?;
                    let ctx = ctx.with_webauthn(relying);
                    let background = Background {
                        keep_cohorts_warm: config.keep_cohorts_warm,
                        surveil_after_ingest: config.surveil_after_ingest,
                    };
                    let web = mdor_web::WebSettings {
                        trusted_proxy: config.trusted_proxy,
                        ..mdor_web::WebSettings::default()
                    };
                    serve(ctx, config.listen, background, web).await
                }
                Command::Migrate => {
                    ctx.migrate().await.context("applying migrations")?;
                    print("migrations applied\n");
                    Ok(())
                }
                Command::Token(command) => token(&ctx, command).await,
                Command::Org(OrgCommand::Add {
                    ods,
                    name,
                    kind,
                    region,
                }) => {
                    ctx.check_ready().await?;
                    let ods_code = OdsCode::parse(&ods)?;
                    let kind = OrganisationKind::parse(&kind)
                        .with_context(|| format!("kind '{kind}' is not one of provider, regulator, registry, manufacturer"))?;
                    let ids = mdor_service::ensure_organisations(
                        &ctx,
                        &[NewOrganisation {
                            ods_code,
                            name,
                            kind,
                            region,
                        }],
                    )
                    .await?;
                    print(&format!(
                        "organisation {ods} saved (id {})\n",
                        ids.values().next().map(|i| i.0).unwrap_or_default()
                    ));
                    Ok(())
                }
                Command::Register(RegisterCommand::Load { file }) => {
                    ctx.check_ready().await?;
                    let input = std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?;
                    let n = mdor_service::load_register_csv(&ctx, input)
                        .await
                        .map_err(load::describe)?;
                    print(&format!("{n} register entries loaded\n"));
                    Ok(())
                }
                Command::Activity(ActivityCommand::Load { file }) => {
                    ctx.check_ready().await?;
                    let input = std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?;
                    let n = mdor_service::load_expected_activity(&ctx, input)
                        .await
                        .map_err(load::describe)?;
                    print(&format!("{n} expected activity figures loaded\n"));
                    Ok(())
                }
                Command::Load { dir, surveil } => {
                    ctx.check_ready().await?;
                    repair_interrupted_load(&ctx).await?;
                    let started = std::time::Instant::now();
                    let summary = load::load_dataset(&ctx, &dir).await?;
                    print(&format!(
                        "{}\nloaded in {:.1} s\n",
                        serde_json::to_string_pretty(&summary)?,
                        started.elapsed().as_secs_f64()
                    ));
                    if surveil {
                        surveillance::run(&ctx, None, false).await?;
                    }
                    Ok(())
                }
                Command::Audit(command) => audit::run(&ctx, &config, command).await,
                Command::Account(command) => account::run(ctx, &config, command).await,
                Command::Keys(command) => keys::run(&ctx, command).await,
                Command::Research(command) => research::run(&ctx, command).await,
                Command::Report(ReportCommand::Survivorship { udi_di, repeat }) => {
                    ctx.check_ready().await?;
                    let grouping =
                        mdor_service::DeviceGrouping::Model(mdor_domain::UdiDi::parse(&udi_di)?);
                    let mut report = None;
                    for _ in 0..repeat.max(1) {
                        let started = std::time::Instant::now();
                        report = Some(
                            mdor_service::operator_survivorship(&ctx, &grouping)
                                .await
                                .map_err(load::describe)?,
                        );
                        tracing::info!(
                            seconds = started.elapsed().as_secs_f64(),
                            "survivorship reported"
                        );
                    }
                    print(&format!("{}\n", serde_json::to_string_pretty(&report)?));
                    Ok(())
                }
                Command::Surveil { as_of, json } => {
                    ctx.check_ready().await?;
                    surveillance::run(&ctx, as_of, json).await
                }
                Command::Submit {
                    file,
                    registry,
                    version,
                    provider,
                    format,
                    report,
                } => {
                    ctx.check_ready().await?;
                    let request = submit::Request {
                        file,
                        registry,
                        version,
                        provider,
                        format,
                        report,
                    };
                    submit::run(&ctx, &request).await
                }
                Command::Config(_) | Command::Synth { .. } | Command::Demo { .. } => Ok(()),
            }
        }
    }
}

/// Rebuilds indexes and foreign keys that a killed `mdor load` deferred and never restored;
/// without them recall would be slow and PostgreSQL would not check references.
async fn repair_interrupted_load(ctx: &Ctx) -> anyhow::Result<()> {
    let restored = mdor_service::restore_load_schema(ctx)
        .await
        .map_err(load::describe)
        .context("rebuilding indexes and foreign keys left by an interrupted load")?;
    if restored > 0 {
        tracing::warn!(
            restored,
            "rebuilt indexes and foreign keys that an interrupted load had deferred"
        );
    }
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let options = ConnectOptions {
        max_connections: config.max_connections,
        create_if_missing: true,
        kek: config.kek.as_ref().map(|k| k.load()).transpose()?,
        ..ConnectOptions::default()
    };
    mdor_store::connect(config.database_url.expose_secret(), &options)
        .await
        .with_context(|| {
            format!(
                "opening database {}",
                config::redact_url(config.database_url.expose_secret())
            )
        })
}

/// The server's background tasks that the configuration switches.
pub(crate) struct Background {
    pub keep_cohorts_warm: bool,
    pub surveil_after_ingest: bool,
}

pub(crate) async fn serve(
    ctx: Ctx,
    listen: std::net::SocketAddr,
    background: Background,
    web: mdor_web::WebSettings,
) -> anyhow::Result<()> {
    // Resumes submissions a killed server left unfinished, then takes queued ones.
    tokio::spawn(mdor_service::run_submission_worker(ctx.clone()));
    // Survivorship reports answer from cohorts kept in memory and refreshed ahead of use.
    if background.keep_cohorts_warm {
        tokio::spawn(mdor_service::keep_cohorts_warm(ctx.clone()));
    }
    // Signals in newly submitted data are raised without waiting for an operator.
    if background.surveil_after_ingest {
        tokio::spawn(mdor_service::surveil_after_ingests(
            ctx.clone(),
            mdor_service::SurveillanceConfig::default(),
        ));
    }
    let app = mdor_web::router(mdor_web::AppState::new(ctx, web));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, "mdor serving");
    // The peer's address is the client's for per-address limits, unless a trusted proxy
    // names the client (`server.trusted_proxy`).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving")
}

async fn token(ctx: &Ctx, command: TokenCommand) -> anyhow::Result<()> {
    ctx.check_ready().await?;
    match command {
        TokenCommand::Create { org, role, label } => {
            let ods = OdsCode::parse(&org)?;
            let role = Role::parse(&role).with_context(|| {
                format!("role '{role}' is not one of provider_submitter, regulator, admin")
            })?;
            let created = mdor_service::create_token(ctx, &ods, role, &label)
                .await
                .map_err(load::describe)?;
            print(&format!(
                "token {} created for {} as {}:\n{}\n(shown once; store it now)\n",
                created.id,
                ods,
                role.as_str(),
                created.secret
            ));
        }
        TokenCommand::List => {
            for t in mdor_service::list_tokens(ctx).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                print(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    t.id,
                    t.organisation_ods,
                    t.role.as_str(),
                    state,
                    t.created_at.format("%Y-%m-%d %H:%M"),
                    t.label
                ));
            }
        }
        TokenCommand::Revoke { id } => {
            mdor_service::revoke_token(ctx, TokenId(id))
                .await
                .map_err(load::describe)?;
            print(&format!("token {id} revoked\n"));
        }
    }
    Ok(())
}

fn synth(procedures: u64, seed: u64, out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let started = std::time::Instant::now();
    let summary = mdor_synth::write_dataset(out, &mdor_synth::SynthConfig::new(seed, procedures))?;
    print(&format!(
        "wrote {} procedures ({} devices, {} patients) to {} in {:.1} s; injected truth in truth.json\n",
        summary.n_procedures,
        summary.n_devices,
        summary.n_patients,
        out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The CLI's output channel: results for the operator go to standard output.
#[allow(clippy::print_stdout)]
pub(crate) fn print(text: &str) {
    print!("{text}");
}
