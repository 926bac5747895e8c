//! One invocation of a function, as the Lambda runtime describes it: its deadline, the ARN it
//! was invoked by (the function's home account and region), and its request id, which Lambda's
//! retries keep. Both functions and replay build one; the claim each invocation takes in the
//! ledger comes from it.

use crate::clock::now_ms;
use crate::ledger::Lease;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lease a claim takes when the invocation has no deadline (a local run).
const DEFAULT_LEASE_MS: u64 = 15 * 60 * 1000;

/// The invocation's time limit, home and id, from the Lambda context.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Epoch milliseconds; 0 when unknown.
    pub deadline_ms: u64,
    /// `arn:aws:lambda:<region>:<account>:function:<name>`: whose pushes this function trusts.
    pub function_arn: Option<String>,
    /// The Lambda request id, which Lambda's retries of this invocation keep.
    pub request_id: Option<String>,
}

impl From<&lambda_runtime::Context> for Invocation {
    fn from(context: &lambda_runtime::Context) -> Invocation {
        let given = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Invocation {
            deadline_ms: context.deadline,
            function_arn: given(&context.invoked_function_arn),
            request_id: given(&context.request_id),
        }
    }
}

impl Invocation {
    /// When the invocation ends, on this process's clock; `None` when unknown (a local run).
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        let now = now_ms();
        (self.deadline_ms > 0).then(|| {
            let left = std::time::Duration::from_millis(self.deadline_ms.saturating_sub(now));
            tokio::time::Instant::now() + left
        })
    }

    /// The account and region the function runs in, from its ARN.
    pub(crate) fn home(&self) -> (Option<&str>, Option<&str>) {
        let mut parts = self.function_arn.as_deref().unwrap_or_default().split(':');
        let region = parts.nth(3).filter(|r| !r.is_empty());
        let account = parts.next().filter(|a| !a.is_empty());
        (account, region)
    }

    /// The claim this invocation takes in the ledger: held by its request id (a run without one
    /// gets a name of its own) until its deadline, or a default for runs without one.
    pub(crate) fn lease(&self) -> Lease {
        static LOCAL_RUNS: AtomicU64 = AtomicU64::new(0);
        let holder = match self.request_id.as_deref() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!(
                "local-{}-{}-{}",
                std::process::id(),
                now_ms(),
                LOCAL_RUNS.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let until_ms = if self.deadline_ms > 0 {
            self.deadline_ms
        } else {
            now_ms() + DEFAULT_LEASE_MS
        };
        Lease { holder, until_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_context_becomes_an_invocation_and_its_arn_its_home() {
        let mut context = lambda_runtime::Context::default();
        context.deadline = 1_795_698_000_000;
        context.request_id = "req-1".into();
        context.invoked_function_arn =
            "arn:aws:lambda:eu-west-1:123456789012:function:prod-Deploy".into();
        let invocation = Invocation::from(&context);
        assert_eq!(invocation.deadline_ms, 1_795_698_000_000);
        assert_eq!(invocation.request_id.as_deref(), Some("req-1"));
        assert_eq!(invocation.home(), (Some("123456789012"), Some("eu-west-1")));
        let lease = invocation.lease();
        assert_eq!(
            (lease.holder.as_str(), lease.until_ms),
            ("req-1", 1_795_698_000_000)
        );

        // A context without an ARN or id (a local run): no home, a lease of its own.
        let local = Invocation::from(&lambda_runtime::Context::default());
        assert_eq!(local.home(), (None, None));
        assert!(local.lease().holder.starts_with("local-"));
    }
}
