//! Logging that honours Lambda's settings (`AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`;
//! `AWS_LAMBDA_LOG_FORMAT=JSON`) without ever letting a dependency log below INFO: at DEBUG and
//! TRACE the AWS SDK prints whole requests and responses, and a task definition's secret ARNs,
//! registry credentials and docker labels would land in CloudWatch.

use lambda_runtime::tracing::subscriber::{self, filter::EnvFilter, filter::LevelFilter};
use std::str::FromStr;

/// The filter for a requested level: pushdeploy's own code at that level, everything else at
/// that level or INFO, whichever says less. A value that is not a level means INFO.
pub fn directives(requested: Option<&str>) -> String {
    let level = requested
        .and_then(|l| LevelFilter::from_str(l.trim()).ok())
        .unwrap_or(LevelFilter::INFO);
    let others = level.min(LevelFilter::INFO);
    format!("{others},pushdeploy={level},deploy={level},rollback={level}")
}

/// Installs the global log subscriber: the level `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) asks
/// for, bounded as [`directives`] says, as JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`. Once, at
/// start: a second call panics.
pub fn init() {
    let requested = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = EnvFilter::new(directives(requested.as_deref()));
    let collector = subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        // Fields at the top level, where CloudWatch Logs Insights discovers them by name
        // (`service`, not `fields.service`); the Lambda invocation span (with its requestId)
        // stays, the span list goes.
        collector
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init()
    } else {
        collector.init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_never_log_below_info() {
        assert_eq!(
            directives(Some("TRACE")),
            "info,pushdeploy=trace,deploy=trace,rollback=trace"
        );
        assert_eq!(
            directives(Some("debug")),
            "info,pushdeploy=debug,deploy=debug,rollback=debug"
        );
        assert_eq!(
            directives(Some("WARN")),
            "warn,pushdeploy=warn,deploy=warn,rollback=warn"
        );
        // A RUST_LOG that names targets is not a level: it cannot switch the SDK to trace.
        assert_eq!(
            directives(Some("aws_smithy_runtime=trace")),
            "info,pushdeploy=info,deploy=info,rollback=info"
        );
        assert_eq!(
            directives(None),
            "info,pushdeploy=info,deploy=info,rollback=info"
        );
    }
}
