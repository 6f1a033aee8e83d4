//! The AMQP wire encoding the guard reads and rewrites: a content
//! header's properties, field tables and their values, walked with a depth
//! limit, written to an output that either keeps the bytes (a rewrite) or
//! only counts them (the check of a clean header, which copies nothing).
//! Pure byte work, so the property tests of [`super`] drive it directly.

use super::*;

pub(super) enum Verdict {
    Pass,
    Replace(Vec<u8>),
    Drop,
}

pub(super) enum Field {
    Fixed(usize),
    Str(&'static str),
}

/// Content-header properties, in the order of their flag bits (15 down to
/// 2). Short strings are kept as bytes made UTF-8; the headers as an
/// encoded, bounded table. With [`Discard`] for `O`, nothing is kept: the
/// walk only finds the problems and counts the entries.
#[derive(Default)]
pub(super) struct Properties<O = Vec<u8>> {
    pub(super) fields: Vec<(u16, O)>,
    pub(super) headers: Option<O>,
    /// Values in `headers`, nested ones included.
    pub(super) entries: usize,
}

/// Each property: its flag bit and its kind.
pub(super) const PROPERTIES: [(u16, Prop, &str); 14] = [
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
pub(super) enum Prop {
    Str,
    Fixed(usize),
    Table,
}

impl<O: Out + Default> Properties<O> {
    /// Parses what follows the flags, noting each problem; `None` when the
    /// list cannot be parsed at all (then every property is dropped).
    pub(super) fn parse(
        flags: u16,
        mut rest: &[u8],
        limits: &Limits,
        problems: &mut Problems,
    ) -> Option<Properties<O>> {
        if flags & 1 != 0 {
            problems.note(|| "content header has more than 16 property flags".into());
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
                        problems.note(|| format!("property {name} is truncated"));
                        return None;
                    };
                    rest = &rest[1 + s.len()..];
                    let mut out = O::with_capacity(1 + s.len());
                    copy_short_str(&mut out, s, format_args!("property {name}"), problems);
                    props.fields.push((bit, out));
                }
                Prop::Fixed(n) => {
                    let Some(bytes) = rest.get(..n) else {
                        problems.note(|| format!("property {name} is truncated"));
                        return None;
                    };
                    let mut out = O::with_capacity(n);
                    out.put(bytes);
                    props.fields.push((bit, out));
                    rest = &rest[n..];
                }
                Prop::Table => {
                    let len = be_u32(rest, 0)? as usize;
                    let Some(whole) = rest.get(..4 + len) else {
                        problems.note(|| "headers table is truncated and was dropped".into());
                        return None;
                    };
                    if len > limits.max_header_bytes as usize {
                        problems.note_size(format!(
                            "headers of {len} bytes {HEADERS_CUT} ({}) and were dropped: {}",
                            limits.max_header_bytes,
                            summary(whole)
                        ));
                        rest = &rest[4 + len..];
                        continue;
                    }
                    let mut out = O::with_capacity(whole.len());
                    let allowed =
                        (limits.max_header_bytes as usize / HEADER_BYTES_PER_ENTRY).max(1);
                    let mut walk = Walk {
                        problems,
                        entries_left: allowed,
                    };
                    match table(rest, 0, &mut out, &mut walk) {
                        Some(used) if walk.entries_left > 0 => {
                            props.entries = allowed - walk.entries_left;
                            props.headers = Some(out);
                            rest = &rest[used..];
                        }
                        Some(used) => {
                            problems.note_size(format!(
                                "headers with more than {} entries {HEADERS_CUT} ({}) and were dropped: {}",
                                limits.max_header_bytes as usize / HEADER_BYTES_PER_ENTRY,
                                limits.max_header_bytes,
                                summary(whole)
                            ));
                            rest = &rest[used..];
                        }
                        None => {
                            problems.note(|| "headers table is malformed and was dropped".into());
                            return None;
                        }
                    }
                }
            }
        }
        Some(props)
    }
}

impl Properties {
    /// The content header's payload, with the marker added to the headers.
    pub(super) fn encode(&self, class: u16, body_size: u64, problems: &Problems) -> Vec<u8> {
        let mut headers = self
            .headers
            .clone()
            .unwrap_or_else(|| 0u32.to_be_bytes().to_vec());
        append_marker(&mut headers, &problems.render());
        let mut flags: u16 = 1 << 13;
        for (bit, _) in &self.fields {
            flags |= 1 << bit;
        }
        let mut out = Vec::with_capacity(14 + headers.len());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&body_size.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        let mut fields = self.fields.iter().peekable();
        for (bit, _, _) in PROPERTIES {
            if bit == 13 {
                out.extend_from_slice(&headers);
            } else if fields.peek().is_some_and(|(b, _)| *b == bit) {
                if let Some((_, bytes)) = fields.next() {
                    out.extend_from_slice(bytes);
                }
            }
        }
        out
    }
}

/// Adds the marker entry to an encoded table (length prefix and entries).
pub(super) fn append_marker(table: &mut Vec<u8>, reason: &str) {
    // A marker longer than this would only repeat itself; the cut keeps
    // the frame within any broker's frame_max.
    let reason = truncate_utf8(reason, MAX_MARKER_BYTES);
    let mut entry = Vec::new();
    put_short_str(&mut entry, UNREADABLE_HEADER.as_bytes());
    entry.push(b'S');
    entry.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    entry.extend_from_slice(reason.as_bytes());
    let len = u32::from_be_bytes([table[0], table[1], table[2], table[3]]) + entry.len() as u32;
    table[..4].copy_from_slice(&len.to_be_bytes());
    table.extend_from_slice(&entry);
}

pub(super) fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A walk through one header table: its problems, and how many more
/// entries it may have.
pub(super) struct Walk<'a> {
    pub(super) problems: &'a mut Problems,
    pub(super) entries_left: usize,
}

/// Copies the table at the start of `input` into `out`, bounded and made
/// readable; returns the bytes of `input` it took, or `None` when it is
/// malformed or uses a field type lapin does not know.
pub(super) fn table(
    input: &[u8],
    depth: usize,
    out: &mut impl Out,
    walk: &mut Walk,
) -> Option<usize> {
    sized(input, out, |body, at, out| {
        let key = short_str(body, at)?;
        copy_short_str(out, key, format_args!("header key"), walk.problems);
        let used = value(&body[at + 1 + key.len()..], depth, out, walk)?;
        Some(1 + key.len() + used)
    })
}

pub(super) fn array(
    input: &[u8],
    depth: usize,
    out: &mut impl Out,
    walk: &mut Walk,
) -> Option<usize> {
    sized(input, out, |body, at, out| {
        value(&body[at..], depth, out, walk)
    })
}

/// A few words on a header table that was dropped: how many entries it has
/// at its top level and the first keys, for the dead letter.
pub(super) fn summary(table: &[u8]) -> String {
    let Some(body) = table.get(4..) else {
        return "unreadable".into();
    };
    let (mut at, mut entries, mut keys) = (0, 0usize, Vec::new());
    while at < body.len() {
        let Some(key) = short_str(body, at) else {
            break;
        };
        let Some(skip) = skip_value(&body[at + 1 + key.len()..]) else {
            break;
        };
        if keys.len() < 5 {
            keys.push(String::from_utf8_lossy(key).into_owned());
        }
        entries += 1;
        at += 1 + key.len() + skip;
    }
    format!("{entries} entries at the top, the first keys {keys:?}")
}

/// The bytes of one typed value, without reading into it.
pub(super) fn skip_value(input: &[u8]) -> Option<usize> {
    let n = match *input.first()? {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' | b'U' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'T' | b'd' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' | b'F' | b'A' => 4 + be_u32(input, 1)? as usize,
        _ => return None,
    };
    input.get(1 + n - 1)?;
    Some(1 + n)
}

/// A length-prefixed run of entries (a table's or an array's): copies each
/// with `entry` (which returns the input bytes it took) and writes the new
/// length; returns the input bytes taken, prefix included.
pub(super) fn sized<O: Out>(
    input: &[u8],
    out: &mut O,
    mut entry: impl FnMut(&[u8], usize, &mut O) -> Option<usize>,
) -> Option<usize> {
    let len = be_u32(input, 0)? as usize;
    let body = input.get(4..4 + len)?;
    let start = out.len();
    out.put(&[0; 4]);
    let mut at = 0;
    while at < body.len() {
        at += entry(body, at, out)?;
    }
    let written = (out.len() - start - 4) as u32;
    out.set(start, written.to_be_bytes());
    Some(4 + len)
}

/// One typed field value (the type tag and what follows), as lapin reads
/// them (RabbitMQ's tags: `s` is a short int, `l` and `L` 64-bit ints).
pub(super) fn value(
    input: &[u8],
    depth: usize,
    out: &mut impl Out,
    walk: &mut Walk,
) -> Option<usize> {
    walk.entries_left = walk.entries_left.saturating_sub(1);
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
            walk.problems
                .note(|| format!("header field type {:?} is unknown", other as char));
            return None;
        }
    };
    if let Some(n) = fixed {
        out.push(tag);
        out.put(rest.get(..n)?);
        return Some(1 + n);
    }
    if depth + 1 > MAX_HEADER_DEPTH {
        // A void, one byte, in place of the five or more of the table or
        // array: the rewrite never grows.
        let len = be_u32(rest, 0)? as usize;
        rest.get(..4 + len)?;
        walk.problems.nested = true;
        out.push(b'V');
        return Some(1 + 4 + len);
    }
    out.push(tag);
    let used = if tag == b'F' {
        table(rest, depth + 1, out, walk)?
    } else {
        array(rest, depth + 1, out, walk)?
    };
    Some(1 + used)
}

pub(super) fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

pub(super) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(super) fn short_str(b: &[u8], at: usize) -> Option<&[u8]> {
    let len = *b.get(at)? as usize;
    b.get(at + 1..at + 1 + len)
}

/// [`put_short_str`], noting `what` (and its bytes, escaped) as a problem
/// when it is not UTF-8.
pub(super) fn copy_short_str(
    out: &mut impl Out,
    s: &[u8],
    what: std::fmt::Arguments<'_>,
    problems: &mut Problems,
) {
    if std::str::from_utf8(s).is_err() {
        problems.note(|| format!("{what} \"{}\" is not UTF-8", s.escape_ascii()));
    }
    put_short_str(out, s);
}

/// Writes `s` as a short string, each byte that is not part of valid UTF-8
/// replaced by `?` (same length, so a 255-byte string still fits).
pub(super) fn put_short_str(out: &mut impl Out, s: &[u8]) {
    out.push(s.len() as u8);
    let mut rest = s;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.put(valid.as_bytes());
                return;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.put(&rest[..good]);
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for _ in 0..bad {
                    out.push(b'?');
                }
                rest = &rest[good + bad..];
            }
        }
    }
}

/// Whether every short string of a method's `layout` is UTF-8, which
/// [`Filter::method`] would then pass unchanged (as it does one too short
/// for its layout).
pub(super) fn strings_are_utf8(payload: &[u8], layout: &[Field]) -> bool {
    let mut at = 4;
    for field in layout {
        match field {
            Field::Fixed(n) => at += n,
            Field::Str(_) => {
                let Some(s) = short_str(payload, at) else {
                    return true;
                };
                if std::str::from_utf8(s).is_err() {
                    return false;
                }
                at += 1 + s.len();
            }
        }
    }
    true
}

/// Where a header walk writes its rewrite.
pub(super) trait Out {
    fn with_capacity(n: usize) -> Self;
    fn len(&self) -> usize;
    fn push(&mut self, b: u8);
    fn put(&mut self, b: &[u8]);
    /// Overwrites the four bytes at `at`, written before.
    fn set(&mut self, at: usize, b: [u8; 4]);
}

impl Out for Vec<u8> {
    fn with_capacity(n: usize) -> Self {
        Vec::with_capacity(n)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn push(&mut self, b: u8) {
        Vec::push(self, b)
    }

    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b)
    }

    fn set(&mut self, at: usize, b: [u8; 4]) {
        self[at..at + 4].copy_from_slice(&b)
    }
}

/// Counts what a walk would write and keeps none of it: the check of a
/// clean header, which passes as it came, copies nothing.
#[derive(Default)]
pub(super) struct Discard(usize);

impl Out for Discard {
    fn with_capacity(_: usize) -> Self {
        Discard(0)
    }

    fn len(&self) -> usize {
        self.0
    }

    fn push(&mut self, _: u8) {
        self.0 += 1;
    }

    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }

    fn set(&mut self, _: usize, _: [u8; 4]) {}
}

/// A frame's kind, channel and payload size, as its head gives them.
pub(super) type FrameHead = (u8, u16, usize);

/// The kind, channel and payload size of the frame `b` starts with, once
/// its seven bytes of head are there.
pub(super) fn frame_head(b: &[u8]) -> io::Result<Option<FrameHead>> {
    let Some(head) = b.get(..7) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if size > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {size} bytes from the broker"),
        ));
    }
    Ok(Some((
        head[0],
        u16::from_be_bytes([head[1], head[2]]),
        size as usize,
    )))
}
