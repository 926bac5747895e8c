//! The clocks: AWS's, as its answers tell it (what AWS's times are held against), and the
//! host's (leases, deadlines, the ledger's own timestamps).
//!
//! AWS's clock, as its answers tell it. Every answer carries a `Date` header ("An origin server
//! with a clock ... MUST generate a Date header field in ... 2xx (Successful) ... responses",
//! RFC 9110 section 6.6.1); the AWS SDK reads the same header to correct its request signatures
//! for clock skew (aws-runtime's `service_clock_skew`).
//!
//! What the functions hold against a time AWS wrote (a deployment's `createdAt`, a sweep's or
//! a push's `time`, ECR's `imagePushedAt`) they hold against this clock: the clock that wrote
//! it, never the payload's word for it, and not the host's, which may drift from it. Before any
//! answer has been heard, it is the host's clock.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The time the latest successful AWS answer carried, moved on by the time elapsed since: an
/// interceptor on every client, and the clock the functions read.
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsClock(Arc<Mutex<Option<Heard>>>);

#[derive(Debug, Clone, Copy)]
struct Heard {
    said: DateTime<Utc>,
    at: Instant,
}

impl AwsClock {
    /// Now, on AWS's clock as last heard, or on the host's before any answer. An HTTP date drops
    /// the fraction of its second, so the time AWS meant lies within the second after the one it
    /// says: this is the end of that second (moved on by the time since), never behind AWS's
    /// clock and less than a second ahead of it. Never behind matters: a time AWS wrote a moment
    /// ago (an event's) is not taken for one in the future, nor clamped below itself.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(heard) => {
                let since = chrono::Duration::from_std(heard.at.elapsed()).unwrap_or_default();
                heard.said + chrono::Duration::seconds(1) + since
            }
            None => Utc::now(),
        }
    }

    fn hear(&self, said: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Heard {
            said,
            at: Instant::now(),
        });
    }
}

/// An HTTP date (`Sat, 05 Dec 2026 11:37:27 GMT`, RFC 9110 section 5.6.7's IMF-fixdate).
pub(crate) fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Intercept for AwsClock {
    fn name(&self) -> &'static str {
        "pushdeploy::AwsClock"
    }

    // Successful answers only: an error may come from something between (a proxy, a load
    // balancer) rather than the service, and the next success sets the clock anyway.
    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        if response.status().is_success() {
            if let Some(said) = response.headers().get("date").and_then(parse_http_date) {
                self.hear(said);
            }
        }
        Ok(())
    }
}

/// The host's clock in epoch milliseconds: what leases and Lambda's deadlines are measured in
/// (both are the host's, never AWS's word for a time it wrote).
pub(crate) fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// The host's clock as the ledger writes times (`updated_at`, `started_at`).
pub(crate) fn now_text() -> String {
    crate::event::timestamp_text(&Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_date_is_read_and_anything_else_is_not() {
        let said = parse_http_date("Sat, 05 Dec 2026 11:37:27 GMT").unwrap();
        assert_eq!(said.to_rfc3339(), "2026-12-05T11:37:27+00:00");
        for not_a_date in [
            "",
            "2026-12-05T11:37:27Z",
            "yesterday",
            "Sat, 35 Dec 2026 11:37:27 GMT",
        ] {
            assert_eq!(parse_http_date(not_a_date), None, "{not_a_date:?}");
        }
    }

    #[test]
    fn the_clock_is_the_hosts_until_aws_answers_then_aws_moved_on() {
        let clock = AwsClock::default();
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
        let ahead = Utc::now() + chrono::Duration::hours(3);
        clock.hear(ahead);
        // A date heard is a whole second: now is the end of it, never before it.
        let now = clock.now();
        assert!(
            now >= ahead + chrono::Duration::seconds(1)
                && now - ahead < chrono::Duration::seconds(5),
            "{now} {ahead}"
        );
    }
}
