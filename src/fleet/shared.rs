//! What a shard shares with the fleet's handles: its inbox (joins, commands,
//! leaves and progress ticks, taken by the task in one swap per wake) and the
//! table of its slots (which are taken, each viewer's state).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::inbox::Command;
use crate::driver::runner::Runner;
use crate::fleet::ViewerId;
use crate::fleet::signal::Signal;
use crate::machine::State;
use crate::source::StreamSource;

/// What the fleet's handles send a shard, in order.
pub(crate) enum Msg<S: StreamSource> {
    Join {
        index: u32,
        generation: u16,
        runner: Box<Runner<S>>,
    },
    Command {
        index: u32,
        generation: u16,
        command: Command,
    },
    Leave {
        index: u32,
        generation: u16,
    },
}

/// One progress report, stamped when it was made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tick {
    pub(super) index: u32,
    pub(super) generation: u16,
    pub(super) media: Duration,
    pub(super) at: Instant,
}

pub(super) struct Inner<S: StreamSource> {
    pub(super) msgs: Vec<Msg<S>>,
    pub(super) ticks: Vec<Tick>,
    pub(super) closed: bool,
    /// Ticks refused because the shard had not taken the ones before.
    ticks_refused: u64,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) generation: u16,
    /// `None` while the slot is free.
    pub(super) state: Option<State>,
}

/// Which slots are taken, and each viewer's current state.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) entries: Vec<Entry>,
    pub(super) free: Vec<u32>,
}

/// What a shard shares with the fleet's handles.
pub(crate) struct ShardShared<S: StreamSource> {
    pub(super) number: u16,
    pub(super) signal: Arc<Signal>,
    pub(super) inner: Mutex<Inner<S>>,
    pub(super) table: Mutex<Table>,
    /// Slots ever taken: bounds the ticks waiting (four per slot, and some).
    slots: AtomicUsize,
}

/// The non-generic face of a shard, for [`FleetControl`](crate::FleetControl).
pub(crate) trait Handle: Send + Sync {
    fn send(&self, id: ViewerId, command: Command);
    fn report(&self, id: ViewerId, media: Duration, at: Instant);
    fn state(&self, id: ViewerId) -> Option<State>;
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data is still whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: StreamSource> ShardShared<S> {
    pub(crate) fn new(number: u16) -> Self {
        ShardShared {
            number,
            signal: Arc::new(Signal::default()),
            inner: Mutex::new(Inner {
                msgs: Vec::new(),
                ticks: Vec::new(),
                closed: false,
                ticks_refused: 0,
            }),
            table: Mutex::new(Table::default()),
            slots: AtomicUsize::new(0),
        }
    }

    pub(crate) fn number(&self) -> u16 {
        self.number
    }

    fn push(&self, msg: Msg<S>) {
        let mut inner = lock(&self.inner);
        if !inner.closed {
            inner.msgs.push(msg);
        }
        drop(inner);
        self.signal.notify();
    }

    /// Takes a slot for `runner` and hands it to the task.
    pub(crate) fn join(&self, runner: Runner<S>) -> ViewerId {
        let (index, generation) = {
            let mut table = lock(&self.table);
            let index = match table.free.pop() {
                Some(index) => index,
                None => {
                    table.entries.push(Entry {
                        generation: 0,
                        state: None,
                    });
                    self.slots.store(table.entries.len(), Ordering::Relaxed);
                    // More than u32::MAX viewers per shard do not fit in memory.
                    u32::try_from(table.entries.len() - 1).unwrap_or(u32::MAX)
                }
            };
            let entry = &mut table.entries[index as usize];
            entry.state = Some(runner.machine().state());
            (index, entry.generation)
        };
        self.push(Msg::Join {
            index,
            generation,
            runner: Box::new(runner),
        });
        ViewerId {
            shard: self.number,
            generation,
            index,
        }
    }

    pub(crate) fn leave(&self, id: ViewerId) {
        self.push(Msg::Leave {
            index: id.index,
            generation: id.generation,
        });
    }

    /// Queues the ticks of `batch` that are this shard's, under one lock.
    pub(crate) fn report_batch(&self, batch: &[(ViewerId, Duration)], at: Instant) {
        let limit = self.tick_limit();
        let mut inner = lock(&self.inner);
        if inner.closed {
            return;
        }
        for (id, media) in batch.iter().filter(|(id, _)| id.shard == self.number) {
            if inner.ticks.len() >= limit {
                inner.ticks_refused += 1;
                continue;
            }
            inner.ticks.push(Tick {
                index: id.index,
                generation: id.generation,
                media: *media,
                at,
            });
        }
        drop(inner);
        self.signal.notify();
    }

    fn tick_limit(&self) -> usize {
        self.slots.load(Ordering::Relaxed).saturating_mul(4) + 1024
    }

    pub(crate) fn ticks_refused(&self) -> u64 {
        lock(&self.inner).ticks_refused
    }

    pub(crate) fn close(&self) {
        lock(&self.inner).closed = true;
        self.signal.notify();
    }
}

impl<S: StreamSource> Handle for ShardShared<S> {
    fn send(&self, id: ViewerId, command: Command) {
        self.push(Msg::Command {
            index: id.index,
            generation: id.generation,
            command,
        });
    }

    fn report(&self, id: ViewerId, media: Duration, at: Instant) {
        let limit = self.tick_limit();
        let mut inner = lock(&self.inner);
        if inner.closed {
            return;
        }
        if inner.ticks.len() >= limit {
            inner.ticks_refused += 1;
            return;
        }
        inner.ticks.push(Tick {
            index: id.index,
            generation: id.generation,
            media,
            at,
        });
        drop(inner);
        self.signal.notify();
    }

    fn state(&self, id: ViewerId) -> Option<State> {
        let table = lock(&self.table);
        let entry = table.entries.get(id.index as usize)?;
        if entry.generation == id.generation {
            entry.state
        } else {
            None
        }
    }
}
