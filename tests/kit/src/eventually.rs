//! The one polling loop of the tests: read until a condition holds, or fail saying what was
//! awaited and what was last seen.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// At most this long between reads: often enough not to slow a test down, seldom enough not
/// to load the services it is waiting for.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// About this many reads within the time allowed, so a short bound is checked closely.
const READS_PER_BOUND: u32 = 50;

/// Reads with `read` until `done` holds for what it returns, and returns that. Panics once
/// `within` has passed, naming `what` was awaited and the last value read, so a timeout shows
/// how far things got. Reads about 50 times within `within`, at most 100 ms apart.
pub async fn eventually<T: Debug>(
    what: &str,
    within: Duration,
    mut read: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let interval = (within / READS_PER_BOUND).clamp(Duration::from_millis(1), MAX_POLL_INTERVAL);
    let started = Instant::now();
    loop {
        let last = read().await;
        if done(&last) {
            return last;
        }
        let waited = started.elapsed();
        assert!(
            waited < within,
            "{what}: not within {within:?} (waited {waited:?}); last read: {last:?}"
        );
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_that_holds() {
        let mut reads = 0;
        let value = eventually(
            "the third read",
            Duration::from_secs(5),
            async || {
                reads += 1;
                reads
            },
            |n| *n == 3,
        )
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "a value that never comes: not within 50ms")]
    async fn fails_naming_what_was_awaited() {
        eventually(
            "a value that never comes",
            Duration::from_millis(50),
            async || 0,
            |n| *n == 1,
        )
        .await;
    }
}
