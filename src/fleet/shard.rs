//! One shard of a fleet: a task that owns many viewers' [`Runner`]s, one
//! deadline heap and one `Sleep`, and takes its inputs in batches.
//!
//! A wake of the task does, in order: take the inbox (joins, commands,
//! leaves, and every progress tick reported since the last wake), fire the
//! deadlines that are due, poll the slots whose attempt or session woke (and
//! only those), answer `stop()`s, and re-arm the one `Sleep` when the earliest
//! deadline moved earlier. Like the per-viewer task, it decides nothing.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::driver::Event;
use crate::driver::inbox::Command;
use crate::driver::runner::{Runner, Sink};
use crate::fleet::ViewerId;
use crate::fleet::deadlines::Deadlines;
use crate::fleet::events::Outbox;
use crate::fleet::signal::{Signal, SlotWaker};
use crate::machine::{Input, State};
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
    index: u32,
    generation: u16,
    media: Duration,
    at: Instant,
}

struct Inner<S: StreamSource> {
    msgs: Vec<Msg<S>>,
    ticks: Vec<Tick>,
    closed: bool,
    /// Ticks refused because the shard had not taken the ones before.
    ticks_refused: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    generation: u16,
    /// `None` while the slot is free.
    state: Option<State>,
}

/// Which slots are taken, and each viewer's current state.
#[derive(Debug, Default)]
struct Table {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

/// What a shard shares with the fleet's handles.
pub(crate) struct ShardShared<S: StreamSource> {
    number: u16,
    signal: Arc<Signal>,
    inner: Mutex<Inner<S>>,
    table: Mutex<Table>,
    /// Slots ever taken: bounds the ticks waiting (four per slot, and some).
    slots: AtomicUsize,
}

/// The non-generic face of a shard, for [`FleetControl`](crate::FleetControl).
pub(crate) trait Handle: Send + Sync {
    fn send(&self, id: ViewerId, command: Command);
    fn report(&self, id: ViewerId, media: Duration, at: Instant);
    fn state(&self, id: ViewerId) -> Option<State>;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

struct Slot<S: StreamSource> {
    generation: u16,
    runner: Runner<S>,
    waker: Waker,
    listed: Arc<SlotWaker>,
    /// The deadline this slot has in the heap (lazy re-arm).
    armed: Option<Instant>,
}

/// A shard's slots in chunks of [`CHUNK`]: growing never copies them and
/// never leaves more than one chunk unused (a doubling `Vec` leaves up to half).
struct Slots<S: StreamSource> {
    chunks: Vec<Box<[Option<Slot<S>>]>>,
}

const CHUNK: usize = 1024;

impl<S: StreamSource> Slots<S> {
    fn get(&self, index: u32) -> Option<&Slot<S>> {
        let i = index as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
    }

    fn get_mut(&mut self, index: u32) -> Option<&mut Slot<S>> {
        let i = index as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)?.as_mut()
    }

    /// The place of slot `index`, made on first use.
    fn place(&mut self, index: u32) -> &mut Option<Slot<S>> {
        let i = index as usize;
        while self.chunks.len() <= i / CHUNK {
            self.chunks.push((0..CHUNK).map(|_| None).collect());
        }
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

/// Hands one viewer's events and states to the fleet.
struct ShardSink<'a, M, E> {
    id: ViewerId,
    outbox: &'a Outbox<M, E>,
    table: &'a Mutex<Table>,
}

impl<S: StreamSource> Sink<S> for ShardSink<'_, S::Media, S::Error> {
    fn emit(&mut self, event: Event<S::Media, S::Error>) {
        // A superseded session's media is dropped here, outside the lock.
        drop(self.outbox.push(self.id, event));
    }

    fn state(&mut self, state: State) {
        let mut table = lock(self.table);
        if let Some(entry) = table.entries.get_mut(self.id.index as usize)
            && entry.generation == self.id.generation
        {
            entry.state = Some(state);
        }
    }

    fn span(&self, source: &S) -> Option<tracing::Span> {
        Some(tracing::info_span!("viewer", id = %self.id, stream = %source.describe()))
    }
}

/// The shard's task.
pub(crate) struct Shard<S: StreamSource> {
    shared: Arc<ShardShared<S>>,
    outbox: Arc<Outbox<S::Media, S::Error>>,
    slots: Slots<S>,
    live: usize,
    deadlines: Deadlines,
    // Buffers kept from wake to wake, so that a steady state allocates nothing.
    msgs: Vec<Msg<S>>,
    ticks: Vec<Tick>,
    ready: Vec<u32>,
    stops: Vec<(u32, u16, oneshot::Sender<()>)>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<S: StreamSource> Shard<S> {
    pub(crate) fn new(
        shared: Arc<ShardShared<S>>,
        outbox: Arc<Outbox<S::Media, S::Error>>,
    ) -> Self {
        Shard {
            shared,
            outbox,
            slots: Slots { chunks: Vec::new() },
            live: 0,
            deadlines: Deadlines::new(now()),
            msgs: Vec::new(),
            ticks: Vec::new(),
            ready: Vec::new(),
            stops: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut sleeping_until: Option<Instant> = None;
        loop {
            let signal = Arc::clone(&self.shared.signal);
            std::future::poll_fn(|cx: &mut Context<'_>| {
                let signalled = signal.poll_pending(cx).is_ready();
                let fired = sleeping_until.is_some() && sleep.as_mut().poll(cx).is_ready();
                if fired {
                    sleeping_until = None;
                }
                if signalled || fired {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            let now = now();
            if !self.take_inbox(now) {
                break;
            }
            self.fire_deadlines(now);
            self.poll_ready(now);
            self.answer_stops();
            self.compact();
            if let Some(next) = self.deadlines.next()
                && sleeping_until.is_none_or(|s| next < s)
            {
                sleep.as_mut().reset(tokio::time::Instant::from_std(next));
                sleeping_until = Some(next);
            }
        }
        tracing::debug!(shard = self.shared.number, "fleet dropped; shard ends");
    }

    /// Runs `f` on slot `index` if it is generation `generation`, then re-arms its
    /// deadline; when `f` carried out outputs (a new attempt, a new session),
    /// the slot is listed to be polled.
    fn on_slot(
        &mut self,
        index: u32,
        generation: u16,
        f: impl FnOnce(&mut Runner<S>, &mut ShardSink<'_, S::Media, S::Error>) -> bool,
    ) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        let id = ViewerId {
            shard: self.shared.number,
            generation,
            index,
        };
        let mut sink = ShardSink {
            id,
            outbox: &self.outbox,
            table: &self.shared.table,
        };
        if f(&mut slot.runner, &mut sink) {
            slot.waker.wake_by_ref();
        }
        let wanted = slot.runner.machine().poll_timeout();
        self.deadlines.arm(index, &mut slot.armed, wanted);
    }

    /// False once the fleet is gone.
    fn take_inbox(&mut self, now: Instant) -> bool {
        {
            let mut inner = lock(&self.shared.inner);
            if inner.closed {
                return false;
            }
            std::mem::swap(&mut inner.msgs, &mut self.msgs);
            std::mem::swap(&mut inner.ticks, &mut self.ticks);
        }
        let mut ticks = std::mem::take(&mut self.ticks);
        let taken = ticks.len();
        for tick in ticks.drain(..) {
            self.on_slot(tick.index, tick.generation, |runner, sink| {
                runner.progress(tick.at, tick.media, sink)
            });
        }
        // A burst (a million viewers joining) may have grown the buffer to
        // its limit: give most of it back once batches are small again.
        if ticks.capacity() > 4 * taken + 4096 {
            ticks.shrink_to(2 * taken + 1024);
        }
        self.ticks = ticks;
        let mut msgs = std::mem::take(&mut self.msgs);
        for msg in msgs.drain(..) {
            match msg {
                Msg::Join {
                    index,
                    generation,
                    runner,
                } => self.join(now, index, generation, *runner),
                Msg::Command {
                    index,
                    generation,
                    command,
                } => self.command(now, index, generation, command),
                Msg::Leave { index, generation } => self.leave(index, generation),
            }
        }
        self.msgs = msgs;
        true
    }

    fn join(&mut self, now: Instant, index: u32, generation: u16, runner: Runner<S>) {
        let (waker, listed) = self.shared.signal.slot_waker(index);
        *self.slots.place(index) = Some(Slot {
            generation,
            runner,
            waker,
            listed,
            armed: None,
        });
        self.live += 1;
        // The connect that an autostart's `Start` asked for.
        self.on_slot(index, generation, |runner, sink| {
            runner.carry_out(now, sink)
        });
    }

    fn command(&mut self, now: Instant, index: u32, generation: u16, command: Command) {
        match command {
            Command::Input(input) => {
                self.on_slot(index, generation, |runner, sink| {
                    runner.input(now, input, sink)
                });
            }
            Command::Stop(done) => {
                self.on_slot(index, generation, |runner, sink| {
                    runner.input(now, Input::Stop, sink)
                });
                self.stops.push((index, generation, done));
            }
        }
    }

    fn leave(&mut self, index: u32, generation: u16) {
        if self
            .slots
            .get(index)
            .is_none_or(|slot| slot.generation != generation)
        {
            return;
        }
        // Drops the attempt or session.
        *self.slots.place(index) = None;
        self.live -= 1;
        let mut table = lock(&self.shared.table);
        if let Some(e) = table.entries.get_mut(index as usize) {
            e.generation = e.generation.wrapping_add(1);
            e.state = None;
            table.free.push(index);
        }
    }

    fn fire_deadlines(&mut self, now: Instant) {
        while let Some((at, index)) = self.deadlines.pop_due(now) {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.armed != Some(at) {
                continue; // stale: the slot re-armed earlier since
            }
            slot.armed = None;
            let generation = slot.generation;
            self.on_slot(index, generation, |runner, sink| runner.timeout(now, sink));
        }
    }

    /// Polls every slot whose attempt or session woke, until it is pending.
    fn poll_ready(&mut self, now: Instant) {
        self.shared.signal.take_ready(&mut self.ready);
        let mut ready = std::mem::take(&mut self.ready);
        for index in ready.drain(..) {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            slot.listed.unlist();
            let generation = slot.generation;
            while let Some(slot) = self.slots.get_mut(index) {
                let mut cx = Context::from_waker(&slot.waker);
                let Poll::Ready(io) = slot.runner.poll_io(&mut cx) else {
                    break;
                };
                self.on_slot(index, generation, |runner, sink| {
                    runner.on_io(now, io, sink)
                });
            }
        }
        self.ready = ready;
    }

    fn answer_stops(&mut self) {
        let slots = &self.slots;
        self.stops.retain(|(index, generation, _)| {
            slots.get(*index).is_some_and(|slot| {
                slot.generation == *generation && !slot.runner.machine().state().is_idle()
            })
        });
        // `retain` dropped the answered senders; a dropped sender is the answer.
    }

    /// Rebuilds the heap when stale entries outnumber the slots.
    fn compact(&mut self) {
        if self.deadlines.len() <= 2 * self.live + 1024 {
            return;
        }
        let slots = &self.slots;
        self.deadlines
            .retain(|index, at| slots.get(index).is_some_and(|slot| slot.armed == Some(at)));
    }
}
