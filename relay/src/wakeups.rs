//! In-process wake-ups: long-polls wait on a topic (a channel or an
//! enrollment slot) and re-read the store when it is touched.
//!
//! A wake-up carries no data, only "look again", so a spurious one costs a
//! read and a lost one costs latency, never a wrong answer. The Redis store
//! feeds this hub from its one pub/sub connection and touches every topic
//! after a reconnect, since messages sent meanwhile are gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What a long-poll waits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A device channel: its pending list or a challenge's answer changed.
    Channel(String),
    /// An enrollment slot: a device registered or the host posted its verdict.
    Enrollment(String),
}

impl Topic {
    /// The topic's name on the wire (the pub/sub message).
    pub fn wire(&self) -> String {
        match self {
            Topic::Channel(id) => format!("c:{id}"),
            Topic::Enrollment(id) => format!("e:{id}"),
        }
    }

    /// The topic a pub/sub message names, if it names one.
    pub fn from_wire(s: &str) -> Option<Topic> {
        if let Some(id) = s.strip_prefix("c:") {
            Some(Topic::Channel(id.to_owned()))
        } else {
            s.strip_prefix("e:")
                .map(|id| Topic::Enrollment(id.to_owned()))
        }
    }
}

type Senders = Arc<Mutex<HashMap<Topic, watch::Sender<u64>>>>;

/// The topics someone waits on, each with a counter that a touch bumps.
#[derive(Default, Clone)]
pub struct Hub(Senders);

/// One long-poll's subscription; dropping it forgets the topic when it was
/// the last.
pub struct Waiter {
    rx: watch::Receiver<u64>,
    topic: Topic,
    senders: Senders,
}

impl Hub {
    /// Subscribes to `topic`. Subscribe before reading the store: a change
    /// after the read then still wakes the waiter.
    pub fn subscribe(&self, topic: Topic) -> Waiter {
        let mut senders = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let rx = senders
            .entry(topic.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Waiter {
            rx,
            topic,
            senders: self.0.clone(),
        }
    }

    /// Wakes everyone waiting on `topic` (nobody waits: nothing to do).
    pub fn touch(&self, topic: &Topic) {
        let senders = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = senders.get(topic) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every waiter (after a reconnect, when touches may be lost).
    pub fn touch_all(&self) {
        let senders = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for tx in senders.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Topics with at least one waiter.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Waiter {
    /// Returns after the next touch of the topic since the last call (or
    /// since subscribing).
    pub async fn touched(&mut self) {
        if self.rx.changed().await.is_err() {
            // The sender is never dropped while a waiter holds the topic.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if senders
            .get(&self.topic)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            senders.remove(&self.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_touch_after_subscribing_wakes_and_topics_are_forgotten() {
        let hub = Hub::default();
        let t = Topic::Channel("abc".into());
        let mut w = hub.subscribe(t.clone());
        hub.touch(&Topic::Channel("other".into()));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), w.touched())
                .await
                .is_err(),
            "another topic woke it"
        );
        hub.touch(&t);
        tokio::time::timeout(Duration::from_secs(1), w.touched())
            .await
            .unwrap();
        let mut w2 = hub.subscribe(t.clone());
        hub.touch_all();
        tokio::time::timeout(Duration::from_secs(1), w2.touched())
            .await
            .unwrap();
        drop(w);
        assert_eq!(hub.len(), 1);
        drop(w2);
        assert!(hub.is_empty());
    }

    #[test]
    fn wire_names_round_trip_and_garbage_is_no_topic() {
        for t in [Topic::Channel("x_y".into()), Topic::Enrollment("z".into())] {
            assert_eq!(Topic::from_wire(&t.wire()), Some(t));
        }
        assert_eq!(Topic::from_wire("q:1"), None);
        assert_eq!(Topic::from_wire(""), None);
    }
}
