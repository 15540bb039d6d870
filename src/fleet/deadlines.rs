//! One shard's timers: a hashed timer wheel of (deadline, viewer slot) with
//! lazy re-arm.
//!
//! Each slot remembers the deadline it has in the wheel (`armed`). A deadline
//! that moves later (every progress tick moves the stall deadline) leaves the
//! wheel alone: the entry fires early, the machine's `handle_timeout` does
//! nothing, and the slot re-arms at its real deadline. So a viewer ticking 4×/s
//! costs one insertion per `stall_after`, not one per tick. An entry whose
//! deadline is no longer the slot's `armed` is stale and skipped when popped.
//!
//! The wheel has [`BUCKETS`] buckets of one millisecond (tokio's timer
//! resolution): inserting and firing cost O(1), where a heap of 100 000
//! entries cost a cache-missing O(log n) per firing. A deadline lands in the
//! bucket of the millisecond it ends in, rounded up, so it never fires early;
//! one further than a lap stays in its bucket until its lap comes.

use std::time::{Duration, Instant};

/// Buckets in the wheel: one lap is this many milliseconds.
const BUCKETS: usize = 4096;
const GRAIN: Duration = Duration::from_millis(1);

type Entry = (Instant, u32);

/// The wheel. Pure: it is fed `now` and the machines' wanted deadlines.
#[derive(Debug)]
pub(crate) struct Deadlines {
    /// The start of bucket tick 0.
    origin: Instant,
    buckets: Vec<Vec<Entry>>,
    /// The first tick not swept yet.
    cursor: u64,
    /// Entries found due, handed out by `pop_due`.
    due: Vec<Entry>,
    /// Emptied buckets' vectors, handed to buckets that fill: capacity moves
    /// around the wheel instead of each bucket allocating on its first use.
    spare: Vec<Vec<Entry>>,
    len: usize,
}

impl Deadlines {
    /// An empty wheel whose ticks count from `origin` (the shard's start).
    pub(crate) fn new(origin: Instant) -> Self {
        Deadlines {
            origin,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            cursor: 0,
            due: Vec::new(),
            spare: Vec::new(),
            len: 0,
        }
    }

    /// Applies the lazy rule for slot `index` wanting `wanted`, given what it
    /// has `armed`: only an earlier (or a first) deadline is inserted.
    pub(crate) fn arm(&mut self, index: u32, armed: &mut Option<Instant>, wanted: Option<Instant>) {
        match (wanted, *armed) {
            (None, _) => *armed = None,
            (Some(w), Some(a)) if a <= w => {}
            (Some(w), _) => {
                self.insert((w, index));
                *armed = Some(w);
            }
        }
    }

    fn insert(&mut self, entry: Entry) {
        let tick = self.ceil_tick(entry.0);
        if tick < self.cursor {
            // Its millisecond was swept already: it is due.
            self.due.push(entry);
        } else {
            let bucket = &mut self.buckets[(tick % BUCKETS as u64) as usize];
            if bucket.capacity() == 0
                && let Some(spare) = self.spare.pop()
            {
                *bucket = spare;
            }
            bucket.push(entry);
        }
        self.len += 1;
    }

    fn ceil_tick(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        let ns = since.as_nanos();
        let grain = GRAIN.as_nanos();
        u64::try_from(ns.div_ceil(grain)).unwrap_or(u64::MAX)
    }

    fn floor_tick(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos() / GRAIN.as_nanos()).unwrap_or(u64::MAX)
    }

    /// An entry due at `now`, removed; the caller checks it against the
    /// slot's `armed` (a mismatch is a stale entry).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.due.is_empty() {
            self.sweep(now);
        }
        let entry = self.due.pop()?;
        self.len -= 1;
        Some(entry)
    }

    /// Moves the entries of every millisecond up to `now` that are due into `due`.
    fn sweep(&mut self, now: Instant) {
        let now_tick = self.floor_tick(now);
        if now_tick < self.cursor {
            return;
        }
        // After a gap longer than a lap, each bucket once is every bucket.
        let steps = (now_tick - self.cursor + 1).min(BUCKETS as u64);
        for k in 0..steps {
            let bucket = &mut self.buckets[((self.cursor + k) % BUCKETS as u64) as usize];
            let mut i = 0;
            while i < bucket.len() {
                if bucket[i].0 <= now {
                    self.due.push(bucket.swap_remove(i));
                } else {
                    i += 1; // a later lap's
                }
            }
            if bucket.is_empty() && bucket.capacity() > 0 {
                self.spare.push(std::mem::take(bucket));
            }
        }
        self.cursor = now_tick + 1;
    }

    /// When to wake next: the earliest due entry, else the start of the
    /// first bucket with entries (a later lap's entry there makes a wake that
    /// finds nothing, once per lap), within one lap.
    pub(crate) fn next(&self) -> Option<Instant> {
        if let Some(first) = self.due.first() {
            return Some(first.0);
        }
        if self.len == 0 {
            return None;
        }
        let lap = BUCKETS as u64;
        let ahead = (0..lap)
            .find(|k| !self.buckets[((self.cursor + k) % lap) as usize].is_empty())
            .unwrap_or(lap);
        let tick = u32::try_from(self.cursor + ahead).unwrap_or(u32::MAX);
        Some(self.origin + GRAIN * tick)
    }

    /// How many entries, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keeps only the entries `live` accepts: stale entries pile up when
    /// deadlines keep moving earlier, so the shard compacts the wheel when it
    /// holds far more entries than slots.
    pub(crate) fn retain(&mut self, live: impl Fn(u32, Instant) -> bool) {
        let keep = |e: &Entry| live(e.1, e.0);
        self.due.retain(keep);
        let mut len = self.due.len();
        for bucket in &mut self.buckets {
            bucket.retain(keep);
            len += bucket.len();
        }
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_later_deadline_keeps_the_armed_one_and_an_earlier_one_is_pushed() {
        let t0 = tokio::time::Instant::now().into_std();
        let s = Duration::from_secs;
        let mut d = Deadlines::new(t0);
        let mut armed = None;
        d.arm(7, &mut armed, Some(t0 + s(2)));
        d.arm(7, &mut armed, Some(t0 + s(3)));
        assert_eq!((d.len(), armed), (1, Some(t0 + s(2))));
        d.arm(7, &mut armed, Some(t0 + s(1)));
        assert_eq!((d.len(), armed), (2, Some(t0 + s(1))));
        assert_eq!(d.pop_due(t0), None);
        assert_eq!(d.next(), Some(t0 + s(1)));
        let mut popped = [d.pop_due(t0 + s(5)), d.pop_due(t0 + s(5))];
        popped.sort();
        assert_eq!(popped, [Some((t0 + s(1), 7)), Some((t0 + s(2), 7))]);
        // The entry at 2 s is stale now: not the slot's armed deadline.
        assert_ne!(armed, Some(t0 + s(2)));
        d.arm(7, &mut armed, None);
        assert_eq!(armed, None);
    }

    #[test]
    fn retain_drops_what_is_not_live() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut d = Deadlines::new(t0);
        for i in 0..10u32 {
            let mut armed = None;
            d.arm(
                i,
                &mut armed,
                Some(t0 + Duration::from_millis(u64::from(i))),
            );
        }
        d.retain(|index, _| index % 2 == 0);
        assert_eq!(d.len(), 5);
        assert_eq!(d.next(), Some(t0));
    }

    #[test]
    fn a_deadline_never_fires_early_and_one_a_lap_away_waits_for_its_lap() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut d = Deadlines::new(t0);
        let soon = t0 + Duration::from_micros(1500);
        let far = t0 + GRAIN * (BUCKETS as u32 + 2);
        let (mut a, mut b) = (None, None);
        d.arm(1, &mut a, Some(soon));
        d.arm(2, &mut b, Some(far));
        assert_eq!(d.pop_due(t0 + Duration::from_millis(1)), None);
        assert_eq!(d.next(), Some(t0 + Duration::from_millis(2)));
        assert_eq!(d.pop_due(t0 + Duration::from_millis(2)), Some((soon, 1)));
        // The far entry shares a bucket with tick 2 + BUCKETS; a full lap later
        // it is still not due.
        assert_eq!(d.pop_due(t0 + GRAIN * (BUCKETS as u32 + 1)), None);
        assert_eq!(d.pop_due(far), Some((far, 2)));
        assert_eq!(d.len(), 0);
        // A deadline already past is due at once.
        let mut c = None;
        d.arm(3, &mut c, Some(t0));
        assert_eq!(d.next(), Some(t0));
        assert_eq!(d.pop_due(far), Some((t0, 3)));
    }
}
