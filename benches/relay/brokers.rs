//! The broker scenarios: a throwaway broker, the relay subscription, and the check that the
//! broker holds every event afterwards.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use pgbus::relay::Destinations;
use pgbus::relay::nats::NatsRelay;
use pgbus::relay::rabbitmq::{ExchangeKind, RabbitMqRelay};
use pgbus_testing::{NatsServer, RabbitMqServer};
use serde_json::Value;

use super::common::Res;
use super::{SUB, Settings, drain};

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
    let mut scenario = drain(
        server,
        settings,
        "nats",
        relay.subscription(SUB, [super::common::EVENT_TYPE]),
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

pub async fn rabbitmq(server: &super::common::Server, settings: &Settings) -> Res<Value> {
    let rabbit = RabbitMqServer::start().await?;
    let url = rabbit.url();
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
    channel
        .queue_declare("bench".into(), durable, FieldTable::default())
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
        .build()?;
    let broker = "rabbitmq-server (Debian package), persistent messages, one durable classic queue, 127.0.0.1";
    let mut scenario = drain(
        server,
        settings,
        "rabbitmq",
        relay.subscription(SUB, [super::common::EVENT_TYPE]),
        Some(broker.to_owned()),
    )
    .await?;
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("bench".into(), passive, FieldTable::default())
        .await?;
    let stored = queue.message_count();
    if (stored as usize) < settings.n {
        return Err(format!(
            "the queue holds {stored} messages, fewer than {}",
            settings.n
        )
        .into());
    }
    scenario["broker_messages"] = stored.into();
    let _ = connection.close(200, "bench done".into()).await;
    rabbit.stop();
    Ok(scenario)
}
