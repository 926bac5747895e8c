//! Paces this process's ECS calls to ECS's documented request rates, so that a push fanning out
//! to many services waits for ECS's token buckets instead of spending its retries on
//! ThrottlingException and leaving services undeployed.
//!
//! ECS throttles per account and region with a token bucket per API group: "the bucket maximum
//! capacity signifies the burst rate and the bucket refill rate is the sustained rate"
//! ("Request throttling for the Amazon ECS API", ECS API Reference; the figures below are its
//! table's). The buckets are the account's, shared with every other caller, so pacing here
//! cannot promise that ECS never throttles: it keeps this invocation from throttling itself,
//! and the SDK's adaptive retries handle the rest.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long before the invocation's deadline its last waiting ECS call must be sent: time for
/// that call, the steps after it (the ledger's, UpdateService after a registration) and the
/// report. At most a quarter of the time the invocation has when it starts.
pub(crate) const RESERVE: Duration = Duration::from_secs(10);

tokio::task_local! {
    /// When the running invocation's last waiting ECS call must be sent: its deadline less
    /// [`RESERVE`], or less a quarter of its time when that is less ([`by_deadline`]).
    static SEND_BY: Instant;
}

/// Runs `work` (an invocation) with its paced ECS calls held to `deadline`: a call that would
/// wait for a token that comes later than [`SEND_BY`] is not sent, so that the
/// invocation ends in time with that service left for Lambda's retry, instead of being cut off
/// by its timeout halfway. A call that need not wait is always sent.
pub(crate) async fn by_deadline<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    let Some(deadline) = deadline else {
        return work.await;
    };
    let reserve = RESERVE.min(deadline.saturating_duration_since(Instant::now()) / 4);
    let send_by = deadline.checked_sub(reserve).unwrap_or(deadline);
    SEND_BY.scope(send_by, work).await
}

/// A call not sent: its token would have come after the invocation must stop sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PastDeadline {
    /// How long the call would have waited for its token.
    pub(crate) wait: Duration,
}

/// The ECS API groups pushdeploy calls, each with its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ApiGroup {
    /// RegisterTaskDefinition: a burst of 20, then 1 a second.
    TaskDefinitionModify,
    /// DescribeTaskDefinition: 50, then 20 a second.
    TaskDefinitionRead,
    /// UpdateService: 50, then 5 a second.
    ServiceModify,
    /// DescribeServices: 100, then 20 a second.
    ServiceRead,
    /// DescribeServiceRevisions: 50, then 20 a second.
    ServiceRevision,
}

impl ApiGroup {
    /// (burst, sustained per second), as ECS's throttling table gives them.
    fn bucket(self) -> (f64, f64) {
        match self {
            ApiGroup::TaskDefinitionModify => (20.0, 1.0),
            ApiGroup::TaskDefinitionRead => (50.0, 20.0),
            ApiGroup::ServiceModify => (50.0, 5.0),
            ApiGroup::ServiceRead => (100.0, 20.0),
            ApiGroup::ServiceRevision => (50.0, 20.0),
        }
    }
}

/// How much later than its token a waiting call leaves. ECS counts a call when it arrives, a
/// network delay after it left, and that delay varies: a call that waited for its token and then
/// travelled faster than the burst's first call would arrive before ECS's bucket holds the token
/// (seen here without it: a loaded CI run of the pacing test sent 23 RegisterTaskDefinitions for
/// 22 revisions, one throttled and sent again). Added once per call,
/// not accumulated: a fan-out that waits ends this much later, not this much per call later.
const ARRIVAL_SLACK: Duration = Duration::from_millis(100);

/// One bucket as this process has drawn on it: tokens left (negative when calls are already
/// waiting for tokens to come), as of `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(group: ApiGroup, now: Instant) -> Bucket {
        let (burst, per_second) = group.bucket();
        Bucket {
            burst,
            per_second,
            tokens: burst,
            at: now,
        }
    }

    /// Reserves the next token for a call at `now`: how long the call must wait for it. Calls
    /// are served in the order they ask, each at the time its token comes (plus
    /// [`ARRIVAL_SLACK`]), so that waiting callers do not all wake at once and throttle each
    /// other.
    #[cfg(test)]
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        self.reserve_by(now, None).unwrap_or_default()
    }

    /// [`Bucket::reserve`], unless the token would come after `send_by`: then nothing is
    /// reserved (the calls behind it keep their places) and the wait is the refusal.
    pub(crate) fn reserve_by(
        &mut self,
        now: Instant,
        send_by: Option<Instant>,
    ) -> Result<Duration, PastDeadline> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = self.at.max(now);
        let left = self.tokens - 1.0;
        let wait = if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.per_second) + ARRIVAL_SLACK
        };
        if !wait.is_zero() && send_by.is_some_and(|send_by| now + wait > send_by) {
            return Err(PastDeadline { wait });
        }
        self.tokens = left;
        Ok(wait)
    }
}

/// The buckets of this process, shared by every call it makes.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    buckets: Mutex<HashMap<ApiGroup, Bucket>>,
}

impl Pacer {
    /// Waits until `group`'s bucket has a token for this call; refused, without waiting, when
    /// the token would come after the running invocation must stop sending ([`by_deadline`]).
    pub(crate) async fn admit(&self, group: ApiGroup) -> Result<(), PastDeadline> {
        let now = Instant::now();
        let send_by = SEND_BY.try_with(|send_by| *send_by).ok();
        let wait = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(group)
            .or_insert_with(|| Bucket::full(group, now))
            .reserve_by(now, send_by)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_at_once_and_the_rest_come_at_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(ApiGroup::ServiceModify, start);
        let waits: Vec<Duration> = (0..53).map(|_| bucket.reserve(start)).collect();
        assert!(waits[..50].iter().all(|w| w.is_zero()));
        // UpdateService refills 5 tokens a second: the 51st call's token comes after 0.2 s, the
        // 53rd's after 0.6 s; each leaves the slack after its token.
        assert_eq!(waits[50], Duration::from_millis(200) + ARRIVAL_SLACK);
        assert_eq!(waits[52], Duration::from_millis(600) + ARRIVAL_SLACK);
    }

    #[test]
    fn a_token_past_the_deadline_is_refused_without_taking_it() {
        let start = Instant::now();
        let mut bucket = Bucket::full(ApiGroup::TaskDefinitionModify, start);
        let send_by = Some(start + Duration::from_millis(2500));
        let waits: Vec<_> = (0..24).map(|_| bucket.reserve_by(start, send_by)).collect();
        assert!(waits[..20].iter().all(|w| *w == Ok(Duration::ZERO)));
        // The 21st and 22nd tokens come at 1 s and 2 s (plus the slack): in time. The 23rd
        // would come at 3 s, past 2.5 s: refused, and so is the next, which asks for the same.
        assert_eq!(waits[20], Ok(Duration::from_secs(1) + ARRIVAL_SLACK));
        assert_eq!(waits[21], Ok(Duration::from_secs(2) + ARRIVAL_SLACK));
        let refused = Err(PastDeadline {
            wait: Duration::from_secs(3) + ARRIVAL_SLACK,
        });
        assert_eq!((waits[22], waits[23]), (refused, refused));
        // Without a deadline (the next invocation's, later) the same token is taken.
        assert_eq!(
            bucket.reserve_by(start, None),
            Ok(Duration::from_secs(3) + ARRIVAL_SLACK)
        );
    }

    #[test]
    fn time_refills_the_bucket_up_to_its_burst_only() {
        let start = Instant::now();
        let mut bucket = Bucket::full(ApiGroup::TaskDefinitionModify, start);
        for _ in 0..20 {
            assert!(bucket.reserve(start).is_zero());
        }
        assert_eq!(
            bucket.reserve(start),
            Duration::from_secs(1) + ARRIVAL_SLACK
        );
        // An hour later the bucket holds its burst of 20, not 3,600 tokens.
        let later = start + Duration::from_secs(3600);
        let waits: Vec<Duration> = (0..21).map(|_| bucket.reserve(later)).collect();
        assert!(waits[..20].iter().all(|w| w.is_zero()));
        assert_eq!(waits[20], Duration::from_secs(1) + ARRIVAL_SLACK);
    }
}
