//! Operations tests: real `herald` processes (the built binary) driven over real sockets and
//! real signals.
//!
//! - `tls`: `[server.tls]` with a CA and certificates generated at test time (rcgen): WebSocket
//!   and HTTPS API over TLS, the pre-upgrade budgets during the TLS handshake, the certificate
//!   re-read on SIGHUP while an old connection stays open, a bad certificate refused;
//! - `reload`: apps added, removed (4001) and rotated on SIGHUP and `herald reload`, sockets of
//!   unchanged apps kept, invalid configs refused by key, restart-only keys reported;
//! - `install`: `herald install` output, `--write-config` (and its refusal to overwrite), a
//!   server started on the written config accepting the printed key.

#[path = "../common/mod.rs"]
mod common;

mod install;
mod proc;
mod reload;
mod tls;
