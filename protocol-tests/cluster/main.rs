//! Cluster tests: several real `herald` processes sharing one private `redis-server` behave as one
//! server. Each test starts its own Redis (free port, no persistence) and nodes with a unique key
//! prefix, so tests run in parallel. See `harness.rs` for the processes and the polling helpers.
//!
//! - `broadcast`: triggers, batches, client events, server-to-user, ordering, socket exclusion,
//!   cache channels, a single node with scaling on;
//! - `presence`: cluster-wide member lists and limits, member_added/removed exactly once,
//!   terminate_connections, the per-app connection quota;
//! - `queries`: channel, user and connection queries answered cluster-wide from any node;
//! - `failures`: a node killed with SIGKILL, Redis down, Redis restarted empty;
//! - `garbage`: foreign and damaged messages on the cluster's pub/sub channel;
//! - `watchlist`: watchlist events and subscription counts across nodes, a node killed.
//! - `webhooks`: one webhook per cluster-wide transition (Pusher's delay across nodes, a node
//!   killed).
//! - `readiness`: `/ready` and `herald_redis_up` following Redis down and back.

#[path = "../common/mod.rs"]
mod common;

mod broadcast;
mod failures;
mod garbage;
mod harness;
mod node;
mod presence;
mod queries;
mod readiness;
#[allow(dead_code)] // shared with the webhooks tests, which use all of it
#[path = "../webhooks/receiver.rs"]
mod receiver;
mod redis_proc;
mod watchlist;
mod webhooks;
