//! What relay nodes write to Redis: one key per live stream (its current state, with a TTL) and
//! one channel per stream (its events), both as [`Record`] JSON, and the Lua scripts that make
//! "last writer wins" atomic.
//!
//! Names carry the stream in a hash tag (`relive:{cam-1}:live`, `relive:{cam-1}:events`) so that
//! under Redis Cluster a stream's key and channel land on one slot.

use serde::{Deserialize, Serialize};

use crate::relay::protocol::{CloseReason, Details, StreamName};

/// A version of a stream's state: the fencing epoch of its publisher (from `INCR`), then the
/// publisher's own count of changes. Compared as a pair.
pub(crate) type Version = (u64, u64);

/// A stream's state as one node announced it: in the key (live, or a close for one TTL) and
/// on the channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Fencing epoch of the publisher; a higher one wins.
    pub(crate) epoch: u64,
    /// Changes by this publisher within its epoch.
    pub(crate) seq: u64,
    /// The node that holds the publisher.
    pub(crate) node: String,
    /// The details when live; `None` for a close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<Details>,
    /// Why it closed, for a close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<CloseReason>,
}

impl Record {
    pub(crate) fn version(&self) -> Version {
        (self.epoch, self.seq)
    }

    pub(crate) fn to_json(&self) -> String {
        // A struct of strings, numbers and `Details` (itself JSON) always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses what another node wrote; anything else is `None` (never trusted, never a panic).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The key with a stream's current state.
pub(crate) fn live_key(stream: &StreamName) -> String {
    format!("relive:{{{stream}}}:live")
}

/// The key whose `INCR` hands out a stream's fencing epochs.
pub(crate) fn epoch_key(stream: &StreamName) -> String {
    format!("relive:{{{stream}}}:epoch")
}

/// The channel of a stream's events.
pub(crate) fn channel(stream: &StreamName) -> String {
    format!("relive:{{{stream}}}:events")
}

/// The stream of a channel name, if it is one of ours.
pub(crate) fn stream_of_channel(channel: &str) -> Option<StreamName> {
    let name = channel.strip_prefix("relive:{")?.strip_suffix("}:events")?;
    StreamName::new(name).ok()
}

/// Writes a live record unless a higher epoch holds the stream; publishes it when asked.
/// Keys: live, epoch, channel. Args: epoch, record, ttl ms, publish (`1`/`0`), and the
/// publish command ([`Pubsub::publish`]: `PUBLISH`, or `SPUBLISH` for sharded pub/sub — the
/// channel is in the keys' slot).
/// Returns 0 when written, else the epoch that holds the stream. Also raises the epoch counter
/// to at least ours (a restarted Redis without persistence must not hand out older epochs).
pub(crate) const ANNOUNCE: &str = r"
local mine = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current then
  local held = tonumber(cjson.decode(current).epoch)
  if held and held > mine then return held end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
if counter < mine then redis.call('SET', KEYS[2], ARGV[1]) end
if ARGV[4] == '1' then redis.call(ARGV[5], KEYS[3], ARGV[2]) end
return 0
";

/// Unless a higher epoch holds the stream: replaces the key with the close record (a tombstone
/// for one TTL, so a node that reads the key instead of hearing the event — it reconnected
/// later — also learns `unpublished`) and publishes the close. Keys: live, channel. Args:
/// epoch, close record, ttl ms, the publish command. Returns 1 when published.
pub(crate) const CLOSE: &str = r"
local mine = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
local held = 0
if current then held = tonumber(cjson.decode(current).epoch) or 0 end
if held > mine then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call(ARGV[4], KEYS[2], ARGV[2])
return 1
";

/// Which pub/sub the nodes use: classic, or sharded (Redis Cluster with Redis 7: each
/// stream's channel lives on the shard of its slot, and only that shard carries its events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pubsub {
    /// `SUBSCRIBE` / `PUBLISH`.
    Classic,
    /// `SSUBSCRIBE` / `SPUBLISH`.
    Sharded,
}

impl Pubsub {
    /// The command the scripts publish with.
    pub(crate) fn publish(self) -> &'static str {
        match self {
            Pubsub::Classic => "PUBLISH",
            Pubsub::Sharded => "SPUBLISH",
        }
    }
}

/// Whether a server of version `info` (the text of `INFO server`) has sharded pub/sub.
pub(crate) fn has_sharded_pubsub(info: &str) -> bool {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .and_then(|v| v.trim().split('.').next()?.parse::<u32>().ok());
    version.is_some_and(|major| major >= 7)
}

/// `streams` grouped by the hash slot of their keys, in the order first seen: under Redis
/// Cluster a multi-key command (`MGET`) must name keys of one slot.
pub(crate) fn by_slot(streams: &[StreamName]) -> Vec<Vec<StreamName>> {
    let mut groups: Vec<Vec<StreamName>> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for stream in streams {
        let slot = ::redis::cluster_routing::Slot::for_key(live_key(stream));
        let at = *index.entry(slot).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(stream.clone());
    }
    groups
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_input_is_refused() {
        let cam = StreamName::new("cam-1").unwrap();
        assert_eq!(live_key(&cam), "relive:{cam-1}:live");
        assert_eq!(stream_of_channel(&channel(&cam)), Some(cam));
        assert_eq!(stream_of_channel("other:{cam}:events"), None);
        assert_eq!(stream_of_channel("relive:{a b}:events"), None);
        assert_eq!(Record::parse(b"{not json"), None);
        let record = Record {
            epoch: 3,
            seq: 1,
            node: "n".into(),
            details: Some(Details::default()),
            reason: None,
        };
        assert_eq!(Record::parse(record.to_json().as_bytes()), Some(record));
    }

    #[test]
    fn keys_group_by_the_slot_of_their_hash_tag() {
        let cams: Vec<StreamName> = (0..50)
            .map(|i| StreamName::new(format!("cam-{i}")).unwrap())
            .collect();
        let groups = by_slot(&cams);
        assert!(groups.len() > 1, "50 names over 16384 slots share few");
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 50);
        for group in &groups {
            let slot = |s: &StreamName| ::redis::cluster_routing::Slot::for_key(live_key(s));
            assert!(group.iter().all(|s| slot(s) == slot(&group[0])));
            // The key, the epoch counter and the channel of a stream share its slot.
            let s = &group[0];
            let of = ::redis::cluster_routing::Slot::for_key;
            assert_eq!(of(epoch_key(s)), slot(s));
            assert_eq!(of(channel(s)), slot(s));
        }
    }

    #[test]
    fn sharded_pubsub_needs_redis_7() {
        assert!(has_sharded_pubsub("# Server\r\nredis_version:7.0.15\r\n"));
        assert!(!has_sharded_pubsub("redis_version:6.2.14\r\n"));
        assert!(!has_sharded_pubsub("no version here"));
    }
}
