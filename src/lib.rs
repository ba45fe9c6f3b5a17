//! Herald: a standalone Pusher Channels protocol server, a drop-in replacement for Laravel Reverb.
//!
//! The modules follow the layering of `docs/architecture.md` (a module imports only from lower
//! layers): wire types and config at the bottom (`config`, `protocol`), app registry,
//! per-socket outboxes and the pre-upgrade budgets (`apps`, `outbox`, `limits`), pure signatures and channel membership (`auth`,
//! `channels`, `watchlist`), this node's state (`local`), the Redis cluster link (`cluster`), the
//! cross-socket seam (`adapter`), subscription counting (`counting`), webhooks to the apps'
//! backends (`webhooks`, fed by the adapter), the WebSocket and HTTP sides (`socket`, `http`),
//! and `server` composing them.

pub mod adapter;
pub mod apps;
pub mod auth;
pub mod channels;
pub mod cluster;
pub mod coalesce;
pub mod config;
pub mod console;
pub mod counting;
pub mod http;
pub mod install;
pub mod limits;
pub mod local;
pub mod metrics;
pub mod outbox;
pub mod protocol;
pub mod reload;
pub mod server;
pub mod socket;
pub mod socket_id;
pub mod tls;
pub mod watchlist;
pub mod webhooks;

#[cfg(test)]
mod proptests;
