//! What only the per-viewer task has: a stream that ends if its task dies.

use futures::StreamExt;
use futures::stream::BoxStream;
use relive::{Event, Policy, Reconnector, Session, SourceEvent, source_fn};
use tokio::time::timeout;

use crate::PATIENCE;

type Events = BoxStream<'static, SourceEvent<u32, std::io::Error>>;

#[tokio::test(start_paused = true)]
async fn the_events_end_after_the_last_one_when_a_source_panics() {
    let source = source_fn(|attempt: u32| async move {
        if attempt == 1 {
            panic!("a buggy source");
        }
        Ok::<Session<u32, Events>, std::io::Error>(Session {
            media: attempt,
            events: futures::stream::pending().boxed(),
        })
    });
    let mut viewer = Reconnector::new(source, Policy::default()).spawn();
    let mut events = Vec::new();
    let ended = timeout(PATIENCE, async {
        while let Some(event) = viewer.next().await {
            events.push(event);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream never ended: {} events",
        events.len()
    );
    // The start was reported before the task died.
    assert!(
        matches!(events.first(), Some(Event::State { .. })),
        "{events:?}"
    );
}
