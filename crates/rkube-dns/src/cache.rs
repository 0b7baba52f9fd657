//! Forwarded answers kept for a while (CoreDNS's `cache 30`): positive and negative answers
//! live as long as their smallest TTL, at least 5 seconds and at most 30. Pure: the caller
//! passes the time.

use std::collections::HashMap;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

/// The longest an answer is kept.
const MAX_TTL: u32 = 30;
/// The shortest an answer is kept, and how long one without records is kept.
const MIN_TTL: u32 = 5;
/// How many answers are kept at most.
const CAPACITY: usize = 10_000;

/// A question, in lower case.
pub(crate) type CacheKey = (Name, RecordType);

#[derive(Debug)]
struct Entry {
    message: Message,
    stored: Instant,
    ttl: u32,
}

/// Upstream answers by question.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: HashMap<CacheKey, Entry>,
}

impl Cache {
    /// The answer kept for `key`, with its TTLs lowered by the time it has been kept.
    pub(crate) fn get(&self, key: &CacheKey, now: Instant) -> Option<Message> {
        let entry = self.entries.get(key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            return None;
        }
        let left = entry.ttl - age;
        let mut message = entry.message.clone();
        for record in message
            .answers
            .iter_mut()
            .chain(message.authorities.iter_mut())
            .chain(message.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(age).min(left);
        }
        Some(message)
    }

    /// Keeps `message` for `key` if it is worth keeping: a complete NOERROR or NXDOMAIN.
    pub(crate) fn put(&mut self, key: CacheKey, message: &Message, now: Instant) {
        let Some(ttl) = cache_ttl(message) else {
            return;
        };
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            self.entries.retain(|_, entry| {
                now.saturating_duration_since(entry.stored) < Duration::from_secs(entry.ttl.into())
            });
            if self.entries.len() >= CAPACITY
                && let Some(victim) = self.entries.keys().next().cloned()
            {
                self.entries.remove(&victim);
            }
        }
        let mut message = message.clone();
        message.edns = None;
        self.entries.insert(
            key,
            Entry {
                message,
                stored: now,
                ttl,
            },
        );
    }
}

/// How long to keep `message`, or `None` if it should not be kept.
fn cache_ttl(message: &Message) -> Option<u32> {
    let rcode = message.metadata.response_code;
    if message.metadata.truncation
        || !(rcode == ResponseCode::NoError || rcode == ResponseCode::NXDomain)
    {
        return None;
    }
    // A negative answer lives as long as its SOA says negative answers live (RFC 2308).
    let ttl = message
        .answers
        .iter()
        .chain(&message.authorities)
        .map(|record| match &record.data {
            RData::SOA(soa) if message.answers.is_empty() => record.ttl.min(soa.minimum),
            _ => record.ttl,
        })
        .min()
        .unwrap_or(MIN_TTL);
    Some(ttl.clamp(MIN_TTL, MAX_TTL))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn key() -> CacheKey {
        (
            Name::from_ascii("www.example.com.").expect("name"),
            RecordType::A,
        )
    }

    fn answer(ttl: u32) -> Message {
        let mut message = Message::new(7, MessageType::Response, OpCode::Query);
        let a = RData::A(A(Ipv4Addr::new(192, 0, 2, 1)));
        message.answers.push(Record::from_rdata(key().0, ttl, a));
        message
    }

    #[test]
    fn an_answer_is_kept_at_most_thirty_seconds_with_its_ttl_counting_down() {
        let start = Instant::now();
        let mut cache = Cache::default();
        cache.put(key(), &answer(300), start);
        let later = cache
            .get(&key(), start + Duration::from_secs(10))
            .expect("kept");
        assert_eq!(later.answers[0].ttl, 20);
        assert!(cache.get(&key(), start + Duration::from_secs(30)).is_none());
    }

    #[test]
    fn a_short_ttl_is_kept_for_its_own_length_but_at_least_five_seconds() {
        let start = Instant::now();
        let mut cache = Cache::default();
        cache.put(key(), &answer(12), start);
        assert!(cache.get(&key(), start + Duration::from_secs(11)).is_some());
        assert!(cache.get(&key(), start + Duration::from_secs(12)).is_none());
        cache.put(key(), &answer(1), start);
        assert!(cache.get(&key(), start + Duration::from_secs(4)).is_some());
    }

    #[test]
    fn a_negative_answer_lives_as_long_as_its_soa_minimum() {
        let start = Instant::now();
        let mut cache = Cache::default();
        let mut nxdomain = Message::new(7, MessageType::Response, OpCode::Query);
        nxdomain.metadata.response_code = ResponseCode::NXDomain;
        let zone = Name::from_ascii("example.com.").expect("name");
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 7200, 1800, 86400, 8);
        nxdomain
            .authorities
            .push(Record::from_rdata(zone, 3600, RData::SOA(soa)));
        cache.put(key(), &nxdomain, start);
        assert!(cache.get(&key(), start + Duration::from_secs(7)).is_some());
        assert!(cache.get(&key(), start + Duration::from_secs(8)).is_none());
    }

    #[test]
    fn failures_and_truncated_answers_are_not_kept() {
        let start = Instant::now();
        let mut cache = Cache::default();
        let mut servfail = answer(30);
        servfail.metadata.response_code = ResponseCode::ServFail;
        cache.put(key(), &servfail, start);
        let mut truncated = answer(30);
        truncated.metadata.truncation = true;
        cache.put(key(), &truncated, start);
        assert!(cache.get(&key(), start).is_none());
    }
}
