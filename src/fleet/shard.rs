//! One shard of a fleet: a task that owns many viewers' [`Runner`]s, one
//! timer wheel and one `Sleep`, and takes its inputs in batches.
//!
//! A wake of the task does, in order: take the inbox (joins, commands,
//! leaves, and every progress tick reported since the last wake), fire the
//! deadlines that are due, poll the slots whose attempt or session woke (and
//! only those), answer `stop()`s, and re-arm the one `Sleep` when the earliest
//! deadline moved earlier. Like the per-viewer task, it decides nothing.

use std::future::Future;
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
use crate::fleet::shared::{Msg, ShardShared, Table, Tick, lock};
use crate::fleet::signal::SlotWaker;
use crate::machine::{Input, State};
use crate::source::StreamSource;

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
