//! The Lua scripts that keep shared state in Redis. Each runs atomically, which is what makes
//! presence exact: of two nodes racing for a user's first or last socket, exactly one sees the
//! transition, and the member event it publishes is ordered, on every subscriber's connection,
//! with the join confirmations (also published from a script) around it.
//!
//! Keys, all under the configured prefix `P` (app ids and channel names never hold a newline;
//! channel names never hold `:`):
//! - `P nodes`: sorted set, node id → last heartbeat (Redis `TIME`, ms);
//! - `P n:{node}:pres`: set of `app \n channel \n user` presence entries the node holds;
//! - `P n:{node}:subs`: hash, `app \n channel` → the node's subscription count;
//! - `P n:{node}:conns`: hash, app → the node's open connections;
//! - `P pm:{app}:{channel}`: hash, user → member (`MemberData::to_wire`);
//! - `P pc:{app}:{channel}`: hash, user → how many nodes hold that user;
//! - `P cache:{app}:{channel}`: a cache channel's last event (`event \n data`), with a TTL;
//! - `P n:{node}:users`: set of `app \n user` signed-in users the node holds (watchlist events);
//! - `P on:{app}`: hash, user → how many nodes hold a signed-in socket of that user;
//! - `P oc:{app}:{channel}`: set of the nodes holding subscribers of the channel (webhooks: only
//!   apps with a webhook target);
//! - `P n:{node}:oc`: set of `app \n channel` the node holds subscribers of (webhooks);
//! - `P wd`: sorted set of delayed webhooks (`v \n app \n channel` for channel_vacated,
//!   `r \n app \n channel \n user` for member_removed) → when they are due (ms). A
//!   re-occupation or rejoin anywhere removes the entry (and sends no occupied/added); due
//!   entries are popped, atomically, by whichever node sweeps first (`SWEEP_BODY`).
//!
//! Cluster-wide webhook transitions are published to the one node that caused them (or that
//! swept or reaped them) as `HF` messages, so each is sent exactly once.
//!
//! Scripts build key names from the prefix, so they need a standalone Redis (or Valkey), not
//! Redis Cluster, as Reverb does.

/// Redis `TIME` in milliseconds, and the leave logic shared by `LEAVE` and `REAP`.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function webhook(P, item, inbox, delay)
  if delay == '0' and inbox ~= '' then
    redis.call('PUBLISH', inbox, 'H1\nHF\n' .. item)
  else
    redis.call('ZADD', P .. 'wd', now_ms() + tonumber(delay), item)
  end
end
local function vacate(P, node, app, ch, inbox, delay)
  local entry = app .. '\n' .. ch
  local oc = P .. 'oc:' .. app .. ':' .. ch
  redis.call('SREM', P .. 'n:' .. node .. ':oc', entry)
  if redis.call('SREM', oc, node) == 1 and redis.call('EXISTS', oc) == 0 and delay then
    webhook(P, 'v\n' .. entry, inbox, delay)
  end
end
local function leave(P, node, app, ch, user, pubsub, inbox, delay)
  if redis.call('SREM', P .. 'n:' .. node .. ':pres', app .. '\n' .. ch .. '\n' .. user) == 0 then
    return 0
  end
  local pc = P .. 'pc:' .. app .. ':' .. ch
  local pm = P .. 'pm:' .. app .. ':' .. ch
  if redis.call('HINCRBY', pc, user, -1) <= 0 then
    redis.call('HDEL', pc, user)
    local m = redis.call('HGET', pm, user)
    redis.call('HDEL', pm, user)
    if m then
      redis.call('PUBLISH', pubsub, 'H1\nMR\n' .. app .. '\n' .. ch .. '\n' .. m)
    end
    if delay then
      webhook(P, 'r\n' .. app .. '\n' .. ch .. '\n' .. user, inbox, delay)
    end
  end
  return 1
end
local function offline(P, node, app, user, pubsub)
  if redis.call('SREM', P .. 'n:' .. node .. ':users', app .. '\n' .. user) == 0 then
    return 0
  end
  local on = P .. 'on:' .. app
  if redis.call('HINCRBY', on, user, -1) <= 0 then
    redis.call('HDEL', on, user)
    redis.call('PUBLISH', pubsub, 'H1\nWF\n' .. app .. '\n' .. user)
  end
  return 1
end
"#;

/// ARGV: prefix, node, app, user, cluster channel. The node's first signed-in socket of a
/// user: publishes `WO` (online) when the user is new cluster-wide.
const ONLINE_BODY: &str = r#"
local P, node, app, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('SADD', P .. 'n:' .. node .. ':users', app .. '\n' .. user) == 1 then
  if redis.call('HINCRBY', P .. 'on:' .. app, user, 1) == 1 then
    redis.call('PUBLISH', ARGV[5], 'H1\nWO\n' .. app .. '\n' .. user)
  end
end
return 1
"#;

/// ARGV: prefix, node, app, user, cluster channel. The node's last signed-in socket of a user
/// went: publishes `WF` (offline) when no node holds the user any more.
const OFFLINE_BODY: &str = r#"
return offline(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"#;

/// ARGV: prefix, app, socket, node channel, then the watched ids. Publishes to the node
/// `WS` with one flag per id ('1' online, '0' offline), in Redis order with `WO` / `WF`.
const WATCH_BODY: &str = r#"
local on = ARGV[1] .. 'on:' .. ARGV[2]
local flags = {}
for i = 5, #ARGV do
  flags[#flags + 1] = tostring(redis.call('HEXISTS', on, ARGV[i]))
end
redis.call('PUBLISH', ARGV[4], 'H1\nWS\n' .. ARGV[2] .. '\n' .. ARGV[3] .. '\n' .. table.concat(flags))
return 1
"#;

/// ARGV: prefix, node, app, channel, user, member, socket ('' = no confirmation), max members,
/// cluster channel, node channel, register ('1': this node's first socket of the user),
/// announce ('1': publish member_added when the user is new cluster-wide), webhooks ('' for an
/// app without webhooks; '1': a user new cluster-wide cancels a pending member_removed webhook
/// or else is sent member_added on the node channel; '0': only cancels, on re-registration).
/// Returns '1', or '0' when the member limit refused a new user.
const JOIN_BODY: &str = r#"
local P, node, app, ch, user, member, sock = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local pm = P .. 'pm:' .. app .. ':' .. ch
local pc = P .. 'pc:' .. app .. ':' .. ch
local pres = P .. 'n:' .. node .. ':pres'
local entry = app .. '\n' .. ch .. '\n' .. user
local ok = '1'
if ARGV[11] == '1' and redis.call('SISMEMBER', pres, entry) == 0 then
  if redis.call('HEXISTS', pm, user) == 0 and redis.call('HLEN', pm) >= tonumber(ARGV[8]) then
    ok = '0'
  else
    redis.call('SADD', pres, entry)
    redis.call('HSET', pm, user, member)
    if redis.call('HINCRBY', pc, user, 1) == 1 then
      if ARGV[12] == '1' then
        redis.call('PUBLISH', ARGV[9], 'H1\nMA\n' .. app .. '\n' .. ch .. '\n' .. sock .. '\n' .. member)
      end
      if ARGV[13] ~= '' then
        local item = app .. '\n' .. ch .. '\n' .. user
        if redis.call('ZREM', P .. 'wd', 'r\n' .. item) == 0 and ARGV[13] == '1' then
          redis.call('PUBLISH', ARGV[10], 'H1\nHF\na\n' .. item)
        end
      end
    end
  end
end
if sock ~= '' then
  local body = ''
  if ok == '1' then body = table.concat(redis.call('HVALS', pm), '\n') end
  redis.call('PUBLISH', ARGV[10], 'H1\nJ\n' .. app .. '\n' .. ch .. '\n' .. sock .. '\n' .. ok .. '\n' .. body)
end
return ok
"#;

/// ARGV: prefix, node, app, channel, user, cluster channel, node channel, webhook delay ms (''
/// for an app without webhooks). Returns 1 if the entry existed.
const LEAVE_BODY: &str = r#"
local delay = ARGV[8]
if delay == '' then delay = nil end
return leave(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], delay)
"#;

/// Webhooks. ARGV: prefix, node, app, channel, node channel, announce ('0' on re-registration).
/// The node's first subscriber of a channel: when the channel is new cluster-wide, cancels a
/// pending channel_vacated, or else (announce) sends channel_occupied on the node channel.
const OCCUPY_BODY: &str = r#"
local P, node, app, ch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local oc = P .. 'oc:' .. app .. ':' .. ch
redis.call('SADD', P .. 'n:' .. node .. ':oc', app .. '\n' .. ch)
if redis.call('SADD', oc, node) == 1 and redis.call('SCARD', oc) == 1 then
  if redis.call('ZREM', P .. 'wd', 'v\n' .. app .. '\n' .. ch) == 0 and ARGV[6] == '1' then
    redis.call('PUBLISH', ARGV[5], 'H1\nHF\no\n' .. app .. '\n' .. ch)
  end
end
return 1
"#;

/// Webhooks. ARGV: prefix, node, app, channel, node channel, delay ms. The node's last
/// subscriber of a channel left: when no node holds one any more, channel_vacated is due after
/// the delay (sent at once on the node channel when the delay is 0).
const VACATE_BODY: &str = r#"
vacate(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
"#;

/// Webhooks. ARGV: prefix, node channel. Pops the delayed webhooks that are due and sends them
/// to this node; of several nodes sweeping at once, each entry goes to exactly one.
const SWEEP_BODY: &str = r#"
local due = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'wd', '-inf', now_ms(), 'LIMIT', 0, 1000)
for _, item in ipairs(due) do
  redis.call('ZREM', ARGV[1] .. 'wd', item)
  redis.call('PUBLISH', ARGV[2], 'H1\nHF\n' .. item)
end
return #due
"#;

/// ARGV: prefix, node id, timeout ms, register ('1': add the node, right after it registered its
/// state; '0': only refresh it). Returns {-1 when the node is missing (Redis lost it, or the
/// survivors reaped it: it must re-register its state first), live node ids, dead node ids}.
/// So a node is listed only once its state is in Redis.
const HEARTBEAT_BODY: &str = r#"
local P, node = ARGV[1], ARGV[2]
local now = now_ms()
local added = 0
if ARGV[4] == '1' or redis.call('ZSCORE', P .. 'nodes', node) then
  redis.call('ZADD', P .. 'nodes', now, node)
else
  added = -1
end
local cutoff = now - tonumber(ARGV[3])
local live = redis.call('ZRANGEBYSCORE', P .. 'nodes', '(' .. cutoff, '+inf')
local dead = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', cutoff)
return {added, live, dead}
"#;

/// ARGV: prefix, node id, cluster channel, timeout ms ('' = unconditionally: a node leaving),
/// the reaping node's channel ('' when the node leaves itself: its webhooks are all delayed,
/// for the others to sweep), then app and webhook delay pairs for the apps with webhooks.
/// Removes a node and all it held, publishing member_removed for each user it was the last
/// holder of, and offline (watchlist events) for each signed-in user it was the last holder
/// of; the webhooks of the channels and users it emptied go to the reaping node. Returns 0 when the node heartbeated again meanwhile. Safe to run from several
/// survivors at once: the second finds nothing left, so each event is published once.
const REAP_BODY: &str = r#"
local P, dead, pubsub, inbox = ARGV[1], ARGV[2], ARGV[3], ARGV[5] or ''
local delays = {}
for i = 6, #ARGV - 1, 2 do delays[ARGV[i]] = ARGV[i + 1] end
if ARGV[4] ~= '' then
  local score = redis.call('ZSCORE', P .. 'nodes', dead)
  if score and tonumber(score) > now_ms() - tonumber(ARGV[4]) then return 0 end
end
redis.call('ZREM', P .. 'nodes', dead)
local pres = P .. 'n:' .. dead .. ':pres'
for _, entry in ipairs(redis.call('SMEMBERS', pres)) do
  local app, ch, user = string.match(entry, '^([^\n]*)\n([^\n]*)\n(.*)$')
  if app then leave(P, dead, app, ch, user, pubsub, inbox, delays[app]) end
end
local ocs = P .. 'n:' .. dead .. ':oc'
for _, entry in ipairs(redis.call('SMEMBERS', ocs)) do
  local app, ch = string.match(entry, '^([^\n]*)\n(.*)$')
  if app then vacate(P, dead, app, ch, inbox, delays[app]) end
end
local users = P .. 'n:' .. dead .. ':users'
for _, entry in ipairs(redis.call('SMEMBERS', users)) do
  local app, user = string.match(entry, '^([^\n]*)\n(.*)$')
  if app then offline(P, dead, app, user, pubsub) end
end
redis.call('DEL', pres, users, ocs, P .. 'n:' .. dead .. ':subs', P .. 'n:' .. dead .. ':conns')
return 1
"#;

/// ARGV: prefix, node channel, then app and channel pairs. Publishes each presence channel's
/// member list to this node (in Redis order with the member events), for reconciliation.
const MEMBERS_BODY: &str = r#"
local P = ARGV[1]
for i = 3, #ARGV, 2 do
  local app, ch = ARGV[i], ARGV[i + 1]
  local body = table.concat(redis.call('HVALS', P .. 'pm:' .. app .. ':' .. ch), '\n')
  redis.call('PUBLISH', ARGV[2], 'H1\nS\n' .. app .. '\n' .. ch .. '\n' .. body)
end
return 1
"#;

/// A script's full source (the prelude plus its body), built once.
pub struct Scripts {
    /// See `JOIN_BODY`.
    pub join: String,
    /// See `LEAVE_BODY`.
    pub leave: String,
    /// See `HEARTBEAT_BODY`.
    pub heartbeat: String,
    /// See `REAP_BODY`.
    pub reap: String,
    /// See `MEMBERS_BODY`.
    pub members: String,
    /// See `ONLINE_BODY`.
    pub online: String,
    /// See `OFFLINE_BODY`.
    pub offline: String,
    /// See `WATCH_BODY`.
    pub watch: String,
    /// See `OCCUPY_BODY`.
    pub occupy: String,
    /// See `VACATE_BODY`.
    pub vacate: String,
    /// See `SWEEP_BODY`.
    pub sweep: String,
}

impl Scripts {
    /// Every script with the shared prelude.
    pub fn new() -> Self {
        let with = |body: &str| format!("{PRELUDE}{body}");
        Self {
            join: with(JOIN_BODY),
            leave: with(LEAVE_BODY),
            heartbeat: with(HEARTBEAT_BODY),
            reap: with(REAP_BODY),
            members: with(MEMBERS_BODY),
            online: with(ONLINE_BODY),
            offline: with(OFFLINE_BODY),
            watch: with(WATCH_BODY),
            occupy: with(OCCUPY_BODY),
            vacate: with(VACATE_BODY),
            sweep: with(SWEEP_BODY),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
