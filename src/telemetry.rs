//! What an invocation tells operators: one log line per decision (with the field names every
//! pushdeploy line uses), the EMF metrics of each outcome, and a closing line with the counts.

use crate::event::Push;
use crate::outcome::{Milestone, Outcome, OutcomeKind, Report, SkipReason};

/// The image an outcome is about, for its log line.
#[derive(Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) event_id: &'a str,
    pub(crate) repository: &'a str,
    pub(crate) tag: &'a str,
    pub(crate) digest: &'a str,
}

impl<'a> Subject<'a> {
    /// An event that is not about one image (an ECS event, the sweep, the reconcile): the
    /// outcomes name their own images.
    pub(crate) fn event(event_id: &'a str) -> Subject<'a> {
        Subject {
            event_id,
            repository: "",
            tag: "",
            digest: "",
        }
    }
}

impl<'a> From<&'a Push> for Subject<'a> {
    fn from(push: &'a Push) -> Self {
        Subject {
            event_id: &push.event_id,
            repository: &push.repository,
            tag: &push.tag,
            digest: push.digest.as_str(),
        }
    }
}

/// One invocation of a function, as its log lines and metrics name it.
pub(crate) struct Run<'a> {
    pub(crate) subject: Subject<'a>,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) started: std::time::Instant,
    /// `None`: no metrics (the CLI).
    pub(crate) metrics_namespace: Option<&'a str>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(
        subject: Subject<'a>,
        request_id: Option<&'a str>,
        started: std::time::Instant,
        config: &'a crate::config::Config,
    ) -> Run<'a> {
        Run {
            subject,
            request_id,
            started,
            metrics_namespace: config.emf_namespace(),
        }
    }

    /// [`Run::conclude`], then one notification per milestone.
    pub(crate) async fn announce(
        &self,
        outcomes: &mut [Outcome],
        notifier: &crate::notify::Notifier,
    ) {
        self.conclude(outcomes);
        notifier.send(self.subject, outcomes).await;
    }

    /// How every invocation ends: each outcome told ([`Run::announce`]), the report made with
    /// the invocation's AWS calls, its last line written ([`Run::summary`]), and Lambda asked
    /// to retry `what` when an outcome needs it ([`Report::into_result`]).
    pub(crate) async fn close(
        &self,
        mut outcomes: Vec<Outcome>,
        event_id: Option<String>,
        reason: Option<String>,
        aws_calls: &crate::aws::CallCounter,
        notifier: &crate::notify::Notifier,
        what: &str,
    ) -> Result<Report, crate::outcome::RetryableFailure> {
        self.announce(&mut outcomes, notifier).await;
        let report = Report {
            event_id,
            outcomes,
            reason,
            aws_calls: aws_calls.take(),
        };
        self.summary(&report);
        report.into_result(what)
    }

    pub(crate) fn duration_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks each outcome's milestone, and writes its one log line and its metrics.
    pub(crate) fn conclude(&self, outcomes: &mut [Outcome]) {
        let now_ms = crate::clock::now_ms();
        for outcome in outcomes.iter_mut() {
            outcome.milestone = outcome.milestone();
            self.log(outcome);
            let document = self
                .metrics_namespace
                .and_then(|ns| crate::metrics::document(ns, outcome, now_ms));
            if let Some(document) = document {
                crate::metrics::emit(&document);
            }
        }
    }

    /// The one log line of a decision, with the field names every pushdeploy line uses.
    fn log<'o>(&'o self, o: &'o Outcome) {
        let subject = self.subject;
        let given = |field: &'o Option<String>, fallback: &'o str| -> Option<&'o str> {
            field
                .as_deref()
                .or(Some(fallback))
                .filter(|v| !v.is_empty())
        };
        let diff = o.diff.as_ref().map(|lines| lines.join("\n"));
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    request_id = self.request_id,
                    event_id = subject.event_id,
                    repository = given(&o.repository, subject.repository),
                    tag = given(&o.tag, subject.tag),
                    digest = given(&o.digest, subject.digest),
                    cluster = o.cluster.as_str(),
                    service = o.service.as_str(),
                    container = o.container.as_deref(),
                    image = o.image.as_deref(),
                    task_definition = o.task_definition.as_deref(),
                    previous_task_definition = o.previous_task_definition.as_deref(),
                    deployment_id = o.deployment_id.as_deref(),
                    warning = o.warning.as_deref(),
                    outcome = o.outcome.as_str(),
                    reason = o.reason.as_deref(),
                    skip_reason = o.skip_reason.map(SkipReason::as_str),
                    milestone = o.milestone.map(Milestone::as_str),
                    push_to_completed_ms = o.push_to_completed_ms,
                    diff = diff.as_deref(),
                    retryable = o.retryable,
                    duration_ms = self.duration_ms(),
                    "{} {}/{}",
                    o.outcome.as_str(),
                    o.cluster,
                    o.service
                )
            };
        }
        match o.outcome {
            OutcomeKind::Failed | OutcomeKind::NeedsHuman => line!(error),
            OutcomeKind::RolledBack => line!(warn),
            _ => line!(info),
        }
    }

    /// The invocation's last line: how it ended, how long it took, how many AWS calls it made.
    pub(crate) fn summary(&self, report: &Report) {
        let count =
            |kind: OutcomeKind| report.outcomes.iter().filter(|o| o.outcome == kind).count();
        tracing::info!(
            request_id = self.request_id,
            event_id = self.subject.event_id,
            repository = Some(self.subject.repository).filter(|v| !v.is_empty()),
            tag = Some(self.subject.tag).filter(|v| !v.is_empty()),
            digest = Some(self.subject.digest).filter(|v| !v.is_empty()),
            services = report.outcomes.len(),
            deployed = count(OutcomeKind::Deployed),
            skipped = count(OutcomeKind::Skipped),
            failed = count(OutcomeKind::Failed),
            rolled_back = count(OutcomeKind::RolledBack),
            dry_run = count(OutcomeKind::DryRun),
            aws_calls = report.aws_calls.values().sum::<u32>(),
            reason = report.reason.as_deref(),
            duration_ms = self.duration_ms(),
            "invocation done"
        );
    }
}
