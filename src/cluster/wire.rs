//! The messages nodes exchange over Redis pub/sub: pure encoding and decoding, no I/O.
//!
//! A message is newline-separated fields, the first being the magic `H1` and the second the
//! kind; the last field runs to the end of the message, so it may hold anything (a frame, a
//! user id). Channel names, app ids and node ids never contain a newline (they are validated).
//! Broadcasts carry the frame exactly as subscribers receive it, so a receiving node forwards the
//! bytes without serialising anything, preceded by its length, so a cut or padded message is
//! refused rather than forwarded. App secrets never travel.
//!
//! Member events and join confirmations are published by Lua scripts (`scripts.rs`), which
//! build the same shapes.

use bytes::Bytes;

use crate::outbox::SocketId;
use crate::protocol::outbound::Frame;

/// The first field of every Herald message; anything else on the channel is foreign.
pub const MAGIC: &str = "H1";

/// A decoded message.
#[derive(Debug, PartialEq)]
pub enum Message<'a> {
    /// An event for a channel, published by `node`; `except` is excluded wherever it lives.
    Event {
        /// The publishing node (it delivered to its own sockets already).
        node: &'a str,
        /// The app id.
        app: &'a str,
        /// The channel.
        channel: &'a str,
        /// Laravel's `toOthers()`: the socket that must not receive it.
        except: Option<SocketId>,
        /// The frame, ready to queue.
        frame: Frame,
    },
    /// A user's first socket anywhere joined a presence channel.
    MemberAdded {
        /// The app id.
        app: &'a str,
        /// The presence channel.
        channel: &'a str,
        /// The joining socket (it gets the snapshot instead).
        except: Option<SocketId>,
        /// The member, in `MemberData::to_wire` form.
        member: &'a str,
    },
    /// A user's last socket anywhere left a presence channel.
    MemberRemoved {
        /// The app id.
        app: &'a str,
        /// The presence channel.
        channel: &'a str,
        /// The member, in `MemberData::to_wire` form.
        member: &'a str,
    },
    /// Sent to one node: a presence join of its socket was recorded (or refused) in Redis;
    /// `members` is the channel's member list at that moment, one wire member per line.
    Joined {
        /// The app id.
        app: &'a str,
        /// The presence channel.
        channel: &'a str,
        /// The joining socket.
        socket: SocketId,
        /// False when the cluster-wide member limit refused the join.
        ok: bool,
        /// Newline-separated wire members.
        members: &'a str,
    },
    /// Sent to one node: a presence channel's member list, for reconciliation after a failure.
    Members {
        /// The app id.
        app: &'a str,
        /// The presence channel.
        channel: &'a str,
        /// Newline-separated wire members.
        members: &'a str,
    },
    /// A node (re)registered: the others count it at once, not at their next heartbeat.
    Hello {
        /// Its id.
        node: &'a str,
    },
    /// Watchlist events: `user` came online (its first signed-in socket anywhere), or went
    /// offline (its last one anywhere). Published by the online/offline/reap scripts.
    Presence {
        /// The app id.
        app: &'a str,
        /// The user id.
        user: &'a str,
        /// Online (`WO`) or offline (`WF`).
        online: bool,
    },
    /// Sent to one node: a watcher's sign-in snapshot, one flag per watched id ('1' online).
    Watched {
        /// The app id.
        app: &'a str,
        /// The watching socket.
        socket: SocketId,
        /// '0'/'1' per id of its watchlist, in order.
        flags: &'a str,
    },
    /// Subscription counting: `node` wrote a changed count of `channel` (the app and channel
    /// are empty when a node died: every channel's count may have changed).
    Count {
        /// The node whose count changed (it marked its own channel already).
        node: &'a str,
        /// The app id ('' for all).
        app: &'a str,
        /// The channel ('' for all).
        channel: &'a str,
    },
    /// Sent to one node: send this cluster-wide webhook transition (decided by a script).
    Webhook {
        /// `o` channel_occupied, `v` channel_vacated, `a` member_added, `r` member_removed.
        kind: &'a str,
        /// The app id.
        app: &'a str,
        /// The channel.
        channel: &'a str,
        /// The user id, for member events.
        user: Option<&'a str>,
    },
    /// Close every socket of `user` (terminate_connections) on every node but `node`.
    Terminate {
        /// The node that handled the request (it closed its own sockets already).
        node: &'a str,
        /// The app id.
        app: &'a str,
        /// The user id.
        user: &'a str,
    },
}

/// Why a message was skipped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a Herald message (another publisher shares the channel).
    #[error("not a Herald message")]
    Foreign,
    /// A Herald message missing fields or with a bad field.
    #[error("malformed {0} message")]
    Malformed(&'static str),
}

/// An event broadcast from `node`.
pub fn event(
    node: &str,
    app: &str,
    channel: &str,
    except: Option<SocketId>,
    frame: &Frame,
) -> Bytes {
    let except = except.map(|s| s.to_string()).unwrap_or_default();
    let len = frame.len().to_string();
    let mut out = String::with_capacity(frame.len() + node.len() + app.len() + channel.len() + 48);
    for field in [MAGIC, "E", node, app, channel, &except, &len] {
        out.push_str(field);
        out.push('\n');
    }
    out.push_str(frame.as_str());
    Bytes::from(out)
}

/// A terminate_connections request handled by `node`.
pub fn terminate(node: &str, app: &str, user: &str) -> Bytes {
    Bytes::from(format!("{MAGIC}\nT\n{node}\n{app}\n{user}"))
}

/// Subscription counting: `node` changed its count of `channel` (both empty: a node died).
pub fn count(node: &str, app: &str, channel: &str) -> Bytes {
    Bytes::from(format!("{MAGIC}\nC\n{node}\n{app}\n{channel}"))
}

/// A node announcing itself.
pub fn hello(node: &str) -> Bytes {
    Bytes::from(format!("{MAGIC}\nN\n{node}"))
}

/// Decodes a message; a frame is copied once out of `payload`.
pub fn decode(payload: &[u8]) -> Result<Message<'_>, WireError> {
    let text = std::str::from_utf8(payload).map_err(|_| WireError::Foreign)?;
    let mut it = text.splitn(3, '\n');
    if it.next() != Some(MAGIC) {
        return Err(WireError::Foreign);
    }
    let kind = it.next().ok_or(WireError::Foreign)?;
    let rest = it.next().unwrap_or("");
    match kind {
        "E" => {
            let [node, app, channel, except, len, frame] =
                fields(rest).ok_or(WireError::Malformed("event"))?;
            let except = socket(except).map_err(|_| WireError::Malformed("event"))?;
            // The length and the JSON object's braces catch a cut or padded message.
            let whole = len.parse::<usize>().ok() == Some(frame.len())
                && frame.starts_with('{')
                && frame.ends_with('}');
            if !whole {
                return Err(WireError::Malformed("event"));
            }
            Ok(Message::Event {
                node,
                app,
                channel,
                except,
                frame: Frame::from(frame),
            })
        }
        "MA" => {
            let [app, channel, except, member] =
                fields(rest).ok_or(WireError::Malformed("member_added"))?;
            let except = socket(except).map_err(|_| WireError::Malformed("member_added"))?;
            Ok(Message::MemberAdded {
                app,
                channel,
                except,
                member,
            })
        }
        "MR" => {
            let [app, channel, member] =
                fields(rest).ok_or(WireError::Malformed("member_removed"))?;
            Ok(Message::MemberRemoved {
                app,
                channel,
                member,
            })
        }
        "J" => {
            let [app, channel, sock, ok, members] =
                fields(rest).ok_or(WireError::Malformed("join"))?;
            let socket = socket(sock)
                .ok()
                .flatten()
                .ok_or(WireError::Malformed("join"))?;
            Ok(Message::Joined {
                app,
                channel,
                socket,
                ok: ok == "1",
                members,
            })
        }
        "S" => {
            let [app, channel, members] = fields(rest).ok_or(WireError::Malformed("members"))?;
            Ok(Message::Members {
                app,
                channel,
                members,
            })
        }
        "N" if !rest.is_empty() && !rest.contains('\n') => Ok(Message::Hello { node: rest }),
        "WO" | "WF" => {
            let [app, user] = fields(rest).ok_or(WireError::Malformed("online"))?;
            Ok(Message::Presence {
                app,
                user,
                online: kind == "WO",
            })
        }
        "WS" => {
            let [app, sock, flags] = fields(rest).ok_or(WireError::Malformed("watch"))?;
            let socket = socket(sock)
                .ok()
                .flatten()
                .ok_or(WireError::Malformed("watch"))?;
            if !flags.bytes().all(|b| b == b'0' || b == b'1') {
                return Err(WireError::Malformed("watch"));
            }
            Ok(Message::Watched { app, socket, flags })
        }
        "C" => {
            let [node, app, channel] = fields(rest).ok_or(WireError::Malformed("count"))?;
            Ok(Message::Count { node, app, channel })
        }
        "HF" => {
            let [kind, app, rest] = fields(rest).ok_or(WireError::Malformed("webhook"))?;
            let (channel, user) = match kind {
                "o" | "v" => (rest, None),
                "a" | "r" => {
                    let (c, u) = rest
                        .split_once('\n')
                        .ok_or(WireError::Malformed("webhook"))?;
                    (c, Some(u))
                }
                _ => return Err(WireError::Malformed("webhook")),
            };
            Ok(Message::Webhook {
                kind,
                app,
                channel,
                user,
            })
        }
        "T" => {
            let [node, app, user] = fields(rest).ok_or(WireError::Malformed("terminate"))?;
            Ok(Message::Terminate { node, app, user })
        }
        _ => Err(WireError::Malformed("unknown kind")),
    }
}

/// Splits `rest` into exactly `N` fields, the last running to the end.
fn fields<const N: usize>(rest: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = rest.splitn(N, '\n');
    for slot in out.iter_mut() {
        *slot = it.next()?;
    }
    Some(out)
}

/// An optional socket id: empty means none.
fn socket(s: &str) -> Result<Option<SocketId>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    SocketId::parse(s).map(Some).ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trip_keeps_frame_bytes() {
        let frame = Frame::from(r#"{"event":"e","channel":"c","data":"a\nb"}"#);
        let sid = SocketId::parse("12.34").unwrap();
        let bytes = event("n1", "app", "c", Some(sid), &frame);
        let msg = decode(&bytes).unwrap();
        assert_eq!(
            msg,
            Message::Event {
                node: "n1",
                app: "app",
                channel: "c",
                except: Some(sid),
                frame
            }
        );
        let none = event("n1", "app", "c", None, &Frame::from("{\"a\":\"x\ny\"}"));
        match decode(&none).unwrap() {
            Message::Event { except, frame, .. } => {
                assert_eq!(except, None);
                assert_eq!(frame.as_str(), "{\"a\":\"x\ny\"}");
            }
            other => panic!("{other:?}"),
        }
        let good = event("n1", "app", "c", None, &Frame::from("{\"event\":\"e\"}"));
        let cut = &good[..good.len() - 1];
        assert!(decode(cut).is_err(), "truncated");
        let mut padded = good.to_vec();
        padded.extend_from_slice(b"}}}");
        assert!(decode(&padded).is_err(), "padded");
        assert!(decode(b"H1\nE\nn\napp\nc\n\n0\n").is_err(), "empty frame");
    }

    #[test]
    fn script_shapes_decode() {
        let m = decode(b"H1\nMA\napp\npresence-x\n1.2\n[\"u\",\"u\",null]").unwrap();
        assert!(matches!(
            m,
            Message::MemberAdded {
                member: "[\"u\",\"u\",null]",
                ..
            }
        ));
        let m = decode(b"H1\nS\napp\npresence-x\n").unwrap();
        assert!(matches!(m, Message::Members { members: "", .. }));
        let m = decode(b"H1\nMR\napp\npresence-x\n[\"u\",\"u\",null]").unwrap();
        assert!(matches!(m, Message::MemberRemoved { .. }));
        let m = decode(b"H1\nJ\napp\npresence-x\n1.2\n1\n[\"a\",1,null]\n[\"b\",2,null]").unwrap();
        match m {
            Message::Joined { ok, members, .. } => {
                assert!(ok);
                assert_eq!(members.lines().count(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode(&hello("abc")).unwrap(),
            Message::Hello { node: "abc" }
        );
        let t = terminate("n", "app", "user\nwith newline");
        assert_eq!(
            decode(&t).unwrap(),
            Message::Terminate {
                node: "n",
                app: "app",
                user: "user\nwith newline"
            }
        );
    }

    #[test]
    fn watchlist_and_count_shapes_decode() {
        let m = decode(b"H1\nWO\napp\nuser\nwith newline").unwrap();
        assert_eq!(
            m,
            Message::Presence {
                app: "app",
                user: "user\nwith newline",
                online: true
            }
        );
        let m = decode(b"H1\nHF\nr\napp\npresence-a\nuser\nx").unwrap();
        assert!(matches!(
            m,
            Message::Webhook {
                kind: "r",
                channel: "presence-a",
                user: Some("user\nx"),
                ..
            }
        ));
        let m = decode(b"H1\nHF\no\napp\nc").unwrap();
        assert!(matches!(
            m,
            Message::Webhook {
                kind: "o",
                channel: "c",
                user: None,
                ..
            }
        ));
        assert!(decode(b"H1\nHF\nx\napp\nc").is_err());
        let m = decode(b"H1\nWF\napp\nu").unwrap();
        assert!(matches!(m, Message::Presence { online: false, .. }));
        let m = decode(b"H1\nWS\napp\n1.2\n0110").unwrap();
        assert!(matches!(m, Message::Watched { flags: "0110", .. }));
        assert!(decode(b"H1\nWS\napp\n1.2\n01x").is_err());
        assert_eq!(
            decode(&count("n", "app", "c")).unwrap(),
            Message::Count {
                node: "n",
                app: "app",
                channel: "c"
            }
        );
        assert!(matches!(
            decode(&count("n", "", "")).unwrap(),
            Message::Count { app: "", .. }
        ));
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        for bad in [
            &b"hello"[..],
            b"",
            b"H1",
            b"H1\nE\nn\napp",
            b"H1\nJ\napp\nc\nnot-a-socket\n1\n",
            b"H1\nE\nn\na\nc\nbad\nframe",
            b"H1\nZZ\n",
            b"{\"type\":\"message\",\"application\":\"O:26\"}",
            &[0xff, 0xfe, 0x00],
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
