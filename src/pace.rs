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
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

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
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = self.at.max(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second) + ARRIVAL_SLACK
        }
    }
}

/// The buckets of this process, shared by every call it makes.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    buckets: Mutex<HashMap<ApiGroup, Bucket>>,
}

impl Pacer {
    /// Waits until `group`'s bucket has a token for this call.
    pub(crate) async fn admit(&self, group: ApiGroup) {
        let now = Instant::now();
        let wait = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(group)
            .or_insert_with(|| Bucket::full(group, now))
            .reserve(now);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
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
