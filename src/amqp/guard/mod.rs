//! A frame guard between RabbitMQ and lapin's parser, for consuming
//! connections, and for every `amqps` connection: the TLS session is made
//! here ([`super::tls`]), and the guard is the hop that hands lapin its
//! plaintext.
//!
//! Why it exists: producers are trusted to publish to the intent exchange,
//! not to be well-formed. RabbitMQ forwards what they send unchanged, and
//! lapin's parser fails on two kinds of input before the relay's own poison
//! handling ever sees the message:
//!
//! - a header table nested about a thousand levels deep (well under the
//!   frame size) overflows the stack of lapin's I/O thread, which aborts the
//!   process; restarted, the worker takes the same message and aborts again;
//! - a routing key, property or header key that is not UTF-8 makes lapin
//!   close the connection; the message is redelivered, and the queue (or
//!   the shard, or the single-active queue) stalls behind it for good.
//!
//! The guard reads the broker's side of the connection frame by frame and
//! rewrites only what lapin cannot take: strings that are not UTF-8 get `?`
//! for each bad byte, values nested deeper than [`MAX_HEADER_DEPTH`] become
//! void, an unparseable header table is dropped, a header table over
//! `RELAY_MAX_HEADER_BYTES` (or with more entries than that allows) is
//! dropped, and a body over the limit is cut to an excerpt of
//! [`BODY_EXCERPT_BYTES`], so that memory stays bounded whatever a producer
//! sends. Every rewritten message carries [`UNREADABLE_HEADER`] naming what
//! was wrong, and the relay dead-letters it with that reason (and acks it),
//! so the good intents behind it flow on and an operator finds the poison
//! in the dead-letter store.
//!
//! A rewrite never outgrows the frame: a replacement is never larger than
//! what it replaces (a `?` per bad byte, a void for a nested table), the
//! marker is short, and a content header that would still pass the
//! connection's `frame_max` (learned from connection.tune and tune-ok) is
//! sent with its header table dropped, keeping only the marker. lapin
//! closes a connection on a frame larger than `frame_max`, and the
//! redelivery would do it again. Problems are counted, not searched for, so
//! a message full of them costs time in proportion to its size.
//!
//! On the relay's consuming connections the guard also keeps the worker's
//! byte budget: it holds the next delivery back while the worker holds
//! `RELAY_MAX_HELD_BYTES` of unsettled ones (see [`super::held`]).
//!
//! It is a loopback TCP hop, because lapin 2 reads its socket itself (an
//! OS socket, registered with its reactor) and offers no hook between
//! socket and parser. The hop belongs to the worker alone: the guard
//! connects lapin's end itself, accepts only the connection from that end's
//! port (any other process that connects meanwhile is dropped), closes its
//! listener, and hands lapin the connected socket; no other local process
//! can take the broker session, client certificate included. What the
//! client sends passes through untouched; so do all frames but
//! `basic.deliver`, `basic.get-ok`, `basic.return`, content headers and the
//! bodies of cut messages. Frames that pass as they came are not copied:
//! they are looked at where they lie in the read buffer and written from
//! there, a run of them at a time. The alternatives weighed: a bigger stack for
//! lapin's thread still aborts at some depth and leaves the UTF-8 stall;
//! RabbitMQ's `x-delivery-limit` counts the innocent messages of the same
//! prefetch window on every reconnect too, and would dead-letter them with
//! the poison; a patched lapin would be a fork to carry.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::TcpListener;

use super::held::{self, Budget, Held};

mod table;
use table::*;

/// The header the guard adds to a message it had to rewrite; its value
/// says what was wrong. The relay dead-letters any message carrying it.
pub const UNREADABLE_HEADER: &str = "x-pusher-relay-unreadable";

/// How deep header tables and arrays may nest. Intents need none; 16 is far
/// beyond any real use and keeps the stored headers readable as JSON.
pub const MAX_HEADER_DEPTH: usize = 16;

/// How much of an oversized body is kept for the dead letter.
pub const BODY_EXCERPT_BYTES: usize = 4096;

/// Names the cut of an oversized body in the marker; see [`too_large`].
const BODY_CUT: &str = "exceeds RELAY_MAX_BODY_BYTES";

/// Names a header table dropped for its size in the marker.
const HEADERS_CUT: &str = "exceed RELAY_MAX_HEADER_BYTES";

/// Header entries (values, nested ones included) allowed per byte of
/// `RELAY_MAX_HEADER_BYTES`: lapin holds each value in 32 bytes or more, so
/// a table of one-byte values would otherwise cost 30 times its size.
const HEADER_BYTES_PER_ENTRY: usize = 16;

/// Whether the marker's problems include a cut body or a dropped oversized
/// header table (the message is then too large rather than malformed).
pub fn too_large(problems: &str) -> bool {
    problems.contains(BODY_CUT) || problems.contains(HEADERS_CUT)
}

/// Problems told one by one in the marker; beyond these they are counted.
const MAX_NOTES: usize = 4;

/// The most of the marker's text kept: enough for the notes, and short
/// enough that the marker fits any frame beside the other properties.
const MAX_MARKER_BYTES: usize = 512;

/// `frame_max` until the connection's is known: AMQP 0-9-1's smallest, which
/// any broker accepts.
const MIN_FRAME_MAX: u32 = 4096;

/// A frame larger than this is not from RabbitMQ (its `frame_max` is at
/// most 128 KiB by default; operators rarely raise it past 1 MiB).
const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// How long the guard waits for its own connection to its loopback port.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

/// What one header value costs in the worker beyond its bytes on the wire,
/// for the byte budget: lapin's value and key, the table's node, the relay's
/// copy (the figure behind it is in docs/tuning.md, "Memory").
const HELD_PER_HEADER_ENTRY: u64 = 160;

/// How often lapin hears a heartbeat from the guard while deliveries are
/// held back: well inside any heartbeat interval a broker offers.
const HELD_HEARTBEAT: Duration = Duration::from_secs(1);
const CLASS_BASIC: u16 = 60;

/// What the guard enforces beyond well-formedness.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A body larger than this is cut to [`BODY_EXCERPT_BYTES`] and flagged.
    pub max_body_bytes: u64,
    /// A header table larger than this, or with more entries than one per
    /// [`HEADER_BYTES_PER_ENTRY`] of it, is dropped and flagged.
    pub max_header_bytes: u32,
}

/// Guards `upstream` (a connection to the broker, before the AMQP
/// handshake) and returns lapin's end of the loopback hop, connected. The
/// guard ends when either side closes. With a `budget`, deliveries wait
/// while the worker holds too many bytes of them (see [`super::held`]).
pub async fn spawn<S>(
    upstream: S,
    limits: Limits,
    budget: Option<Arc<Budget>>,
) -> io::Result<std::net::TcpStream>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let lapin_end = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
    let ours = lapin_end.local_addr()?;
    let client = tokio::time::timeout(ACCEPT_TIMEOUT, accept_only(&listener, ours))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the guard's own connection did not arrive",
            )
        })??;
    drop(listener);
    lapin_end.set_nodelay(true)?;
    // Non-blocking, as lapin's own connect leaves a socket for its reactor.
    let lapin_end = lapin_end.into_std()?;
    tokio::spawn(async move {
        let _ = client.set_nodelay(true);
        let (client_read, client_write) = tokio::io::split(client);
        let (broker_read, broker_write) = tokio::io::split(upstream);
        let negotiated = Arc::new(AtomicU32::new(0));
        let held = budget.map(|b| Arc::new(Held::new(b)));
        let mut filter = Filter::new(limits);
        filter.negotiated = negotiated.clone();
        filter.held = held.clone();
        tokio::select! {
            r = forward(client_read, broker_write, negotiated, held) => {
                if let Err(e) = r { tracing::debug!(error = %e, "AMQP guard: client side ended"); }
            }
            r = filter.pump(broker_read, client_write) => {
                if let Err(e) = r { tracing::debug!(error = %e, "AMQP guard: broker side ended"); }
            }
        }
    });
    Ok(lapin_end)
}

/// Accepts connections on `listener` until the one from `ours`, dropping
/// any other: another local process that found the port gets nothing.
async fn accept_only(
    listener: &TcpListener,
    ours: SocketAddr,
) -> io::Result<tokio::net::TcpStream> {
    loop {
        let (stream, peer) = listener.accept().await?;
        if peer == ours {
            return Ok(stream);
        }
        tracing::warn!(%peer, "AMQP guard: a connection to its loopback port that is not the worker's own was dropped");
    }
}

/// Passes the client's bytes to the broker unchanged. Until connection.tune-ok
/// it looks at them frame by frame, to learn the `frame_max` lapin agreed to
/// (0: none of its own); then, with a byte budget, it goes on looking at
/// them to see what the client settles, and else only copies.
async fn forward<R, W>(
    from: R,
    mut to: W,
    negotiated: Arc<AtomicU32>,
    held: Option<Arc<Held>>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut from = BufReader::with_capacity(16 * 1024, from);
    let mut header = [0u8; 8];
    from.read_exact(&mut header).await?;
    to.write_all(&header).await?;
    to.flush().await?;
    let mut frame = Vec::new();
    loop {
        // Whole frames are read where they lie in the read buffer and
        // written from there, uncopied; a frame that arrived in pieces is
        // gathered first.
        let buffered = from.fill_buf().await?;
        if buffered.is_empty() {
            return to.shutdown().await;
        }
        let mut at = 0;
        let mut watching = true;
        while let Some((kind, channel, size)) = client_frame_head(&buffered[at..])? {
            let next = at + size + 8;
            if buffered.len() < next {
                break;
            }
            watching = watch_client(kind, channel, &buffered[at + 7..next], &negotiated, &held);
            at = next;
            if !watching {
                break;
            }
        }
        if at > 0 {
            to.write_all(&buffered[..at]).await?;
            from.consume(at);
        } else {
            let (head, kind, channel) =
                read_pieced(&mut from, &mut frame, client_frame_head).await?;
            to.write_all(&head).await?;
            to.write_all(&frame).await?;
            watching = watch_client(kind, channel, &frame, &negotiated, &held);
        }
        // A no-op on TCP; a TLS stream sends its records.
        to.flush().await?;
        if !watching {
            break;
        }
    }
    tokio::io::copy_buf(&mut from, &mut to).await?;
    to.shutdown().await
}

/// Gathers a frame that is not whole in the read buffer: returns its head,
/// kind and channel, and leaves its payload and frame end in `rest`.
/// `head_of` reads the head (and refuses an oversized frame).
async fn read_pieced<R: AsyncRead + Unpin>(
    from: &mut R,
    rest: &mut Vec<u8>,
    head_of: fn(&[u8]) -> io::Result<Option<FrameHead>>,
) -> io::Result<([u8; 7], u8, u16)> {
    let mut head = [0u8; 7];
    from.read_exact(&mut head).await?;
    let (kind, channel, size) = head_of(&head)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "frame head cut short"))?;
    rest.resize(size + 1, 0);
    from.read_exact(rest).await?;
    Ok((head, kind, channel))
}

/// A frame head from the client, as [`frame_head`] reads one from the broker.
fn client_frame_head(b: &[u8]) -> io::Result<Option<FrameHead>> {
    frame_head(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a frame of over 16 MiB from the client",
        )
    })
}

/// Learns from one frame the client sent (its payload and frame end): the
/// `frame_max` of connection.tune-ok, and what it settles of the held
/// deliveries. Returns whether later frames still need watching.
fn watch_client(
    kind: u8,
    channel: u16,
    frame: &[u8],
    negotiated: &AtomicU32,
    held: &Option<Arc<Held>>,
) -> bool {
    if kind != FRAME_METHOD {
        return true;
    }
    // connection.tune-ok: class 10, method 31, channel-max, frame-max.
    if channel == 0 && frame.get(..4) == Some(&[0, 10, 0, 31][..]) {
        if let Some(max) = be_u32(frame, 6) {
            negotiated.store(max, Ordering::Relaxed);
        }
        if held.is_none() {
            return false;
        }
    }
    if let Some(held) = held {
        held.client_frame(channel, frame);
    }
    true
}

/// The per-connection state: what each channel's next frames need.
struct Filter {
    limits: Limits,
    channels: HashMap<u16, ChannelState>,
    /// `frame_max` from connection.tune (0 until seen, or for none).
    offered: u32,
    /// `frame_max` from connection.tune-ok, set by [`forward`].
    negotiated: Arc<AtomicU32>,
    /// The byte budget, when the connection has one.
    held: Option<Arc<Held>>,
    /// Header values of the last content header passed to lapin.
    header_entries: usize,
}

#[derive(Default)]
struct ChannelState {
    /// Problems found in the method frame, told in the content header.
    problems: Problems,
    /// Set while the body of a cut message is arriving.
    cut: Option<BodyCut>,
}

/// What is wrong with one message: the first few problems in words, the
/// rest counted, so that memory and time stay in proportion to the message
/// however many problems it has.
#[derive(Default, Debug)]
struct Problems {
    notes: Vec<String>,
    more: usize,
    /// Told once, however many values were too deep.
    nested: bool,
}

impl Problems {
    fn note(&mut self, note: impl FnOnce() -> String) {
        if self.notes.len() < MAX_NOTES {
            let note = note();
            if !self.notes.contains(&note) {
                self.notes.push(note);
                return;
            }
        }
        self.more += 1;
    }

    /// A problem of size (a cut body, a dropped table), told first whatever
    /// else is wrong: the marker is cut at [`MAX_MARKER_BYTES`], and whether
    /// the message is too large or malformed is read from it.
    fn note_size(&mut self, note: String) {
        self.notes.insert(0, note);
    }

    fn is_empty(&self) -> bool {
        self.notes.is_empty() && !self.nested
    }

    fn render(&self) -> String {
        let mut parts = self.notes.clone();
        if self.nested {
            parts.push(format!(
                "headers nest deeper than {MAX_HEADER_DEPTH} levels; what lies below is void"
            ));
        }
        if self.more > 0 {
            parts.push(format!("and {} more problems", self.more));
        }
        parts.join("; ")
    }
}

struct BodyCut {
    /// Body bytes still to arrive from the broker.
    remaining: u64,
    /// Of those, how many still pass on to lapin.
    keep: u64,
}

impl Filter {
    fn new(limits: Limits) -> Filter {
        Filter {
            limits,
            channels: HashMap::new(),
            offered: 0,
            negotiated: Arc::new(AtomicU32::new(0)),
            held: None,
            header_entries: 0,
        }
    }

    /// The largest frame lapin accepts on this connection: the lower of what
    /// the broker offered and what lapin asked for, 0 meaning no limit of
    /// that side's; the smallest any broker accepts until the broker spoke.
    fn frame_max(&self) -> u32 {
        let negotiated = self.negotiated.load(Ordering::Relaxed);
        match (self.offered, negotiated) {
            (0, 0) => MIN_FRAME_MAX,
            (0, n) | (n, 0) => n,
            (a, b) => a.min(b),
        }
    }

    async fn pump<R, W>(&mut self, from: R, to: W) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut from = BufReader::with_capacity(64 * 1024, from);
        // Buffers only what the guard writes itself (rewritten frames,
        // frames that arrived in pieces, heartbeats); runs of clean frames
        // go from the read buffer to the socket as they came.
        let mut to = BufWriter::with_capacity(16 * 1024, to);
        // One buffer for a frame that is not whole in the read buffer: most
        // are a few hundred bytes, and a fresh allocation each would churn
        // the allocator at 100,000/s.
        let mut payload = Vec::new();
        loop {
            let buffered = from.fill_buf().await?;
            if buffered.is_empty() {
                to.flush().await?;
                return to.shutdown().await;
            }
            if buffered[0] == b'A' {
                // "AMQP" and a version: the broker refuses ours and closes.
                tokio::io::copy(&mut from, &mut to).await?;
                to.flush().await?;
                return to.shutdown().await;
            }
            // Every frame whole in the read buffer, as nearly all are, is
            // looked at there. The clean ones between two that are not
            // (`run`) are written in one piece, uncopied.
            let mut at = 0;
            let mut run = 0..0;
            while let Some((kind, channel, size)) = frame_head(&buffered[at..])? {
                let next = at + size + 8;
                if buffered.len() < next {
                    break;
                }
                let frame = &buffered[at + 7..next - 1];
                let delivery = self.delivery(kind, channel, frame);
                if let Some(held) = self.held_back(delivery, channel) {
                    write_run(&mut to, &buffered[run.clone()]).await?;
                    run = at..at;
                    wait_for_room(held, channel, &mut to).await?;
                }
                let passed = match self.frame(kind, channel, frame) {
                    Verdict::Pass => {
                        run.end = next;
                        frame.len() as u64
                    }
                    verdict => {
                        write_run(&mut to, &buffered[run.clone()]).await?;
                        run = next..next;
                        write_verdict(&mut to, kind, channel, verdict, frame).await?
                    }
                };
                self.account(kind, channel, delivery, frame, passed);
                at = next;
            }
            write_run(&mut to, &buffered[run]).await?;
            if at > 0 {
                from.consume(at);
            } else {
                let (_, kind, channel) = read_pieced(&mut from, &mut payload, frame_head).await?;
                payload.pop();
                let delivery = self.delivery(kind, channel, &payload);
                if let Some(held) = self.held_back(delivery, channel) {
                    wait_for_room(held, channel, &mut to).await?;
                }
                let verdict = self.frame(kind, channel, &payload);
                let passed = write_verdict(&mut to, kind, channel, verdict, &payload).await?;
                self.account(kind, channel, delivery, &payload, passed);
            }
            if from.buffer().is_empty() {
                to.flush().await?;
            }
        }
    }

    /// For a delivery's method frame on a connection with a byte budget:
    /// the delivery's tag.
    fn delivery(&self, kind: u8, channel: u16, payload: &[u8]) -> Option<u64> {
        match (&self.held, kind) {
            (Some(_), FRAME_METHOD) if channel != 0 => held::deliver_tag(payload),
            _ => None,
        }
    }

    /// The byte budget, when `delivery` must wait for room in it before it
    /// passes.
    fn held_back(&self, delivery: Option<u64>, channel: u16) -> Option<&Held> {
        let held = self.held.as_deref()?;
        (delivery.is_some() && held.must_wait(channel)).then_some(held)
    }

    /// Keeps the byte budget's account of a frame of which `passed` bytes
    /// reached lapin.
    fn account(&self, kind: u8, channel: u16, delivery: Option<u64>, payload: &[u8], passed: u64) {
        let Some(held) = &self.held else {
            return;
        };
        match (kind, delivery) {
            (FRAME_METHOD, Some(tag)) => held.with(|s| s.delivered(channel, tag, passed)),
            (FRAME_METHOD, None) => held.with(|s| s.other_method(channel, payload)),
            (FRAME_HEADER, _) => {
                let weight = passed + self.header_entries as u64 * HELD_PER_HEADER_ENTRY;
                held.with(|s| s.content(channel, weight))
            }
            (FRAME_BODY, _) => held.with(|s| s.content(channel, passed)),
            _ => {}
        }
    }

    fn frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> Verdict {
        match kind {
            FRAME_METHOD if channel == 0 => {
                // connection.tune: class 10, method 30, channel-max, frame-max.
                if payload.get(..4) == Some(&[0, 10, 0, 30][..]) {
                    self.offered = be_u32(payload, 6).unwrap_or(0);
                }
                Verdict::Pass
            }
            FRAME_METHOD => self.method(channel, payload),
            FRAME_HEADER => self.content_header(channel, payload),
            FRAME_BODY => self.body(channel, payload),
            _ => Verdict::Pass,
        }
    }

    fn method(&mut self, channel: u16, payload: &[u8]) -> Verdict {
        let (Some(class), Some(method)) = (be_u16(payload, 0), be_u16(payload, 2)) else {
            return Verdict::Pass;
        };
        if class != CLASS_BASIC {
            return Verdict::Pass;
        }
        // The short strings of each method that carries a message, in
        // order, with the fixed-size fields between them.
        let layout: &[Field] = match method {
            // deliver: consumer-tag, delivery-tag, redelivered, exchange, routing-key
            60 => &[
                Field::Str("consumer tag"),
                Field::Fixed(9),
                Field::Str("exchange"),
                Field::Str("routing key"),
            ],
            // get-ok: delivery-tag, redelivered, exchange, routing-key, message-count
            71 => &[
                Field::Fixed(9),
                Field::Str("exchange"),
                Field::Str("routing key"),
            ],
            // return: reply-code, reply-text, exchange, routing-key
            50 => &[
                Field::Fixed(2),
                Field::Str("reply text"),
                Field::Str("exchange"),
                Field::Str("routing key"),
            ],
            _ => return Verdict::Pass,
        };
        // Nearly every method is clean: it passes as it came, and the
        // rewrite below is built only for one with a string to mend.
        if strings_are_utf8(payload, layout) {
            return Verdict::Pass;
        }
        let mut out = payload[..4].to_vec();
        let mut at = 4;
        let mut problems = Problems::default();
        for field in layout {
            match field {
                Field::Fixed(n) => {
                    let Some(bytes) = payload.get(at..at + n) else {
                        return Verdict::Pass;
                    };
                    out.extend_from_slice(bytes);
                    at += n;
                }
                Field::Str(what) => {
                    let Some(s) = short_str(payload, at) else {
                        return Verdict::Pass;
                    };
                    at += 1 + s.len();
                    copy_short_str(&mut out, s, format_args!("{what}"), &mut problems);
                }
            }
        }
        out.extend_from_slice(&payload[at..]);
        if problems.is_empty() {
            return Verdict::Pass;
        }
        self.channels.entry(channel).or_default().problems = problems;
        Verdict::Replace(out)
    }

    fn content_header(&mut self, channel: u16, payload: &[u8]) -> Verdict {
        self.header_entries = 0;
        let frame_max = self.frame_max();
        let limits = self.limits;
        let state = self.channels.entry(channel).or_default();
        let mut problems = std::mem::take(&mut state.problems);
        let (Some(class), Some(body_size), Some(flags)) = (
            be_u16(payload, 0),
            payload
                .get(4..12)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]))),
            be_u16(payload, 12),
        ) else {
            problems.note(|| "content header is truncated".into());
            return Verdict::Replace(Properties::default().encode(CLASS_BASIC, 0, &problems));
        };
        let mut kept_size = body_size;
        if body_size > limits.max_body_bytes {
            kept_size = body_size.min(BODY_EXCERPT_BYTES as u64);
            problems.note_size(format!(
                "body of {body_size} bytes {BODY_CUT} ({}); its first {kept_size} bytes are kept",
                limits.max_body_bytes
            ));
            state.cut = Some(BodyCut {
                remaining: body_size,
                keep: kept_size,
            });
        }
        // Nearly every header is clean: walked without copying anything,
        // it passes as it came. Only one with a problem is walked again to
        // build its rewrite (from no problems, so none is told twice).
        if problems.is_empty() {
            let checked =
                Properties::<Discard>::parse(flags, &payload[14..], &limits, &mut problems);
            match checked {
                Some(checked) if problems.is_empty() => {
                    self.header_entries = checked.entries;
                    return Verdict::Pass;
                }
                _ => problems = Problems::default(),
            }
        }
        let props = Properties::<Vec<u8>>::parse(flags, &payload[14..], &limits, &mut problems)
            .unwrap_or_default();
        self.header_entries = props.entries;
        if problems.is_empty() {
            return Verdict::Pass;
        }
        let out = props.encode(class, kept_size, &problems);
        // Seven bytes of frame head and one of frame end around it.
        if out.len() + 8 <= frame_max as usize {
            return Verdict::Replace(out);
        }
        problems.note_size(format!(
            "its rewritten headers did not fit frame_max ({frame_max}) and were dropped"
        ));
        let bare = Properties {
            headers: None,
            ..props
        };
        Verdict::Replace(bare.encode(class, kept_size, &problems))
    }

    fn body(&mut self, channel: u16, payload: &[u8]) -> Verdict {
        let Some(state) = self.channels.get_mut(&channel) else {
            return Verdict::Pass;
        };
        let Some(cut) = state.cut.as_mut() else {
            return Verdict::Pass;
        };
        let n = payload.len() as u64;
        let pass = cut.keep.min(n);
        cut.keep -= pass;
        cut.remaining = cut.remaining.saturating_sub(n);
        if cut.remaining == 0 {
            state.cut = None;
        }
        match pass {
            0 => Verdict::Drop,
            p if p == n => Verdict::Pass,
            p => Verdict::Replace(payload[..p as usize].to_vec()),
        }
    }
}

/// Holds a delivery back until the client settles enough of what it holds
/// (or leaves the channel), telling lapin meanwhile that the connection is
/// alive: see [`super::held`].
async fn wait_for_room<W: AsyncWrite + Unpin>(
    held: &Held,
    channel: u16,
    to: &mut W,
) -> io::Result<()> {
    // Whatever was passed must reach lapin, or nothing would ever be acked.
    to.flush().await?;
    crate::metrics::intake_held_back();
    tracing::debug!(
        held_bytes = held.worker_total(),
        "AMQP guard: holding deliveries back until the worker settles some"
    );
    let mut releases = held.releases();
    while held.must_wait(channel) {
        tokio::select! {
            _ = releases.changed() => {}
            _ = tokio::time::sleep(HELD_HEARTBEAT) => {
                to.write_all(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]).await?;
                to.flush().await?;
            }
        }
    }
    Ok(())
}

/// Writes clean frames straight from the read buffer, after whatever the
/// guard wrote itself before them.
async fn write_run<W: AsyncWrite + Unpin>(to: &mut BufWriter<W>, run: &[u8]) -> io::Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    to.flush().await?;
    to.get_mut().write_all(run).await
}

/// Writes what lapin gets of a frame whose payload was `payload`; returns
/// the payload bytes written.
async fn write_verdict<W: AsyncWrite + Unpin>(
    to: &mut W,
    kind: u8,
    channel: u16,
    verdict: Verdict,
    payload: &[u8],
) -> io::Result<u64> {
    let written = match verdict {
        Verdict::Pass => payload,
        Verdict::Replace(ref new) => new,
        Verdict::Drop => return Ok(0),
    };
    write_frame(to, kind, channel, written).await?;
    Ok(written.len() as u64)
}

async fn write_frame<W: AsyncWrite + Unpin>(
    to: &mut W,
    kind: u8,
    channel: u16,
    payload: &[u8],
) -> io::Result<()> {
    let mut head = [0u8; 7];
    head[0] = kind;
    head[1..3].copy_from_slice(&channel.to_be_bytes());
    head[3..7].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    to.write_all(&head).await?;
    to.write_all(payload).await?;
    to.write_all(&[FRAME_END]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::basic::{parse_properties, AMQPProperties};
    use lapin::types::{AMQPValue, FieldTable};

    /// A content header payload: class, weight, body size, flags, fields.
    fn header(body_size: u64, flags: u16, fields: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&CLASS_BASIC.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&body_size.to_be_bytes());
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(fields);
        p
    }

    fn nested_table(depth: usize) -> Vec<u8> {
        let mut t = 0u32.to_be_bytes().to_vec();
        for _ in 0..depth {
            let mut entry = vec![1, b'a', b'F'];
            entry.extend_from_slice(&t);
            t = (entry.len() as u32).to_be_bytes().to_vec();
            t.extend_from_slice(&entry);
        }
        t
    }

    fn lapin_reads(payload: &[u8]) -> AMQPProperties {
        let (_, props) = parse_properties(&payload[12..]).expect("lapin parses it");
        props
    }

    fn marker(props: &AMQPProperties) -> String {
        match props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(UNREADABLE_HEADER))
        {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("no marker: {other:?}"),
        }
    }

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 100,
            max_header_bytes: 16 * 1024,
        }
    }

    fn filter() -> Filter {
        Filter::new(limits())
    }

    /// A filter on a connection whose frame_max is `frame_max`.
    fn filter_on(frame_max: u32, limits: Limits) -> Filter {
        let mut f = Filter::new(limits);
        let mut tune = vec![0, 10, 0, 30, 0, 0];
        tune.extend_from_slice(&frame_max.to_be_bytes());
        tune.extend_from_slice(&[0, 60]);
        assert!(matches!(f.frame(FRAME_METHOD, 0, &tune), Verdict::Pass));
        assert_eq!(f.frame_max(), frame_max);
        f
    }

    /// A table holding `entries` of what `entry` encodes, under one-letter keys.
    fn table_of(entries: usize, entry: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for _ in 0..entries {
            body.extend_from_slice(entry);
        }
        let mut t = (body.len() as u32).to_be_bytes().to_vec();
        t.extend_from_slice(&body);
        t
    }

    /// An entry `k` whose value is an empty array `levels` arrays down.
    fn deep_empty_array(levels: usize) -> Vec<u8> {
        let mut v = vec![b'A', 0, 0, 0, 0];
        for _ in 1..levels {
            let mut outer = vec![b'A'];
            outer.extend_from_slice(&(v.len() as u32).to_be_bytes());
            outer.extend_from_slice(&v);
            v = outer;
        }
        let mut entry = vec![1, b'k'];
        entry.extend_from_slice(&v);
        entry
    }

    fn rewritten(v: Verdict, input: &[u8]) -> Vec<u8> {
        match v {
            Verdict::Pass => input.to_vec(),
            Verdict::Replace(out) => out,
            Verdict::Drop => panic!("a content header is never dropped"),
        }
    }

    #[test]
    fn a_clean_header_passes_untouched() {
        let mut fields = vec![16];
        fields.extend_from_slice(b"application/json");
        assert!(matches!(
            filter().content_header(1, &header(10, 1 << 15, &fields)),
            Verdict::Pass
        ));
    }

    #[test]
    fn a_header_nested_1200_levels_is_cut_to_the_limit_and_flagged() {
        let payload = header(2, 1 << 13, &nested_table(1200));
        let Verdict::Replace(out) = filter().content_header(1, &payload) else {
            panic!("not rewritten");
        };
        let props = lapin_reads(&out);
        assert!(
            marker(&props).contains("deeper than 16"),
            "{}",
            marker(&props)
        );
        let mut depth = 0;
        let mut t: FieldTable = props.headers().clone().expect("headers");
        while let Some(AMQPValue::FieldTable(inner)) = t.inner().get("a").cloned() {
            depth += 1;
            t = inner;
        }
        assert_eq!(depth, MAX_HEADER_DEPTH);
    }

    #[test]
    fn header_keys_and_properties_that_are_not_utf8_read_as_question_marks() {
        let mut fields = vec![2, 0xff, 0xfe];
        let mut table = vec![2, 0xff, 0xfe, b't', 1];
        let mut t = (table.len() as u32).to_be_bytes().to_vec();
        t.append(&mut table);
        fields.extend_from_slice(&t);
        let payload = header(2, (1 << 15) | (1 << 13), &fields);
        let Verdict::Replace(out) = filter().content_header(1, &payload) else {
            panic!("not rewritten");
        };
        let props = lapin_reads(&out);
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("??")
        );
        let headers = props.headers().clone().expect("headers");
        assert_eq!(headers.inner().get("??"), Some(&AMQPValue::Boolean(true)));
        let m = marker(&props);
        assert!(m.contains(r#"content_type "\xff\xfe" is not UTF-8"#), "{m}");
        assert!(m.contains("header key"), "{m}");
    }

    #[test]
    fn a_routing_key_that_is_not_utf8_is_rewritten_and_told_in_the_header() {
        let mut deliver = Vec::new();
        deliver.extend_from_slice(&60u16.to_be_bytes());
        deliver.extend_from_slice(&60u16.to_be_bytes());
        put_short_str(&mut deliver, b"tag");
        deliver.extend_from_slice(&7u64.to_be_bytes());
        deliver.push(0);
        put_short_str(&mut deliver, b"ex");
        deliver.extend_from_slice(&[8, b'e', b'v', b'e', b'n', b't', b'.', 0xff, 0xfe]);
        let mut f = filter();
        let Verdict::Replace(out) = f.method(1, &deliver) else {
            panic!("not rewritten");
        };
        assert!(out.ends_with(b"event.??"));
        assert_eq!(out.len(), deliver.len());
        let Verdict::Replace(h) = f.content_header(1, &header(2, 0, &[])) else {
            panic!("the content header does not tell");
        };
        assert!(marker(&lapin_reads(&h)).contains("routing key"));
        // The next message on the channel is clean again.
        assert!(matches!(
            f.content_header(1, &header(2, 0, &[])),
            Verdict::Pass
        ));
    }

    #[test]
    fn an_oversized_body_is_cut_to_the_excerpt_across_frames() {
        let mut f = Filter::new(Limits {
            max_body_bytes: 10,
            ..limits()
        });
        let total = BODY_EXCERPT_BYTES as u64 + 5000;
        let Verdict::Replace(h) = f.content_header(3, &header(total, 0, &[])) else {
            panic!("not rewritten");
        };
        assert_eq!(&h[4..12], &(BODY_EXCERPT_BYTES as u64).to_be_bytes());
        assert!(marker(&lapin_reads(&h)).contains("exceeds RELAY_MAX_BODY_BYTES (10)"));
        let frame = vec![b'x'; 3000];
        assert!(matches!(f.body(3, &frame), Verdict::Pass));
        match f.body(3, &frame) {
            Verdict::Replace(p) => assert_eq!(p.len(), BODY_EXCERPT_BYTES - 3000),
            _ => panic!("second frame not cut"),
        }
        assert!(matches!(
            f.body(3, &vec![b'x'; total as usize - 6000]),
            Verdict::Drop
        ));
        // The cut is over: the next body on the channel passes.
        assert!(matches!(f.body(3, b"{}"), Verdict::Pass));
    }

    #[test]
    fn an_unknown_field_type_drops_the_table_but_keeps_the_message() {
        let table = [0, 0, 0, 3, 1, b'k', b'Z'];
        let Verdict::Replace(out) = filter().content_header(1, &header(2, 1 << 13, &table)) else {
            panic!("not rewritten");
        };
        assert!(marker(&lapin_reads(&out)).contains("unknown"));
    }

    #[test]
    fn thousands_of_empty_arrays_sixteen_levels_down_shrink_instead_of_growing() {
        // About 30 KB, which the old rewrite turned into 186 KB.
        let mut f = filter_on(
            131_072,
            Limits {
                max_header_bytes: 64 * 1024,
                ..limits()
            },
        );
        let table = table_of(400, &deep_empty_array(17));
        let payload = header(2, 1 << 13, &table);
        let out = rewritten(f.content_header(1, &payload), &payload);
        assert!(
            out.len() <= payload.len(),
            "{} > {}",
            out.len(),
            payload.len()
        );
        let m = marker(&lapin_reads(&out));
        assert!(m.contains("deeper than 16") && m.contains("void"), "{m}");
    }

    #[test]
    fn a_rewrite_that_would_pass_frame_max_keeps_only_the_marker() {
        // Non-UTF-8 keys fill a header near an 8 KiB frame_max: the marker
        // alone would push it over.
        let mut f = filter_on(
            8192,
            Limits {
                max_header_bytes: 64 * 1024,
                ..limits()
            },
        );
        let table = table_of(1620, &[3, b'k', 0xff, b'x', b'V']);
        let mut fields = vec![16];
        fields.extend_from_slice(b"application/json");
        fields.extend_from_slice(&table);
        let payload = header(2, (1 << 15) | (1 << 13), &fields);
        assert!(payload.len() + 8 <= 8192 && payload.len() + 8 > 8192 - 200);
        let out = rewritten(f.content_header(1, &payload), &payload);
        assert!(out.len() + 8 <= 8192, "a frame of {} bytes", out.len() + 8);
        let props = lapin_reads(&out);
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json"),
            "the other properties are kept"
        );
        let headers = props.headers().clone().expect("headers");
        assert_eq!(headers.inner().len(), 1, "only the marker is left");
        let m = marker(&props);
        assert!(m.contains("did not fit frame_max (8192)"), "{m}");
        assert!(m.contains("more problems"), "counted, not listed: {m}");
    }

    #[test]
    fn problems_are_counted_so_many_cost_no_more_than_their_bytes() {
        // 13,000 non-UTF-8 keys and 12,000 values nested too deep.
        let mut body = Vec::new();
        for _ in 0..13_000 {
            body.extend_from_slice(&[1, 0xff, b'V']);
        }
        let deep = deep_empty_array(17);
        let mut deeps = Vec::new();
        for _ in 0..12_000 {
            deeps.extend_from_slice(&deep);
        }
        body.extend_from_slice(&deeps[..deeps.len().min(90_000)]);
        let mut table = (body.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&body);
        let mut f = filter_on(
            1 << 20,
            Limits {
                max_header_bytes: 1 << 20,
                ..limits()
            },
        );
        let payload = header(2, 1 << 13, &table);
        let started = std::time::Instant::now();
        let out = rewritten(f.content_header(1, &payload), &payload);
        let m = marker(&lapin_reads(&out));
        assert!(m.len() <= MAX_MARKER_BYTES, "{}", m.len());
        assert!(m.contains("more problems"), "{m}");
        // Not a timed assertion of speed: a quadratic walk of this input
        // takes minutes, a linear one milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn a_header_table_over_the_cap_is_dropped_with_a_summary_and_is_too_large() {
        let limits = Limits {
            max_header_bytes: 1024,
            ..limits()
        };
        let big = table_of(300, &[1, b'a', b'I', 0, 0, 0, 1]);
        let payload = header(2, 1 << 13, &big);
        let out = rewritten(Filter::new(limits).content_header(1, &payload), &payload);
        let props = lapin_reads(&out);
        assert_eq!(props.headers().clone().expect("marker").inner().len(), 1);
        let m = marker(&props);
        assert!(too_large(&m), "{m}");
        assert!(
            m.contains("300 entries at the top") && m.contains(r#"["a", "a""#),
            "{m}"
        );

        // Under the bytes, over the entries: 1024 / 16 = 64 voids allowed.
        let many = table_of(100, &[1, b'v', b'V']);
        let payload = header(2, 1 << 13, &many);
        let m = marker(&lapin_reads(&rewritten(
            Filter::new(limits).content_header(1, &payload),
            &payload,
        )));
        assert!(too_large(&m) && m.contains("more than 64 entries"), "{m}");
        let few = table_of(60, &[1, b'v', b'V']);
        assert!(matches!(
            Filter::new(limits).content_header(1, &header(2, 1 << 13, &few)),
            Verdict::Pass
        ));
    }

    #[tokio::test]
    async fn the_loopback_hop_is_the_workers_alone() {
        // Another process that reaches the port first is dropped; the
        // worker's own connection is the one taken.
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut rogue = tokio::net::TcpStream::connect(addr).await.expect("rogue");
        let ours = tokio::net::TcpStream::connect(addr).await.expect("ours");
        let taken = accept_only(&listener, ours.local_addr().expect("local"))
            .await
            .expect("accepted");
        assert_eq!(
            taken.peer_addr().expect("peer"),
            ours.local_addr().expect("local")
        );
        let mut buf = [0u8; 1];
        assert_eq!(
            rogue.read(&mut buf).await.expect("read"),
            0,
            "closed on the rogue"
        );

        // Once the guard runs, its port takes no one.
        let (upstream, _broker) = tokio::io::duplex(64);
        let lapin_end = spawn(upstream, limits(), None).await.expect("guard");
        let port = lapin_end.peer_addr().expect("the guard's end");
        assert!(
            tokio::net::TcpStream::connect(port).await.is_err(),
            "the listener is closed"
        );
    }

    mod frames {
        use super::*;
        use proptest::prelude::*;

        /// Any typed value, bad strings, unknown tags and deep nesting
        /// included, encoded as on the wire.
        fn value() -> impl Strategy<Value = Vec<u8>> {
            let leaf = prop_oneof![
                Just(vec![b'V']),
                any::<bool>().prop_map(|b| vec![b't', u8::from(b)]),
                any::<i32>().prop_map(|n| {
                    let mut v = vec![b'I'];
                    v.extend_from_slice(&n.to_be_bytes());
                    v
                }),
                proptest::collection::vec(any::<u8>(), 0..40).prop_map(|s| {
                    let mut v = vec![b'S'];
                    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    v.extend_from_slice(&s);
                    v
                }),
                any::<u8>().prop_map(|t| vec![t]),
            ];
            leaf.prop_recursive(24, 400, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(
                        (proptest::collection::vec(any::<u8>(), 0..6), inner.clone()),
                        0..6
                    )
                    .prop_map(|entries| {
                        let mut body = Vec::new();
                        for (key, value) in entries {
                            body.push(key.len() as u8);
                            body.extend_from_slice(&key);
                            body.extend_from_slice(&value);
                        }
                        let mut v = vec![b'F'];
                        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        v.extend_from_slice(&body);
                        v
                    }),
                    proptest::collection::vec(inner, 0..6).prop_map(|values| {
                        let body: Vec<u8> = values.concat();
                        let mut v = vec![b'A'];
                        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        v.extend_from_slice(&body);
                        v
                    }),
                ]
            })
        }

        /// A content header: maybe a content type (any bytes), maybe a
        /// header table of any entries, any body size.
        fn content_header() -> impl Strategy<Value = Vec<u8>> {
            (
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..255)),
                proptest::option::of(proptest::collection::vec(
                    (proptest::collection::vec(any::<u8>(), 0..255), value()),
                    0..40,
                )),
                0u64..200_000,
            )
                .prop_map(|(content_type, headers, body_size)| {
                    let mut flags = 0u16;
                    let mut fields = Vec::new();
                    if let Some(ct) = content_type {
                        flags |= 1 << 15;
                        fields.push(ct.len() as u8);
                        fields.extend_from_slice(&ct);
                    }
                    if let Some(entries) = headers {
                        flags |= 1 << 13;
                        let mut body = Vec::new();
                        for (key, value) in entries {
                            body.push(key.len() as u8);
                            body.extend_from_slice(&key);
                            body.extend_from_slice(&value);
                        }
                        fields.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        fields.extend_from_slice(&body);
                    }
                    header(body_size, flags, &fields)
                })
        }

        fn deliver(routing_key: &[u8]) -> Vec<u8> {
            let mut m = vec![0, 60, 0, 60];
            put_raw_short_str(&mut m, b"ctag");
            m.extend_from_slice(&7u64.to_be_bytes());
            m.push(0);
            put_raw_short_str(&mut m, b"ex");
            put_raw_short_str(&mut m, routing_key);
            m
        }

        fn put_raw_short_str(out: &mut Vec<u8>, s: &[u8]) {
            out.push(s.len() as u8);
            out.extend_from_slice(s);
        }

        /// Runs frames through the guard's pump as bytes on a socket and
        /// returns the frames lapin would read.
        fn pump(frame_max: u32, frames: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
            let mut input = Vec::new();
            let mut tune = vec![0, 10, 0, 30, 0, 0];
            tune.extend_from_slice(&frame_max.to_be_bytes());
            tune.extend_from_slice(&[0, 60]);
            for (kind, channel, payload) in std::iter::once((FRAME_METHOD, 0u16, &tune))
                .chain(frames.iter().map(|(k, p)| (*k, 1u16, p)))
            {
                input.push(kind);
                input.extend_from_slice(&channel.to_be_bytes());
                input.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                input.extend_from_slice(payload);
                input.push(FRAME_END);
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let mut output = Vec::new();
            runtime
                .block_on(Filter::new(limits()).pump(&input[..], &mut output))
                .expect("pump");
            let mut frames = Vec::new();
            let mut at = 0;
            while at < output.len() {
                let kind = output[at];
                let size = be_u32(&output, at + 3).expect("size") as usize;
                assert_eq!(output[at + 7 + size], FRAME_END, "frame end");
                frames.push((kind, output[at + 7..at + 7 + size].to_vec()));
                at += 8 + size;
            }
            frames.remove(0);
            frames
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn the_check_without_copies_sees_what_the_rewrite_sees(payload in content_header()) {
                // A header the check calls clean passes as it came, so it
                // must find the problems and count the entries the
                // rewriting walk does, and a clean rewrite must be the
                // header itself.
                let flags = be_u16(&payload, 12).expect("flags");
                let (mut seen, mut told) = (Problems::default(), Problems::default());
                let checked = Properties::<Discard>::parse(flags, &payload[14..], &limits(), &mut seen);
                let built = Properties::<Vec<u8>>::parse(flags, &payload[14..], &limits(), &mut told);
                prop_assert_eq!(seen.render(), told.render());
                prop_assert_eq!(checked.map(|p| p.entries), built.as_ref().map(|p| p.entries));
                if let (Some(built), true) = (built, told.is_empty()) {
                    let mut rewrite = Vec::new();
                    for (_, bytes) in &built.fields {
                        rewrite.extend_from_slice(bytes);
                    }
                    if let Some(headers) = &built.headers {
                        rewrite.extend_from_slice(headers);
                    }
                    prop_assert_eq!(rewrite, payload[14..].to_vec());
                }
            }

            #[test]
            fn whatever_arrives_lapin_can_read_what_the_guard_sends_within_frame_max(
                headers in proptest::collection::vec(content_header(), 1..4),
                keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..255), 1..4),
                small in any::<bool>(),
            ) {
                let frame_max: u32 = if small { 8192 } else { 131_072 };
                let mut frames = Vec::new();
                for (payload, key) in headers.iter().zip(keys.iter().cycle()) {
                    // The broker never sends a frame over frame_max itself.
                    if payload.len() + 8 > frame_max as usize {
                        continue;
                    }
                    frames.push((FRAME_METHOD, deliver(key)));
                    frames.push((FRAME_HEADER, payload.clone()));
                }
                for (kind, payload) in pump(frame_max, &frames) {
                    prop_assert!(payload.len() + 8 <= frame_max as usize, "a frame of {} bytes", payload.len() + 8);
                    match kind {
                        FRAME_METHOD => {
                            let parsed = lapin::protocol::parse_class(&payload[..]);
                            prop_assert!(parsed.is_ok(), "lapin cannot read the method: {:?}", parsed.err());
                        }
                        FRAME_HEADER => {
                            let parsed = parse_properties(&payload[12..]);
                            prop_assert!(parsed.is_ok(), "lapin cannot read the header: {:?}", parsed.err());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
