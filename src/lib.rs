//! Herald: a standalone Pusher Channels protocol server, a drop-in replacement for Laravel Reverb.
//!
//! The modules follow the layering of `docs/architecture.md`: wire types and config at the bottom,
//! the adapter seam in the middle, socket and HTTP handlers above it, `server` composing them.

pub mod config;
