//! One channel's publisher: publishes in turn and matches every confirm, and every
//! returned message, to its own publish.
//!
//! lapin hands a returned (`basic.return`) message to whichever confirm it resolves next,
//! which is not always the returned message's own: with many publishes in flight, an
//! acknowledgement of an earlier message, or the first of the tags that one `multiple`
//! acknowledgement covers, can carry it. Trusting that attachment would mark the
//! unroutable event done and blame a routable one. So one task per channel owns every
//! confirm of that channel and settles them in the order lapin resolved them, a batch at a
//! time: first every returned message of the batch is noted under its identity (exchange,
//! routing key, `message-id`, which is the event id), then each publish is settled:
//! returned if its identity was noted, else as the broker acknowledged it.
//!
//! Why that is enough: the broker sends a message's return before its acknowledgement, so
//! the confirm that carries it was resolved no later than the message's own. The task
//! publishes in groups (every publish waiting, at once) and settles only between groups,
//! when every confirm of the channel is in its set, and
//! resolved confirms come out of the set in the order they were resolved; so by the time a
//! message is settled, the return it may have is already noted.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::message::BasicReturnMessage;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::{mpsc, oneshot};

/// How many publishes wait for the channel's task before senders wait for room.
const QUEUE: usize = 4096;

/// Most publishes the task starts at once.
const GROUP: usize = 1024;

/// What the broker made of one publish.
#[derive(Debug)]
pub(super) enum Settled {
    /// Acknowledged and routed.
    Acked,
    /// Returned as unroutable: the reply code and text.
    Returned(String),
    /// Negatively acknowledged.
    Nacked,
    /// The channel is not in confirm mode.
    NotConfirmed,
}

/// One message to publish, `mandatory`.
pub(super) struct Publish {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) body: Vec<u8>,
    pub(super) properties: BasicProperties,
    pub(super) message_id: String,
    pub(super) reply: oneshot::Sender<Result<Settled, lapin::Error>>,
}

/// The sending end of one channel's task.
#[derive(Clone)]
pub(super) struct Publisher {
    requests: mpsc::Sender<Publish>,
}

impl Publisher {
    /// Starts the task that publishes on `channel`; it ends once every `Publisher` is
    /// dropped and every confirm it holds is settled.
    pub(super) fn start(channel: Channel) -> Self {
        let (requests, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(channel, receiver));
        Publisher { requests }
    }

    /// Hands `publish` to the task; false if the task has ended.
    pub(super) async fn send(&self, publish: Publish) -> bool {
        self.requests.send(publish).await.is_ok()
    }
}

/// A returned message's identity: exchange, routing key, `message-id`.
type Identity = (String, String, String);

/// A publish whose confirm the task holds.
struct Waiting {
    identity: Identity,
    reply: oneshot::Sender<Result<Settled, lapin::Error>>,
}

type Confirm = Pin<Box<dyn Future<Output = (Waiting, lapin::Result<Confirmation>)> + Send>>;

async fn run(channel: Channel, mut requests: mpsc::Receiver<Publish>) {
    let mut confirms: FuturesUnordered<Confirm> = FuturesUnordered::new();
    let mut book = Book::default();
    let mut open = true;
    while open || !confirms.is_empty() {
        tokio::select! {
            biased;
            Some(first) = confirms.next(), if !confirms.is_empty() => {
                let mut batch = vec![first];
                while let Some(Some(next)) = confirms.next().now_or_never() {
                    batch.push(next);
                }
                book.settle(batch);
            }
            request = requests.recv(), if open => match request {
                Some(first) => {
                    // Every publish waiting, at once: lapin writes their frames together.
                    let mut group = vec![first];
                    while group.len() < GROUP {
                        match requests.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let sent = join_all(group.into_iter().map(|p| publish_one(&channel, p))).await;
                    for confirm in sent.into_iter().flatten() {
                        book.start(&confirm.0);
                        confirms.push(confirm.1);
                    }
                }
                None => open = false,
            },
        }
    }
}

/// The identities in flight and the returned messages noted for them.
#[derive(Default)]
struct Book {
    /// How many publishes of each identity wait for their confirm (the same message may be
    /// in flight twice, from two subscriptions of one relay).
    in_flight: HashMap<Identity, usize>,
    /// Returned messages noted and not yet settled: their reply code and text.
    returned: HashMap<Identity, Vec<String>>,
}

impl Book {
    /// Settles a batch of resolved confirms: notes every returned message first, then
    /// answers each publish.
    fn settle(&mut self, batch: Vec<(Waiting, lapin::Result<Confirmation>)>) {
        let mut answers = Vec::with_capacity(batch.len());
        for (waiting, confirmation) in batch {
            let answer = match confirmation {
                Ok(Confirmation::Ack(message)) => {
                    self.note(message);
                    Ok(Settled::Acked)
                }
                Ok(Confirmation::Nack(message)) => {
                    self.note(message);
                    Ok(Settled::Nacked)
                }
                Ok(Confirmation::NotRequested) => Ok(Settled::NotConfirmed),
                Err(e) => Err(e),
            };
            answers.push((waiting, answer));
        }
        for (waiting, answer) in answers {
            let reply = self.finish(&waiting.identity);
            let answer = match (answer, reply) {
                (Ok(Settled::Acked), Some(reply)) => Ok(Settled::Returned(reply)),
                (answer, _) => answer,
            };
            let _ = waiting.reply.send(answer);
        }
    }

    fn start(&mut self, identity: &Identity) {
        *self.in_flight.entry(identity.clone()).or_default() += 1;
    }

    /// Notes a returned message under its identity, if a publish of it is in flight.
    fn note(&mut self, message: Option<BasicReturnMessage>) {
        let Some(message) = message else {
            return;
        };
        let delivery = &message.delivery;
        let identity = (
            delivery.exchange.to_string(),
            delivery.routing_key.to_string(),
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(ShortString::to_string)
                .unwrap_or_default(),
        );
        if !self.in_flight.contains_key(&identity) {
            // Its publish was settled before the confirm that carried it, against the
            // broker's order of a return before its acknowledgement; nothing to blame.
            tracing::warn!(
                exchange = %identity.0,
                routing_key = %identity.1,
                message_id = %identity.2,
                "a returned message without a publish in flight"
            );
            return;
        }
        self.returned
            .entry(identity)
            .or_default()
            .push(format!("{} {}", message.reply_code, message.reply_text));
    }

    /// One publish of `identity` settled: its returned message, if one was noted.
    fn finish(&mut self, identity: &Identity) -> Option<String> {
        let reply = self.returned.get_mut(identity).and_then(Vec::pop);
        if self.returned.get(identity).is_some_and(Vec::is_empty) {
            self.returned.remove(identity);
        }
        if let Some(n) = self.in_flight.get_mut(identity) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(identity);
                self.returned.remove(identity);
            }
        }
        reply
    }
}

/// Publishes one message: its identity and confirm, or `None` when the publish failed (and
/// was answered).
async fn publish_one(channel: &Channel, publish: Publish) -> Option<(Identity, Confirm)> {
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let sent = channel
        .basic_publish(
            publish.exchange.as_str().into(),
            publish.routing_key.as_str().into(),
            options,
            &publish.body,
            publish.properties,
        )
        .await;
    match sent {
        Ok(confirm) => {
            let identity = (publish.exchange, publish.routing_key, publish.message_id);
            let waiting = Waiting {
                identity: identity.clone(),
                reply: publish.reply,
            };
            Some((identity, Box::pin(confirm.map(move |c| (waiting, c)))))
        }
        Err(e) => {
            let _ = publish.reply.send(Err(e));
            None
        }
    }
}
