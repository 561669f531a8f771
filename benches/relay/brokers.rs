//! The broker scenarios: a throwaway broker, the relay subscription, and the check that the
//! broker holds every event afterwards.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use pgbus::relay::nats::NatsRelay;
use pgbus::relay::rabbitmq::{ExchangeKind, RabbitMqRelay};
use pgbus::relay::{Destinations, Format};
use pgbus_testing::{NatsServer, RabbitMqServer};
use serde_json::Value;

use pgbus::Subscription;

use std::sync::Arc;
use std::time::Instant;

use pgbus::EventEnvelope;

use super::common::{Counter, EVENT_TYPE, Res};
use super::{Counted, SUB, Settings, counted_in_flight, drain, in_flight_mean, sample_in_flight};

fn version(cmd: &str, arg: &str) -> String {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub async fn nats(server: &super::common::Server, settings: &Settings) -> Res<Value> {
    let nats = NatsServer::start().await?;
    let relay = NatsRelay::builder(nats.url())
        .destinations(Destinations::prefix("bench."))
        .stream("BENCH")
        .create_stream(["bench.>"])
        .connect()
        .await?;
    let broker = format!(
        "{} -js, file storage, 127.0.0.1",
        version("nats-server", "--version")
    );
    let counter = Counter::new(settings.n);
    let subscription =
        Subscription::raw(SUB, [EVENT_TYPE], Counted(relay.clone(), counter.clone()));
    let mut scenario = drain(
        server,
        settings,
        "nats",
        subscription,
        &counter,
        Some(broker),
    )
    .await?;
    let mut stream = relay.jetstream().get_stream("BENCH").await?;
    let stored = stream.info().await?.state.messages;
    if stored != settings.n as u64 {
        return Err(format!("the stream holds {stored} messages, not {}", settings.n).into());
    }
    scenario["broker_messages"] = stored.into();
    nats.stop();
    Ok(scenario)
}

/// A throwaway RabbitMQ node with the bench's topology: durable topic exchange `bench`,
/// durable queue `bench` bound with `#`; a connection and channel of its own for the check.
struct Rabbit {
    server: RabbitMqServer,
    connection: lapin::Connection,
    channel: lapin::Channel,
    relay: RabbitMqRelay,
}

impl Rabbit {
    async fn start(settings: &Settings, format: Format) -> Res<Rabbit> {
        let server = RabbitMqServer::start().await?;
        let url = server.url();
        let connection = lapin::Connection::connect(&url, Default::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                "bench".into(),
                ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let mut arguments = FieldTable::default();
        if let Some(version) = settings.queue_version {
            arguments.insert("x-queue-version".into(), AMQPValue::LongInt(version));
        }
        if settings.lazy_queue {
            arguments.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
        }
        channel
            .queue_declare("bench".into(), durable, arguments)
            .await?;
        channel
            .queue_bind(
                "bench".into(),
                "bench".into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let relay = RabbitMqRelay::builder(&url, "bench")
            .channels(settings.channels)
            .format(format)
            .build()?;
        Ok(Rabbit {
            server,
            connection,
            channel,
            relay,
        })
    }

    fn describe(settings: &Settings, format: Format) -> String {
        let mut queue = match settings.queue_version {
            Some(v) => format!("one durable classic queue (version {v})"),
            None => "one durable classic queue".to_owned(),
        };
        if settings.lazy_queue {
            queue.push_str(", lazy");
        }
        let mode = match format {
            Format::Structured => "structured CloudEvents (one JSON body, no headers)",
            _ => "binary CloudEvents (ce-* headers)",
        };
        format!(
            "rabbitmq-server {}, persistent messages, {mode}, {queue}, 127.0.0.1",
            rabbitmq_version()
        )
    }

    /// Checks that the queue holds at least `n` messages, and stops the node.
    async fn check_and_stop(self, n: usize, scenario: &mut Value) -> Res<()> {
        let passive = QueueDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        };
        let queue = self
            .channel
            .queue_declare("bench".into(), passive, FieldTable::default())
            .await?;
        let stored = queue.message_count();
        if (stored as usize) < n {
            return Err(format!("the queue holds {stored} messages, fewer than {n}").into());
        }
        scenario["broker_messages"] = stored.into();
        let _ = self.connection.close(200, "bench done".into()).await;
        self.server.stop();
        Ok(())
    }
}

/// The Debian package's version, if dpkg knows it.
fn rabbitmq_version() -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "rabbitmq-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "(Debian package)".to_owned())
}

/// The RabbitMQ relay subscription in `format`, reported as scenario `id`.
pub async fn rabbitmq(
    server: &super::common::Server,
    settings: &Settings,
    format: Format,
    id: &str,
) -> Res<Value> {
    let rabbit = Rabbit::start(settings, format).await?;
    let counter = Counter::new(settings.n);
    let handler = Counted(rabbit.relay.clone(), counter.clone());
    let subscription = Subscription::raw(SUB, [EVENT_TYPE], handler);
    let broker = Rabbit::describe(settings, format);
    let mut scenario = drain(server, settings, id, subscription, &counter, Some(broker)).await?;
    rabbit.check_and_stop(settings.n, &mut scenario).await?;
    Ok(scenario)
}

/// The relay without the dispatcher: `RabbitMqRelay::relay` for `n` events held in memory,
/// `concurrency` calls at a time, each its own task (as the dispatcher runs handlers).
pub async fn rabbitmq_direct(settings: &Settings) -> Res<Value> {
    let rabbit = Rabbit::start(settings, Format::Binary).await?;
    let events: Vec<Arc<EventEnvelope>> = (0..settings.n)
        .map(|seq| {
            Arc::new(EventEnvelope {
                id: uuid::Uuid::now_v7(),
                event_type: EVENT_TYPE.to_owned(),
                source: "pgbus-bench".to_owned(),
                subject: None,
                key: None,
                data: serde_json::json!({ "seq": seq }),
                headers: Default::default(),
                created_at: chrono::Utc::now(),
            })
        })
        .collect();
    // Connects (the first call), outside the timing.
    let warm = Arc::new(EventEnvelope {
        id: uuid::Uuid::now_v7(),
        ..(*events[0]).clone()
    });
    rabbit.relay.relay(&warm).await?;
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
    let (sampler, in_flight) = sample_in_flight();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for event in events {
        let permit = permits.clone().acquire_owned().await?;
        let relay = rabbit.relay.clone();
        tasks.spawn(async move {
            counted_in_flight(relay.relay(&event)).await?;
            drop(permit);
            Ok::<_, pgbus::relay::RelayError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let secs = t0.elapsed().as_secs_f64();
    sampler.abort();
    let mut scenario = serde_json::json!({
        "id": "rabbitmq-direct",
        "n": settings.n,
        "secs": secs,
        "events_per_s": settings.n as f64 / secs,
        "in_flight_mean": in_flight_mean(&in_flight),
        "broker": Rabbit::describe(settings, Format::Binary),
    });
    rabbit.check_and_stop(settings.n + 1, &mut scenario).await?;
    Ok(scenario)
}
