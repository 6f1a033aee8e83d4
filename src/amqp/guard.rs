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
//! for each bad byte, tables deeper than [`MAX_HEADER_DEPTH`] lose what lies
//! below, an unparseable header table is dropped, and a body over the limit
//! is cut to an excerpt of [`BODY_EXCERPT_BYTES`] so that memory stays
//! bounded whatever a producer sends. Every rewritten message carries
//! [`UNREADABLE_HEADER`] naming what was wrong, and the relay dead-letters
//! it with that reason (and acks it), so the good intents behind it flow on
//! and an operator finds the poison in the dead-letter store.
//!
//! It is a loopback TCP hop that lapin connects to, because lapin 2 reads
//! its socket itself and offers no hook between socket and parser. What the
//! client sends passes through untouched; so do all frames but
//! `basic.deliver`, `basic.get-ok`, `basic.return`, content headers and the
//! bodies of cut messages. The alternatives weighed: a bigger stack for
//! lapin's thread still aborts at some depth and leaves the UTF-8 stall;
//! RabbitMQ's `x-delivery-limit` counts the innocent messages of the same
//! prefetch window on every reconnect too, and would dead-letter them with
//! the poison; a patched lapin would be a fork to carry.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;

/// The header the guard adds to a message it had to rewrite; its value
/// says what was wrong. The relay dead-letters any message carrying it.
pub const UNREADABLE_HEADER: &str = "x-pusher-relay-unreadable";

/// How deep header tables and arrays may nest. Intents need none; 16 is far
/// beyond any real use and keeps the stored headers readable as JSON.
pub const MAX_HEADER_DEPTH: usize = 16;

/// How much of an oversized body is kept for the dead letter.
pub const BODY_EXCERPT_BYTES: usize = 4096;

/// Names the cut of an oversized body in the marker; see [`body_was_cut`].
const BODY_CUT: &str = "exceeds RELAY_MAX_BODY_BYTES";

/// Whether the marker's problems include a cut body (the message is then
/// too large rather than malformed).
pub fn body_was_cut(problems: &str) -> bool {
    problems.contains(BODY_CUT)
}

/// A frame larger than this is not from RabbitMQ (its `frame_max` is at
/// most 128 KiB by default; operators rarely raise it past 1 MiB).
const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// How long lapin has to connect to the guard's loopback port.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_END: u8 = 0xCE;
const CLASS_BASIC: u16 = 60;

/// What the guard enforces beyond well-formedness.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A body larger than this is cut to [`BODY_EXCERPT_BYTES`] and flagged.
    pub max_body_bytes: u64,
}

/// Guards `upstream` (a connection to the broker, before the AMQP
/// handshake) and returns the loopback address lapin should connect to.
/// The guard ends when either side closes.
pub async fn spawn<S>(upstream: S, limits: Limits) -> io::Result<SocketAddr>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let client = match tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()).await {
            Ok(Ok((client, _))) => client,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "AMQP guard: accepting lapin's connection failed");
                return;
            }
            Err(_) => return,
        };
        drop(listener);
        let _ = client.set_nodelay(true);
        let (client_read, client_write) = tokio::io::split(client);
        let (broker_read, broker_write) = tokio::io::split(upstream);
        let mut filter = Filter::new(limits);
        tokio::select! {
            r = forward(client_read, broker_write) => {
                if let Err(e) = r { tracing::debug!(error = %e, "AMQP guard: client side ended"); }
            }
            r = filter.pump(broker_read, client_write) => {
                if let Err(e) = r { tracing::debug!(error = %e, "AMQP guard: broker side ended"); }
            }
        }
    });
    Ok(addr)
}

async fn forward<R, W>(mut from: R, mut to: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::io::copy(&mut from, &mut to).await?;
    to.shutdown().await
}

/// The per-connection state: what each channel's next frames need.
struct Filter {
    limits: Limits,
    channels: HashMap<u16, ChannelState>,
}

#[derive(Default)]
struct ChannelState {
    /// Problems found in the method frame, told in the content header.
    problems: Vec<String>,
    /// Set while the body of a cut message is arriving.
    cut: Option<BodyCut>,
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
        }
    }

    async fn pump<R, W>(&mut self, from: R, to: W) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut from = BufReader::with_capacity(64 * 1024, from);
        let mut to = BufWriter::with_capacity(64 * 1024, to);
        // One buffer for every frame: most are a few hundred bytes, and a
        // fresh allocation each would churn the allocator at 100,000/s.
        let mut payload = Vec::new();
        loop {
            let mut head = [0u8; 7];
            match from.read_exact(&mut head[..1]).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    to.flush().await?;
                    return to.shutdown().await;
                }
                Err(e) => return Err(e),
            }
            if head[0] == b'A' {
                // "AMQP" and a version: the broker refuses ours and closes.
                to.write_all(&head[..1]).await?;
                tokio::io::copy(&mut from, &mut to).await?;
                to.flush().await?;
                return to.shutdown().await;
            }
            from.read_exact(&mut head[1..]).await?;
            let kind = head[0];
            let channel = u16::from_be_bytes([head[1], head[2]]);
            let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
            if size > MAX_FRAME_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame of {size} bytes from the broker"),
                ));
            }
            payload.resize(size as usize + 1, 0);
            from.read_exact(&mut payload).await?;
            payload.pop();
            match self.frame(kind, channel, &payload) {
                Verdict::Pass => write_frame(&mut to, kind, channel, &payload).await?,
                Verdict::Replace(new) => write_frame(&mut to, kind, channel, &new).await?,
                Verdict::Drop => {}
            }
            if from.buffer().is_empty() {
                to.flush().await?;
            }
        }
    }

    fn frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> Verdict {
        match kind {
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
        let mut out = payload[..4].to_vec();
        let mut at = 4;
        let mut problems = Vec::new();
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
                    copy_short_str(&mut out, s, what, &mut problems);
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
        let state = self.channels.entry(channel).or_default();
        let mut problems = std::mem::take(&mut state.problems);
        let (Some(class), Some(body_size), Some(flags)) = (
            be_u16(payload, 0),
            payload
                .get(4..12)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]))),
            be_u16(payload, 12),
        ) else {
            problems.push("content header is truncated".into());
            return Verdict::Replace(Properties::default().encode(CLASS_BASIC, 0, problems));
        };
        let mut kept_size = body_size;
        if body_size > self.limits.max_body_bytes {
            kept_size = body_size.min(BODY_EXCERPT_BYTES as u64);
            problems.push(format!(
                "body of {body_size} bytes {BODY_CUT} ({}); its first {kept_size} bytes are kept",
                self.limits.max_body_bytes
            ));
            state.cut = Some(BodyCut {
                remaining: body_size,
                keep: kept_size,
            });
        }
        let props = Properties::parse(flags, &payload[14..], &mut problems).unwrap_or_default();
        if problems.is_empty() {
            return Verdict::Pass;
        }
        Verdict::Replace(props.encode(class, kept_size, problems))
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

enum Verdict {
    Pass,
    Replace(Vec<u8>),
    Drop,
}

enum Field {
    Fixed(usize),
    Str(&'static str),
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

/// Content-header properties, in the order of their flag bits (15 down to
/// 2). Short strings are kept as bytes made UTF-8; the headers as an
/// encoded, bounded table.
#[derive(Default)]
struct Properties {
    fields: Vec<(u16, Vec<u8>)>,
    headers: Option<Vec<u8>>,
}

/// Each property: its flag bit and its kind.
const PROPERTIES: [(u16, Prop, &str); 14] = [
    (15, Prop::Str, "content_type"),
    (14, Prop::Str, "content_encoding"),
    (13, Prop::Table, "headers"),
    (12, Prop::Fixed(1), "delivery_mode"),
    (11, Prop::Fixed(1), "priority"),
    (10, Prop::Str, "correlation_id"),
    (9, Prop::Str, "reply_to"),
    (8, Prop::Str, "expiration"),
    (7, Prop::Str, "message_id"),
    (6, Prop::Fixed(8), "timestamp"),
    (5, Prop::Str, "type"),
    (4, Prop::Str, "user_id"),
    (3, Prop::Str, "app_id"),
    (2, Prop::Str, "cluster_id"),
];

#[derive(Clone, Copy)]
enum Prop {
    Str,
    Fixed(usize),
    Table,
}

impl Properties {
    /// Parses what follows the flags, noting each problem; `None` when the
    /// list cannot be parsed at all (then every property is dropped).
    fn parse(flags: u16, mut rest: &[u8], problems: &mut Vec<String>) -> Option<Properties> {
        if flags & 1 != 0 {
            problems.push("content header has more than 16 property flags".into());
            return None;
        }
        let mut props = Properties::default();
        for (bit, kind, name) in PROPERTIES {
            if flags & (1 << bit) == 0 {
                continue;
            }
            match kind {
                Prop::Str => {
                    let Some(s) = short_str(rest, 0) else {
                        problems.push(format!("property {name} is truncated"));
                        return None;
                    };
                    rest = &rest[1 + s.len()..];
                    let mut out = Vec::with_capacity(1 + s.len());
                    copy_short_str(&mut out, s, &format!("property {name}"), problems);
                    props.fields.push((bit, out));
                }
                Prop::Fixed(n) => {
                    let Some(bytes) = rest.get(..n) else {
                        problems.push(format!("property {name} is truncated"));
                        return None;
                    };
                    props.fields.push((bit, bytes.to_vec()));
                    rest = &rest[n..];
                }
                Prop::Table => {
                    let mut out = Vec::new();
                    match table(rest, 0, &mut out, problems) {
                        Some(used) => {
                            props.headers = Some(out);
                            rest = &rest[used..];
                        }
                        None => {
                            problems.push("headers table is malformed and was dropped".into());
                            return None;
                        }
                    }
                }
            }
        }
        Some(props)
    }

    /// The content header's payload, with the marker added to the headers.
    fn encode(self, class: u16, body_size: u64, problems: Vec<String>) -> Vec<u8> {
        let mut headers = self.headers.unwrap_or_else(|| 0u32.to_be_bytes().to_vec());
        append_marker(&mut headers, &problems.join("; "));
        let mut flags: u16 = 1 << 13;
        for (bit, _) in &self.fields {
            flags |= 1 << bit;
        }
        let mut out = Vec::with_capacity(14 + headers.len());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&body_size.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        let mut fields = self.fields.into_iter().peekable();
        for (bit, _, _) in PROPERTIES {
            if bit == 13 {
                out.extend_from_slice(&headers);
            } else if fields.peek().is_some_and(|(b, _)| *b == bit) {
                if let Some((_, bytes)) = fields.next() {
                    out.extend_from_slice(&bytes);
                }
            }
        }
        out
    }
}

/// Adds the marker entry to an encoded table (length prefix and entries).
fn append_marker(table: &mut Vec<u8>, reason: &str) {
    // A marker longer than this would only repeat itself; the cut keeps
    // the frame within any broker's frame_max.
    let reason = truncate_utf8(reason, 1024);
    let mut entry = Vec::new();
    put_short_str(&mut entry, UNREADABLE_HEADER.as_bytes());
    entry.push(b'S');
    entry.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    entry.extend_from_slice(reason.as_bytes());
    let len = u32::from_be_bytes([table[0], table[1], table[2], table[3]]) + entry.len() as u32;
    table[..4].copy_from_slice(&len.to_be_bytes());
    table.extend_from_slice(&entry);
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Copies the table at the start of `input` into `out`, bounded and made
/// readable; returns the bytes of `input` it took, or `None` when it is
/// malformed or uses a field type lapin does not know.
fn table(
    input: &[u8],
    depth: usize,
    out: &mut Vec<u8>,
    problems: &mut Vec<String>,
) -> Option<usize> {
    sized(input, out, |body, at, out| {
        let key = short_str(body, at)?;
        copy_short_str(out, key, "header key", problems);
        let used = value(&body[at + 1 + key.len()..], depth, out, problems)?;
        Some(1 + key.len() + used)
    })
}

fn array(
    input: &[u8],
    depth: usize,
    out: &mut Vec<u8>,
    problems: &mut Vec<String>,
) -> Option<usize> {
    sized(input, out, |body, at, out| {
        value(&body[at..], depth, out, problems)
    })
}

/// A length-prefixed run of entries (a table's or an array's): copies each
/// with `entry` (which returns the input bytes it took) and writes the new
/// length; returns the input bytes taken, prefix included.
fn sized(
    input: &[u8],
    out: &mut Vec<u8>,
    mut entry: impl FnMut(&[u8], usize, &mut Vec<u8>) -> Option<usize>,
) -> Option<usize> {
    let len = be_u32(input, 0)? as usize;
    let body = input.get(4..4 + len)?;
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut at = 0;
    while at < body.len() {
        at += entry(body, at, out)?;
    }
    let written = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&written.to_be_bytes());
    Some(4 + len)
}

/// One typed field value (the type tag and what follows), as lapin reads
/// them (RabbitMQ's tags: `s` is a short int, `l` and `L` 64-bit ints).
fn value(
    input: &[u8],
    depth: usize,
    out: &mut Vec<u8>,
    problems: &mut Vec<String>,
) -> Option<usize> {
    let tag = *input.first()?;
    let rest = &input[1..];
    let fixed = match tag {
        b't' | b'b' | b'B' => Some(1),
        b's' | b'u' | b'U' => Some(2),
        b'I' | b'i' | b'f' => Some(4),
        b'l' | b'L' | b'T' | b'd' => Some(8),
        b'D' => Some(5),
        b'V' => Some(0),
        b'S' | b'x' => Some(4 + be_u32(rest, 0)? as usize),
        b'F' | b'A' => None,
        other => {
            problems.push(format!("header field type {:?} is unknown", other as char));
            return None;
        }
    };
    if let Some(n) = fixed {
        out.push(tag);
        out.extend_from_slice(rest.get(..n)?);
        return Some(1 + n);
    }
    if depth + 1 > MAX_HEADER_DEPTH {
        let len = be_u32(rest, 0)? as usize;
        rest.get(..4 + len)?;
        if !problems.iter().any(|p| p.starts_with("headers nest")) {
            problems.push(format!(
                "headers nest deeper than {MAX_HEADER_DEPTH} levels; what lies below is removed"
            ));
        }
        let note = b"(removed: nested too deep)";
        out.push(b'S');
        out.extend_from_slice(&(note.len() as u32).to_be_bytes());
        out.extend_from_slice(note);
        return Some(1 + 4 + len);
    }
    out.push(tag);
    let used = if tag == b'F' {
        table(rest, depth + 1, out, problems)?
    } else {
        array(rest, depth + 1, out, problems)?
    };
    Some(1 + used)
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn short_str(b: &[u8], at: usize) -> Option<&[u8]> {
    let len = *b.get(at)? as usize;
    b.get(at + 1..at + 1 + len)
}

/// [`put_short_str`], noting `what` (and its bytes, escaped) as a problem
/// when it is not UTF-8.
fn copy_short_str(out: &mut Vec<u8>, s: &[u8], what: &str, problems: &mut Vec<String>) {
    if std::str::from_utf8(s).is_err() {
        problems.push(format!("{what} \"{}\" is not UTF-8", s.escape_ascii()));
    }
    put_short_str(out, s);
}

/// Writes `s` as a short string, each byte that is not part of valid UTF-8
/// replaced by `?` (same length, so a 255-byte string still fits).
fn put_short_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    let mut rest = s;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.extend_from_slice(valid.as_bytes());
                return;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.extend_from_slice(&rest[..good]);
                let bad = e.error_len().unwrap_or(rest.len() - good);
                out.extend(std::iter::repeat(b'?').take(bad));
                rest = &rest[good + bad..];
            }
        }
    }
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

    fn filter() -> Filter {
        Filter::new(Limits {
            max_body_bytes: 100,
        })
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
        let mut f = Filter::new(Limits { max_body_bytes: 10 });
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
}
