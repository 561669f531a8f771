//! The relay tests' brokers and independent consumers: a throwaway NATS server or RabbitMQ
//! node (`pgbus-testing`), and what `nats-py` / `pika` read back from them.
//!
//! Where a broker or the Python clients are missing, a test prints one line and passes,
//! except under `CI=true`, where that is a failure (as for every tool in [`super::tools`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use pgbus_testing::{NatsServer, RabbitMqServer};
use serde::Deserialize;

use super::tools::{broker_python, missing, run_async, script};

/// A NATS server and the Python that reads it, or `None` (skipped).
pub async fn nats() -> Option<(NatsServer, PathBuf)> {
    if !NatsServer::is_installed() {
        missing("nats-server (apt-get install nats-server)");
        return None;
    }
    let python = broker_python()?;
    let server = NatsServer::start().await.expect("starting nats-server");
    Some((server, python))
}

/// A RabbitMQ node and the Python that reads it, or `None` (skipped).
pub async fn rabbitmq() -> Option<(RabbitMqServer, PathBuf)> {
    if !RabbitMqServer::is_installed() {
        missing("rabbitmq-server (apt-get install rabbitmq-server)");
        return None;
    }
    let python = broker_python()?;
    let server = RabbitMqServer::start()
        .await
        .expect("starting rabbitmq-server");
    Some((server, python))
}

/// One message as nats-py read it from a stream.
#[derive(Debug, Clone, Deserialize)]
pub struct NatsMessage {
    pub subject: String,
    pub headers: BTreeMap<String, String>,
    #[serde(deserialize_with = "base64")]
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
struct NatsRead {
    stream_messages: u64,
    messages: Vec<NatsMessage>,
}

/// Sets the subjects of the JetStream stream `stream` (nats-py).
pub async fn set_stream_subjects(python: &PathBuf, url: &str, stream: &str, subjects: &[&str]) {
    let mut c = Command::new(python);
    c.arg(script("nats_stream_subjects.py"))
        .args([url, stream])
        .args(subjects);
    run_async(c, String::new()).await;
}

/// Every message of `stream` (filtered by `subject`), read by nats-py; checks that it read
/// as many as the stream holds.
pub async fn read_stream(
    python: &PathBuf,
    url: &str,
    stream: &str,
    subject: &str,
) -> Vec<NatsMessage> {
    let mut c = Command::new(python);
    c.arg(script("nats_stream.py")).args([url, stream, subject]);
    let out = run_async(c, String::new()).await;
    let read: NatsRead = serde_json::from_str(&out).expect("nats_stream.py's JSON");
    assert_eq!(
        read.messages.len() as u64,
        read.stream_messages,
        "nats-py read the whole stream"
    );
    read.messages
}

/// One message as pika took it off a queue.
#[derive(Debug, Clone, Deserialize)]
pub struct AmqpMessage {
    pub routing_key: String,
    pub exchange: String,
    pub message_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    pub timestamp: Option<i64>,
    pub headers: BTreeMap<String, String>,
    #[serde(deserialize_with = "base64")]
    pub body: Vec<u8>,
}

/// Declares (with pika) a durable topic exchange and a durable queue bound to it.
pub async fn amqp_setup(python: &PathBuf, url: &str, exchange: &str, queue: &str, binding: &str) {
    let mut c = Command::new(python);
    c.arg(script("rabbitmq_queue.py"))
        .args(["setup", url, exchange, queue, binding]);
    run_async(c, String::new()).await;
}

/// Every message of `queue`, taken off it by pika.
pub async fn amqp_read(python: &PathBuf, url: &str, queue: &str) -> Vec<AmqpMessage> {
    let mut c = Command::new(python);
    c.arg(script("rabbitmq_queue.py"))
        .args(["read", url, queue]);
    let out = run_async(c, String::new()).await;
    serde_json::from_str(&out).expect("rabbitmq_queue.py's JSON")
}

fn base64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    decode_base64(&text).ok_or_else(|| serde::de::Error::custom("invalid base64"))
}

/// Standard base64 with padding (what Python's `b64encode` writes).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &b in bytes {
        acc = (acc << 6) | u32::from(value(b)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(decode_base64("").unwrap(), b"");
    assert_eq!(decode_base64("w6k=").unwrap(), "é".as_bytes());
}
