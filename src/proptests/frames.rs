//! `socket::frames::FrameReader`, the hand-rolled RFC 6455 reader of client frames, driven
//! through an in-memory socket that hands its bytes out in arbitrary reads (down to one byte,
//! `Pending` between reads, part of them as handshake leftovers): it yields exactly the
//! messages and control frames sent, whatever the read boundaries, fragmentation, masks and
//! length encodings; `max_message_size` holds at the byte; a close frame gets the RFC's reply;
//! arbitrary or corrupted input ends in `Gone` or a violation (never a panic or a hang, and the
//! same way however it is read); nothing stays allocated once the input ends at a frame edge.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::io::{AsyncRead, ReadBuf};

use super::config;
use crate::protocol::ViolationCode::{self, InvalidPayload, ProtocolError, TooBig};
use crate::socket::frames::{FrameReader, Inbound, ReadEnd};

/// `max_message_size` for the valid streams: above the largest message generated.
const MAX: usize = 70_000;

/// The socket: `data` handed out one piece at a time (up to the next cut, and no more than
/// the reader's buffer takes), `Pending` (with a wake-up) before each read, then EOF.
struct Chunked {
    data: Vec<u8>,
    cuts: Vec<usize>,
    next: usize,
    pos: usize,
    ready: bool,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pos < me.data.len() && !me.ready {
            me.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        me.ready = false;
        while me.next < me.cuts.len() && me.cuts[me.next] <= me.pos {
            me.next += 1;
        }
        let cut = me.cuts.get(me.next).copied().unwrap_or(me.data.len());
        let n = (cut - me.pos).min(buf.remaining());
        buf.put_slice(&me.data[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Records a wake-up, so a `Pending` without one (a hang under a real executor) is caught.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Reads `bytes` to the end with a reader refusing more than `max` bytes, the first
/// `leftover` of them given as handshake leftovers and the rest read up to each of `cuts`
/// (positions in `bytes`) at a time; `each` sees the reader after every message. What it
/// yielded, why it stopped, and the bytes it then held; panics if it neither stops nor
/// progresses.
fn run(
    max: usize,
    bytes: &[u8],
    leftover: usize,
    cuts: &[usize],
    mut each: impl FnMut(&FrameReader),
) -> (Vec<Inbound>, ReadEnd, usize) {
    let mut reader = FrameReader::new(max, bytes[..leftover].to_vec());
    let cuts = cuts.iter().filter(|&&c| c > leftover).map(|c| c - leftover);
    let mut io = Chunked {
        data: bytes[leftover..].to_vec(),
        cuts: cuts.collect(),
        next: 0,
        pos: 0,
        ready: false,
    };
    let woken = Arc::new(Woken(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut out = Vec::new();
    // A poll waits once per read, reads at least a byte or yields a message of 6 bytes or more.
    let polls = 3 * bytes.len() + 8;
    for _ in 0..polls {
        woken.0.store(false, Ordering::SeqCst);
        match reader.poll_next(&mut io, &mut cx) {
            Poll::Pending => assert!(woken.0.load(Ordering::SeqCst), "Pending, no wake-up"),
            Poll::Ready(Ok(msg)) => {
                out.push(msg);
                each(&reader);
            }
            Poll::Ready(Err(end)) => return (out, end, reader.pending_capacity()),
        }
    }
    panic!("no end after {polls} polls over {} bytes", bytes.len());
}

/// Cut positions for reads of `sizes` bytes in turn.
fn cuts(len: usize, sizes: &[usize]) -> Vec<usize> {
    let mut at = 0;
    let ends = sizes.iter().cycle().map(|s| {
        at += s;
        at
    });
    ends.take_while(|&e| e < len).collect()
}

/// A control frame the client sends: ping (or pong) and its payload.
type Ctl = (bool, Vec<u8>);

/// What a client sends.
#[derive(Debug, Clone)]
enum Item {
    /// A data message (text or not, payload) cut into fragments at the indices, with the
    /// control frames in the i-th list sent after fragment i.
    Data(bool, Vec<u8>, Vec<Index>, Vec<Vec<Ctl>>),
    Ctl(Ctl),
}

/// A frame's mask and length form: 0 shortest, 1 the 16-bit form where it fits, 2 the 64-bit.
type Param = ([u8; 4], u8);

/// Frames encoded, where each ends, and the messages they must yield.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    expected: Vec<Inbound>,
    /// Where the frame completing each expected message ends.
    done_at: Vec<usize>,
}

impl Stream {
    fn frame(&mut self, (mask, form): Param, fin: bool, opcode: u8, payload: &[u8]) {
        let n = payload.len();
        self.bytes.push(if fin { 0x80 } else { 0 } | opcode);
        if form == 2 || n > 0xFFFF {
            self.bytes.push(0x80 | 127);
            self.bytes.extend_from_slice(&(n as u64).to_be_bytes());
        } else if form == 1 || n >= 126 {
            self.bytes.push(0x80 | 126);
            self.bytes.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.bytes.push(0x80 | n as u8);
        }
        self.bytes.extend_from_slice(&mask);
        let masked = payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]);
        self.bytes.extend(masked);
        self.ends.push(self.bytes.len());
    }

    fn expect(&mut self, msg: Inbound) {
        self.expected.push(msg);
        self.done_at.push(self.bytes.len());
    }

    fn ctl(&mut self, p: Param, (ping, payload): &Ctl) {
        self.frame(p, true, if *ping { 0x9 } else { 0xA }, payload);
        self.expect(if *ping {
            Inbound::Ping(Bytes::from(
                [&[0x8A, payload.len() as u8][..], payload].concat(),
            ))
        } else {
            Inbound::Pong
        });
    }
}

fn encode(items: &[Item], params: &[Param]) -> Stream {
    let mut s = Stream::default();
    let mut p = params.iter().copied().cycle();
    for item in items {
        let (text, payload, cuts, between) = match item {
            Item::Data(text, payload, cuts, between) => (text, payload, cuts, between),
            Item::Ctl(c) => {
                s.ctl(p.next().unwrap(), c);
                continue;
            }
        };
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
        at.sort_unstable();
        at.push(payload.len());
        let mut from = 0;
        for (i, &to) in at.iter().enumerate() {
            let opcode = if i > 0 { 0x0 } else { 0x2 - u8::from(*text) };
            let fin = i + 1 == at.len();
            s.frame(p.next().unwrap(), fin, opcode, &payload[from..to]);
            from = to;
            for c in between.get(i).filter(|_| !fin).into_iter().flatten() {
                s.ctl(p.next().unwrap(), c);
            }
        }
        s.expect(if *text {
            Inbound::Text(String::from_utf8(payload.clone()).unwrap())
        } else {
            Inbound::Binary(payload.clone())
        });
    }
    s
}

fn ctl() -> impl Strategy<Value = Ctl> {
    (any::<bool>(), vec(any::<u8>(), 0..=125))
}

/// Mostly short payloads (7-bit lengths), some 16-bit, a few up to 70 000 bytes.
fn item() -> impl Strategy<Value = Item> {
    let text = prop_oneof![
        8 => vec(any::<char>(), 0..40),
        3 => vec(any::<char>(), 40..600),
        1 => vec(any::<char>(), 600..17_000),
    ]
    .prop_map(|c| (true, String::from_iter(c).into_bytes()));
    let binary = prop_oneof![
        8 => vec(any::<u8>(), 0..126),
        3 => vec(any::<u8>(), 126..3000),
        1 => vec(any::<u8>(), 3000..MAX),
    ]
    .prop_map(|b| (false, b));
    let data = (
        prop_oneof![text, binary],
        vec(any::<Index>(), 0..4),
        vec(vec(ctl(), 0..3), 3),
    );
    prop_oneof![
        3 => data.prop_map(|((text, payload), cuts, between)| Item::Data(text, payload, cuts, between)),
        1 => ctl().prop_map(Item::Ctl),
    ]
}

fn params() -> impl Strategy<Value = Vec<Param>> {
    let form = prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)];
    vec((any::<[u8; 4]>(), form), 1..8)
}

/// Read sizes, used in turn: single bytes, small, up to and past the reader's 16 KiB buffer.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    let size =
        prop_oneof![3 => Just(1usize), 3 => 1usize..32, 2 => 1usize..5000, 1 => 5000usize..40_000];
    vec(size, 1..6)
}

/// A close frame's payload: empty, one byte, or a code (any, or near the edges of the
/// allowed ranges) with a UTF-8 reason or arbitrary bytes.
fn close_payload() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![any::<u16>(), 0u16..1020, 2990u16..3010, 4990u16..5010,];
    let utf8 = vec(any::<char>(), 0..40).prop_map(|c| {
        let mut r = String::from_iter(c);
        while r.len() > 123 {
            r.pop();
        }
        r.into_bytes()
    });
    let reason = prop_oneof![utf8, vec(any::<u8>(), 0..=123)];
    prop_oneof![
        1 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b]),
        8 => (code, reason).prop_map(|(c, r)| [&c.to_be_bytes()[..], &r].concat()),
    ]
}

/// RFC 6455 §7.4 as tungstenite applied it: the reply to a close frame with `payload`.
fn close_outcome(payload: &[u8]) -> Result<Inbound, ViolationCode> {
    let reply = match payload {
        [] => Vec::new(),
        [_] => return Err(ProtocolError),
        [hi, lo, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| InvalidPayload)?;
            match u16::from_be_bytes([*hi, *lo]) {
                0..=999 | 1004..=1006 | 1014..=2999 | 5000.. => {
                    [&[0x03, 0xEA][..], b"Protocol violation"].concat()
                }
                _ => payload.to_vec(),
            }
        }
    };
    let frame = [&[0x88, reply.len() as u8][..], &reply].concat();
    Ok(Inbound::Close(Bytes::from(frame)))
}

fn text(s: &str) -> Item {
    Item::Data(true, s.into(), Vec::new(), Vec::new())
}

proptest! {
    #![proptest_config(config())]

    /// Property 1: the messages are the same however the bytes arrive; the input consumed at
    /// a frame edge, nothing stays allocated.
    #[test]
    fn chunking_does_not_matter(
        items in vec(item(), 0..6),
        params in params(),
        sizes in sizes(),
        leftover in proptest::option::of(any::<Index>()),
    ) {
        let s = encode(&items, &params);
        let leftover = leftover.map_or(0, |i| i.index(s.bytes.len() + 1));
        let got = run(MAX, &s.bytes, leftover, &cuts(s.bytes.len(), &sizes), |_| {});
        prop_assert_eq!(got, (s.expected, ReadEnd::Gone, 0));
    }

    /// Property 4: one frame per read, nothing is kept after any message, nor at the end.
    #[test]
    fn nothing_pending_between_frames(items in vec(item(), 0..6), params in params()) {
        let s = encode(&items, &params);
        let mut held = Vec::new();
        let got = run(MAX, &s.bytes, 0, &s.ends, |r| held.push(r.pending_capacity()));
        prop_assert_eq!(got, (s.expected, ReadEnd::Gone, 0));
        prop_assert!(held.iter().all(|&h| h == 0), "held after a message: {:?}", held);
    }

    /// Property 2: a message one byte or more over the limit (whole or fragmented) is 1009 and
    /// nothing after it is read; one exactly at the limit passes.
    #[test]
    fn limits_hold_at_the_byte(
        max in 125usize..4000,
        excess in prop_oneof![Just(0usize), 1usize..64],
        frags in vec(any::<Index>(), 0..4),
        params in params(),
        sizes in sizes(),
    ) {
        let big = Item::Data(false, (0..max + excess).map(|i| i as u8).collect(), frags, vec![]);
        let s = encode(&[text("before"), big, text("after")], &params);
        let (out, end, _) = run(max, &s.bytes, 0, &cuts(s.bytes.len(), &sizes), |_| {});
        if excess == 0 {
            prop_assert_eq!((out, end), (s.expected, ReadEnd::Gone));
        } else {
            let before = vec![Inbound::Text("before".into())];
            prop_assert_eq!((out, end), (before, ReadEnd::Violation(TooBig)));
        }
    }

    /// Property 2 (header): a declared length is judged from the header alone, before any of
    /// the payload arrives: over the limit 1009, with the top bit set 1002.
    #[test]
    fn declared_length_is_judged_from_the_header(
        max in 0usize..100_000,
        declared in prop_oneof![any::<u64>(), 0u64..100_000, (1u64 << 63)..=u64::MAX],
        mask in any::<[u8; 4]>(),
    ) {
        let header = [&[0x82, 0xFF][..], &declared.to_be_bytes(), &mask].concat();
        let want = if declared >> 63 != 0 {
            (vec![], ReadEnd::Violation(ProtocolError))
        } else if declared > max as u64 {
            (vec![], ReadEnd::Violation(TooBig))
        } else if declared == 0 {
            (vec![Inbound::Binary(vec![])], ReadEnd::Gone)
        } else {
            (vec![], ReadEnd::Gone)
        };
        let (out, end, _) = run(max, &header, 0, &[], |_| {});
        prop_assert_eq!((out, end), want);
    }

    /// Property 5: a close frame is echoed, answered with 1002 for a code not allowed on the
    /// wire, or refused (1002 for one byte, 1007 for a reason that is not UTF-8).
    #[test]
    fn close_frames_get_the_rfc_reply(
        payload in close_payload(),
        params in params(),
        sizes in sizes(),
    ) {
        let mut s = Stream::default();
        s.frame(params[0], true, 0x8, &payload);
        let after = encode(&[text("after")], &params);
        s.bytes.extend_from_slice(&after.bytes);
        let (out, end, _) = run(MAX, &s.bytes, 0, &cuts(s.bytes.len(), &sizes), |_| {});
        let want = match close_outcome(&payload) {
            Ok(reply) => (vec![reply, Inbound::Text("after".into())], ReadEnd::Gone),
            Err(code) => (vec![], ReadEnd::Violation(code)),
        };
        prop_assert_eq!((out, end), want);
    }

    /// Property 3: arbitrary bytes end in `Gone` or a violation, never a panic or a hang, and
    /// the same way whether read one byte at a time or in arbitrary pieces.
    #[test]
    fn arbitrary_bytes_end_cleanly(
        bytes in vec(any::<u8>(), 0..4096),
        max in 0usize..5000,
        sizes in sizes(),
        leftover in any::<Index>(),
    ) {
        let leftover = leftover.index(bytes.len() + 1);
        let (out, end, _) = run(max, &bytes, 0, &(1..bytes.len()).collect::<Vec<_>>(), |_| {});
        let pieces = run(max, &bytes, leftover, &cuts(bytes.len(), &sizes), |_| {});
        prop_assert_eq!((out, end), (pieces.0, pieces.1));
    }

    /// Property 3 (mutations): a valid stream with one bit flipped still ends cleanly, the
    /// same however it is read, and every message before the damaged frame comes through.
    #[test]
    fn a_flipped_bit_ends_cleanly(
        items in vec(item(), 1..5),
        params in params(),
        sizes in sizes(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let mut s = encode(&items, &params);
        let at = at.index(s.bytes.len());
        s.bytes[at] ^= 1 << bit;
        let (out, end, _) = run(MAX, &s.bytes, 0, &[], |_| {});
        let pieces = run(MAX, &s.bytes, 0, &cuts(s.bytes.len(), &sizes), |_| {});
        prop_assert_eq!((&out, &end), (&pieces.0, &pieces.1));
        let damaged = s.ends.iter().rev().find(|&&e| e <= at).copied().unwrap_or(0);
        let intact = s.done_at.iter().filter(|&&d| d <= damaged).count();
        prop_assert!(out.len() >= intact, "{} of {} intact messages", out.len(), intact);
        prop_assert_eq!(&out[..intact], &s.expected[..intact]);
    }
}
