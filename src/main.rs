//! The `herald` binary: CLI → config → tracing → `Server::run` with a SIGTERM/SIGINT shutdown.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald::config::{is_read_var, parse_env_file, CliOverrides, Config, LogFormat};
use herald::server::Server;

/// mimalloc: less fragmentation than glibc malloc with many small, long-lived per-connection
/// allocations interleaved with short-lived handshake buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Herald: a Pusher Channels protocol server, drop-in for Laravel Reverb.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Start {
        #[command(flatten)]
        source: Source,
        /// Address to bind (overrides config and REVERB_SERVER_HOST).
        #[arg(long)]
        host: Option<String>,
        /// Port to bind (overrides config and REVERB_SERVER_PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Route prefix, e.g. /ws (overrides config and REVERB_SERVER_PATH).
        #[arg(long)]
        path: Option<String>,
        /// Log every connection, refusal and frame in and out (truncated, credentials redacted).
        #[arg(long)]
        debug: bool,
        /// Log format: text (human-readable) or json (one object per line; overrides
        /// [logging] format and HERALD_LOG_FORMAT).
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Validate the config and print the effective values with secrets masked.
    CheckConfig {
        #[command(flatten)]
        source: Source,
    },
}

#[derive(Args)]
struct Source {
    /// TOML config file; without it the embedded default (one app: app-id/app-key/app-secret) is used.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// A Laravel .env file to read REVERB_* and REDIS_* variables from (the process env wins).
    #[arg(long)]
    env_file: Option<PathBuf>,
}

fn load(source: &Source, cli: &CliOverrides) -> anyhow::Result<(Config, String)> {
    let (mut config, mut origin) = match &source.config {
        Some(path) => (
            Config::from_file(path)?,
            format!("config file {}", path.display()),
        ),
        None => (Config::embedded(), "the embedded default config".to_owned()),
    };
    let mut vars: HashMap<String, String> = match &source.env_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read env file {}", path.display()))?;
            parse_env_file(&text)
        }
        None => HashMap::new(),
    };
    vars.extend(std::env::vars().filter(|(k, _)| is_read_var(k)));
    let kinds: Vec<&str> = [("REVERB_", "REVERB_*"), ("REDIS_", "REDIS_*")]
        .into_iter()
        .filter(|(prefix, _)| vars.keys().any(|k| k.starts_with(prefix) && is_read_var(k)))
        .map(|(_, kind)| kind)
        .collect();
    if !kinds.is_empty() {
        origin.push_str(&format!(
            " with {} environment overrides",
            kinds.join(" and ")
        ));
    }
    config.apply_env(&vars)?;
    config.apply_cli(cli);
    config.validate()?;
    Ok((config, origin))
}

/// File descriptors kept free beyond sockets: the listener, logs, Redis, the runtime.
const FD_HEADROOM: u64 = 64;

/// Logs the open-file limit, with a warning when it cannot hold `max_connections` WebSockets
/// plus every pending connection and some headroom.
fn check_nofile(limit: u64, server: &herald::config::ServerConfig) {
    let need = server.max_connections as u64 + server.max_pending_connections as u64 + FD_HEADROOM;
    if server.max_connections > 0 && limit < need {
        tracing::warn!(
            "open-file limit {limit} is below server.max_connections ({}) + \
             server.max_pending_connections ({}) + {FD_HEADROOM}: raise it (ulimit -n, \
             LimitNOFILE=) or lower max_connections; at the limit new connections wait",
            server.max_connections,
            server.max_pending_connections
        );
    } else if server.max_connections == 0 {
        tracing::info!(
            "open-file limit: {limit} (server.max_connections is 0, so this is the real cap)"
        );
    } else {
        tracing::info!("open-file limit: {limit}");
    }
}

/// Logs to stderr, human-readable or as JSON lines; `--debug` (or `RUST_LOG`) sets the level.
fn init_logging(debug: bool, format: LogFormat) {
    let level = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("herald={level},warn")));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let top = e.to_string();
            eprintln!("herald: {top}");
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                if !top.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig { source } => {
            let (config, origin) = load(&source, &CliOverrides::default())?;
            println!("# valid: {origin}");
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Start {
            source,
            host,
            port,
            path,
            debug,
            log_format,
        } => {
            let log_format = log_format.map(|f| f.parse::<LogFormat>()).transpose();
            let overrides = CliOverrides {
                host,
                port,
                path,
                log_format: log_format.map_err(anyhow::Error::msg)?,
            };
            let (config, origin) = load(&source, &overrides)?;
            init_logging(debug, config.logging.format);
            let embedded = source.config.is_none()
                && config.apps.len() == 1
                && config.apps[0].secret == "app-secret";
            if embedded {
                tracing::info!(
                    "Herald {} starting on {origin}: one app, id app-id, key app-key, secret app-secret (development only)",
                    env!("CARGO_PKG_VERSION")
                );
            } else {
                tracing::info!("Herald {} starting on {origin}", env!("CARGO_PKG_VERSION"));
            }
            match rlimit::increase_nofile_limit(u64::MAX) {
                Ok(n) => check_nofile(n, &config.server),
                Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let server = Server::bind(config.clone()).await?;
                let addr = server.local_addr();
                if let Some(m) = server.metrics_addr() {
                    tracing::info!("metrics on http://{m}/metrics (readiness /ready)");
                }
                let apps: Vec<&str> = config.apps.iter().map(|a| a.id.as_str()).collect();
                tracing::info!(
                    "listening on {addr}{} (WebSocket {}/app/{{key}}, API {}/apps/{{id}}); apps: {}",
                    config.server.path,
                    config.server.path,
                    config.server.path,
                    apps.join(", ")
                );
                server.run(shutdown_signal()).await?;
                anyhow::Ok(())
            })
        }
    }
}
