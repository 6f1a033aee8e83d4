//! An AMQP 0-9-1 publisher written frame by frame, for hostile input that
//! lapin refuses to send: routing keys and header keys that are not UTF-8,
//! header tables nested thousands of levels deep, any property bytes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawPublisher {
    stream: TcpStream,
    frame_max: u32,
    published: u64,
}

/// One message as bytes on the wire.
pub struct RawMessage {
    pub routing_key: Vec<u8>,
    /// Property flags and the encoded properties after them.
    pub flags: u16,
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
}

impl RawPublisher {
    /// Connects as guest to the tests' broker, opens channel 1 in confirm mode.
    pub async fn connect() -> RawPublisher {
        let stream = TcpStream::connect(crate::common::amqp_addr())
            .await
            .expect("RabbitMQ");
        let mut p = RawPublisher {
            stream,
            frame_max: 4096,
            published: 0,
        };
        p.stream
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("header");
        p.expect_method(0, 10, 10).await;
        let mut start_ok = method(10, 11);
        start_ok.extend_from_slice(&0u32.to_be_bytes());
        short(&mut start_ok, b"PLAIN");
        long(&mut start_ok, b"\0guest\0guest");
        short(&mut start_ok, b"en_US");
        p.send(1, 0, &start_ok).await;
        let tune = p.expect_method(0, 10, 30).await;
        let frame_max = u32::from_be_bytes(tune[6..10].try_into().expect("frame_max"));
        p.frame_max = frame_max;
        let mut tune_ok = method(10, 31);
        tune_ok.extend_from_slice(&tune[4..6]);
        tune_ok.extend_from_slice(&frame_max.to_be_bytes());
        tune_ok.extend_from_slice(&0u16.to_be_bytes());
        p.send(1, 0, &tune_ok).await;
        let mut open = method(10, 40);
        short(&mut open, b"/");
        short(&mut open, b"");
        open.push(0);
        p.send(1, 0, &open).await;
        p.expect_method(0, 10, 41).await;
        let mut channel_open = method(20, 10);
        short(&mut channel_open, b"");
        p.send(1, 1, &channel_open).await;
        p.expect_method(1, 20, 11).await;
        let mut select = method(85, 10);
        select.push(0);
        p.send(1, 1, &select).await;
        p.expect_method(1, 85, 11).await;
        p
    }

    /// Publishes `msg` to `exchange` and waits for the broker's confirm.
    pub async fn publish(&mut self, exchange: &str, msg: &RawMessage) {
        let mut publish = method(60, 40);
        publish.extend_from_slice(&0u16.to_be_bytes());
        short(&mut publish, exchange.as_bytes());
        short(&mut publish, &msg.routing_key);
        publish.push(0);
        self.send(1, 1, &publish).await;
        let mut header = Vec::new();
        header.extend_from_slice(&60u16.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(msg.body.len() as u64).to_be_bytes());
        header.extend_from_slice(&msg.flags.to_be_bytes());
        header.extend_from_slice(&msg.properties);
        assert!(
            header.len() + 8 <= self.frame_max as usize,
            "a content header of {} bytes does not fit frame_max {}",
            header.len(),
            self.frame_max
        );
        self.send(2, 1, &header).await;
        for chunk in msg.body.chunks(self.frame_max as usize - 8) {
            self.send(3, 1, chunk).await;
        }
        self.published += 1;
        let ack = self.expect_method(1, 60, 80).await;
        let tag = u64::from_be_bytes(ack[4..12].try_into().expect("tag"));
        assert_eq!(tag, self.published, "confirm for the message just sent");
    }

    async fn send(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut frame = vec![kind];
        frame.extend_from_slice(&channel.to_be_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame.push(0xCE);
        self.stream.write_all(&frame).await.expect("send frame");
    }

    /// Reads frames until the method `class.method` on `channel`; panics on
    /// a close from the broker, with its reason.
    async fn expect_method(&mut self, channel: u16, class: u16, method_id: u16) -> Vec<u8> {
        loop {
            let mut head = [0u8; 7];
            self.stream.read_exact(&mut head).await.expect("frame");
            let size = u32::from_be_bytes(head[3..7].try_into().expect("size")) as usize;
            let mut payload = vec![0u8; size + 1];
            self.stream.read_exact(&mut payload).await.expect("payload");
            payload.pop();
            if head[0] != 1 {
                continue;
            }
            let got = (
                u16::from_be_bytes([head[1], head[2]]),
                u16::from_be_bytes([payload[0], payload[1]]),
                u16::from_be_bytes([payload[2], payload[3]]),
            );
            if matches!(got, (_, 10, 50) | (_, 20, 40)) {
                panic!(
                    "broker closed: {}",
                    String::from_utf8_lossy(&payload[7..7 + payload[6] as usize])
                );
            }
            if got == (channel, class, method_id) {
                return payload;
            }
        }
    }
}

fn method(class: u16, id: u16) -> Vec<u8> {
    let mut m = class.to_be_bytes().to_vec();
    m.extend_from_slice(&id.to_be_bytes());
    m
}

pub fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

pub fn long(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// An encoded field table of the given entries (key, type tag, value bytes).
pub fn table(entries: &[(&[u8], u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, tag, value) in entries {
        short(&mut body, key);
        body.push(*tag);
        body.extend_from_slice(value);
    }
    let mut t = (body.len() as u32).to_be_bytes().to_vec();
    t.extend_from_slice(&body);
    t
}

/// A table holding `{"a": {"a": ... {}}}`, `depth` levels deep.
pub fn nested_table(depth: usize) -> Vec<u8> {
    let mut t = table(&[]);
    for _ in 0..depth {
        t = table(&[(b"a", b'F', t)]);
    }
    t
}

/// Flag bit of the headers property.
pub const HEADERS: u16 = 1 << 13;
