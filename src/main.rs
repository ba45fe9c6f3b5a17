//! The `herald` binary: CLI → config → tracing → `Server::run` with a SIGTERM/SIGINT shutdown,
//! SIGHUP reloads, the pid file; plus `reload`, `install` and `check-config`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald::config::{is_read_var, parse_env_file, CliOverrides, Config, LogFormat};
use herald::server::Server;

/// mimalloc: less fragmentation than glibc malloc with many small, long-lived per-connection
/// allocations interleaved with short-lived handshake buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returning freed memory to the OS after a load spike.
///
/// mimalloc frees lazily: pages emptied on a thread (or by frees from other threads) go back to
/// the shared arenas only when that thread allocates or collects again, and arenas purge
/// (madvise) expired ranges only when some thread asks. After a spike of connections, tokio's
/// workers sit idle, so without help RSS stays at the peak (28 MiB instead of 12 after 5,000
/// connections came and went). Two cheap nudges fix it: a worker that goes idle collects its own
/// heap (at most once a second, and thoroughly, visiting full pages too, at most every 5 s), and
/// a background thread asks the arenas every two seconds to purge what has expired.
mod memory {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// The least time between two collections by one worker.
    const EVERY: Duration = Duration::from_secs(1);
    /// The least time between two thorough collections by one worker.
    const THOROUGH_EVERY: Duration = Duration::from_secs(5);

    thread_local! {
        /// When this worker last collected, and last collected thoroughly.
        static LAST: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
    }

    /// Collects this worker's heap when it parks, rate-limited per thread.
    pub fn on_park() {
        let now = Instant::now();
        let due = LAST.with(|last| match last.get() {
            Some((t, _)) if now.duration_since(t) < EVERY => None,
            Some((_, f)) if now.duration_since(f) < THOROUGH_EVERY => {
                last.set(Some((now, f)));
                Some(false)
            }
            _ => {
                last.set(Some((now, now)));
                Some(true)
            }
        });
        if let Some(thorough) = due {
            collect(thorough);
        }
    }

    /// Starts the thread that lets the arenas purge expired ranges program-wide.
    pub fn start_purger() {
        let spawned = std::thread::Builder::new()
            .name("herald-purge".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(2));
                collect(false);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the memory purge thread: {e}");
        }
    }

    #[allow(unsafe_code)]
    fn collect(thorough: bool) {
        // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time;
        // it only frees what is already unused (mimalloc's documented contract: `force` makes
        // it visit every page and purge at once), so it cannot invalidate a live allocation.
        unsafe { libmimalloc_sys::mi_collect(thorough) }
    }
}

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
        /// Write the process id to this file (overrides server.pid_file); `herald reload` reads it.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Log every connection, refusal and frame in and out (truncated, credentials redacted).
        #[arg(long)]
        debug: bool,
        /// Log format: text (human-readable) or json (one object per line; overrides
        /// [logging] format and HERALD_LOG_FORMAT).
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Make a running server re-read its config: sends SIGHUP to the pid in the pid file.
    Reload {
        #[command(flatten)]
        source: Source,
        /// The pid file (default: server.pid_file of the config).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Print a fresh app id, key and secret and the Laravel .env lines (like reverb:install).
    Install {
        /// REVERB_HOST: the host name clients connect to.
        #[arg(long, default_value = "localhost")]
        host: String,
        /// REVERB_PORT, and the port of the written config.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// REVERB_SCHEME: http, or https behind TLS.
        #[arg(long, default_value = "http", value_parser = ["http", "https"])]
        scheme: String,
        /// Also write a config.toml hosting the new app to this path.
        #[arg(long)]
        write_config: Option<PathBuf>,
        /// Overwrite the file given to --write-config if it exists.
        #[arg(long)]
        force: bool,
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

/// Re-reads the config (same layers as at start) on every SIGHUP and applies it; a refused
/// config is logged with the key at fault and the running one stays.
async fn reload_on_sighup(
    reloader: std::sync::Arc<herald::reload::Reloader>,
    source: Source,
    cli: CliOverrides,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reloads are off");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the config");
        let applied = load(&source, &cli).and_then(|(config, _)| Ok(reloader.apply(config)?));
        match applied {
            Err(e) => tracing::error!("reload refused, the running config stays: {e:#}"),
            Ok(r) => {
                for key in &r.ignored {
                    tracing::warn!("reload: `{key}` changed but needs a restart; ignored");
                }
                tracing::info!(
                    "reload done: apps added [{}], removed [{}] (sockets closed with 4001), \
                     updated [{}]{}",
                    r.apps.added.join(", "),
                    r.apps.removed.join(", "),
                    r.apps.updated.join(", "),
                    if r.tls_reloaded {
                        "; TLS certificate re-read"
                    } else {
                        ""
                    }
                );
            }
        }
    }
}

/// The pid file of a running server: written after the listener is bound, removed at exit
/// unless another process (a new Herald taking over) has written its own pid there since.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> anyhow::Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", path.display()))?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn send_reload(source: &Source, pid_file: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match pid_file {
        Some(p) => p,
        None => load(source, &CliOverrides::default())?
            .0
            .server
            .pid_file
            .context("no pid file: pass --pid-file or set server.pid_file in the config")?,
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read pid file {} (is herald running?)",
            path.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("pid file {} does not hold a pid", path.display()))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .with_context(|| format!("cannot signal pid {pid} from {}", path.display()))?;
    println!("sent SIGHUP to herald (pid {pid}); its log tells what the reload changed");
    Ok(())
}

fn install(
    endpoint: herald::install::Endpoint,
    write_config: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<()> {
    use herald::install::{config_toml, env_lines, Credentials};
    let creds = Credentials::generate();
    if let Some(path) = &write_config {
        if path.exists() && !force {
            anyhow::bail!("{} exists; pass --force to overwrite it", path.display());
        }
        std::fs::write(path, config_toml(&creds, endpoint.port))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("App ID:     {}", creds.id);
    println!("App key:    {}", creds.key);
    println!("App secret: {}", creds.secret);
    println!();
    println!("# Add to your Laravel .env (herald start --env-file .env reads the REVERB_APP_* lines too):");
    print!("{}", env_lines(&creds, &endpoint));
    if let Some(path) = &write_config {
        println!();
        println!(
            "# Wrote {} with this app; start with: herald start --config {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
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
        Command::Reload { source, pid_file } => send_reload(&source, pid_file),
        Command::Install {
            host,
            port,
            scheme,
            write_config,
            force,
        } => install(
            herald::install::Endpoint { host, port, scheme },
            write_config,
            force,
        ),
        Command::Start {
            source,
            host,
            port,
            path,
            pid_file,
            debug,
            log_format,
        } => {
            let log_format = log_format.map(|f| f.parse::<LogFormat>()).transpose();
            let cli = CliOverrides {
                host,
                port,
                path,
                pid_file,
                log_format: log_format.map_err(anyhow::Error::msg)?,
            };
            let (config, origin) = load(&source, &cli)?;
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
                .on_thread_park(memory::on_park)
                .build()?;
            memory::start_purger();
            runtime.block_on(async {
                let server = Server::bind(config.clone()).await?;
                let addr = server.local_addr();
                let _pid_file = match &config.server.pid_file {
                    Some(path) => Some(PidFile::write(path)?),
                    None => None,
                };
                if let Some(m) = server.metrics_addr() {
                    tracing::info!("metrics on http://{m}/metrics (readiness /ready)");
                }
                tokio::spawn(reload_on_sighup(server.reloader(), source, cli));
                let apps: Vec<&str> = config.apps.iter().map(|a| a.id.as_str()).collect();
                let tls = if config.server.tls.is_some() { " with TLS" } else { "" };
                tracing::info!(
                    "listening on {addr}{}{tls} (WebSocket {}/app/{{key}}, API {}/apps/{{id}}); apps: {}",
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
