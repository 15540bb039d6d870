//! The setting of the AWS Architecture Blog's "Exponential Backoff and Jitter"
//! (2015): N clients contend for one resource with optimistic concurrency; a
//! write succeeds only if no other write landed in the previous `D`, else the
//! client backs off and retries. Measured: total calls ("work") and the time
//! until every client has written, for each jitter kind, with relive's own
//! `Backoff` (base 10 ms, ×2, cap 10 s), averaged over seeds.
//!
//! `cargo bench --bench aws_jitter` prints the table of the README's "Results".

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use relive::{Backoff, BackoffConfig, Jitter, Rng};

/// How long a successful write holds the resource.
const D: Duration = Duration::from_millis(10);
const SEEDS: u64 = 20;

fn schedule(jitter: Jitter) -> BackoffConfig {
    BackoffConfig::builder()
        .initial(Duration::from_millis(10))
        .cap(Duration::from_secs(10))
        .jitter(jitter)
        .build()
        .expect("valid")
}

/// (total calls, time until all have written)
fn contend(clients: usize, jitter: Jitter, seed: u64) -> (u64, Duration) {
    let config = schedule(jitter);
    let mut rng = Rng::new(seed);
    // Each client has its own seeded sequence, as each real client would.
    let mut backoffs: Vec<Backoff> = (0..clients)
        .map(|_| config.delays(rng.next_u64()))
        .collect();
    // Everyone calls at once, in an order the seed decides.
    let mut queue: BinaryHeap<Reverse<(Duration, u64, usize)>> = (0..clients)
        .map(|i| Reverse((Duration::ZERO, rng.next_u64(), i)))
        .collect();
    let (mut calls, mut done, mut last_write) = (0u64, 0usize, None::<Duration>);
    let mut finish = Duration::ZERO;
    while let Some(Reverse((at, _, i))) = queue.pop() {
        calls += 1;
        let free = last_write.is_none_or(|w| at >= w + D);
        if free {
            last_write = Some(at);
            done += 1;
            finish = at;
            if done == clients {
                break;
            }
        } else {
            let delay = backoffs[i].next_delay();
            queue.push(Reverse((at + delay, rng.next_u64(), i)));
        }
    }
    (calls, finish)
}

fn main() {
    let kinds = [
        ("no jitter", Jitter::None),
        ("full", Jitter::Full),
        ("equal", Jitter::Equal),
        ("decorrelated", Jitter::Decorrelated),
    ];
    println!(
        "AWS setting: N clients, optimistic concurrency (a write holds the resource {D:?}), base 10 ms ×2, cap 10 s; mean of {SEEDS} seeds.\n"
    );
    println!("| clients | no jitter: calls / time | full | equal | decorrelated |");
    println!("|---:|---|---|---|---|");
    for clients in [10usize, 25, 50, 100] {
        let mut row = format!("| {clients} |");
        for (_, jitter) in kinds {
            let (mut calls, mut time) = (0u64, Duration::ZERO);
            for seed in 0..SEEDS {
                let (c, t) = contend(clients, jitter, seed + 1);
                calls += c;
                time += t;
            }
            row += &format!(
                " {} / {:.2} s |",
                calls / SEEDS,
                (time / SEEDS as u32).as_secs_f64()
            );
        }
        println!("{row}");
    }
}
