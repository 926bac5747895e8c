//! The deploy function: a push in, one outcome per following service out.

use crate::aws::{Aws, DESCRIBE_SERVICES_BATCH};
use crate::config::Config;
use crate::event::{parse_push, timestamp_text, Push};
use crate::follow::{followers, Follower, ServiceKey};
use crate::ledger::{Claim, DeploymentRecord, Ledger, Status};
use crate::plan::{decide, Change, Decision};
use crate::revision::{revision_request, tag_value, Provenance, TAG_PREVIOUS};
use aws_config::SdkConfig;
use aws_sdk_ecs::types::{Service, Tag, TaskDefinition};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// How many services one push deploys at once.
const CONCURRENCY: usize = 8;
/// The lease a claim takes when the invocation has no deadline (a local run).
const DEFAULT_LEASE_MS: u64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Deployed,
    Skipped,
    Failed,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Deployed => "deployed",
            OutcomeKind::Skipped => "skipped",
            OutcomeKind::Failed => "failed",
        }
    }
}

/// What happened to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub cluster: String,
    pub service: String,
    pub outcome: OutcomeKind,
    pub task_definition: Option<String>,
    pub previous_task_definition: Option<String>,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// Lambda should run the invocation again for this service.
    #[serde(skip)]
    pub retryable: bool,
}

impl Outcome {
    fn new(key: &ServiceKey, outcome: OutcomeKind, reason: Option<String>) -> Outcome {
        Outcome {
            cluster: key.cluster.clone(),
            service: key.service.clone(),
            outcome,
            task_definition: None,
            previous_task_definition: None,
            reason,
            container: None,
            image: None,
            deployment_id: None,
            retryable: false,
        }
    }

    fn skipped(key: &ServiceKey, reason: impl Into<String>) -> Outcome {
        Outcome::new(key, OutcomeKind::Skipped, Some(reason.into()))
    }

    fn failed(key: &ServiceKey, reason: impl Into<String>, retryable: bool) -> Outcome {
        Outcome {
            retryable,
            ..Outcome::new(key, OutcomeKind::Failed, Some(reason.into()))
        }
    }

    fn on(mut self, service: &Service) -> Outcome {
        self.previous_task_definition = service.task_definition().map(str::to_string);
        self
    }
}

/// The handler's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub event_id: Option<String>,
    pub outcomes: Vec<Outcome>,
    /// Why the event as a whole was not deployed (not a deployable push, or discovery failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// AWS operations this invocation made, by `service.Operation`.
    pub aws_calls: BTreeMap<String, u32>,
}

/// Something retryable failed: Lambda must run the event again. Safe, because the ledger lets
/// each service take a push once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{summary}")]
pub struct RetryableFailure {
    pub summary: String,
    pub report: Report,
}

impl From<RetryableFailure> for lambda_runtime::Diagnostic {
    fn from(failure: RetryableFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "pushdeploy.Retryable".into(),
            error_message: failure.summary,
        }
    }
}

/// The invocation's identity and time limit, from the Lambda context.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub request_id: String,
    /// Epoch milliseconds; 0 when unknown.
    pub deadline_ms: u64,
}

pub struct Deployer {
    aws: Aws,
    ledger: Ledger,
    config: Config,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn now_text() -> String {
    timestamp_text(&chrono::Utc::now())
}

impl Deployer {
    pub fn new(sdk: &SdkConfig, config: Config) -> Deployer {
        Deployer::with_aws(Aws::new(sdk), config)
    }

    pub fn with_aws(aws: Aws, config: Config) -> Deployer {
        Deployer {
            ledger: Ledger::new(aws.dynamodb.clone(), config.table.clone()),
            aws,
            config,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        self.aws.calls.take();
        let push = match parse_push(payload) {
            Ok(push) => push,
            Err(ignored) => {
                let reason = ignored.reason.to_string();
                tracing::info!(
                    event_id = ignored.event_id.as_deref(),
                    outcome = "ignored",
                    reason = reason.as_str(),
                    "event ignored"
                );
                return Ok(Report {
                    event_id: ignored.event_id,
                    outcomes: vec![],
                    reason: Some(reason),
                    aws_calls: self.aws.calls.take(),
                });
            }
        };
        let tagged = match self.aws.tagged_services(&push.repository).await {
            Ok(tagged) => tagged,
            Err(e) => {
                let reason = format!(
                    "could not find the services that follow {}: {e}",
                    push.repository
                );
                tracing::error!(
                    event_id = push.event_id.as_str(),
                    repository = push.repository.as_str(),
                    tag = push.tag.as_str(),
                    digest = push.digest.as_str(),
                    outcome = "failed",
                    reason = reason.as_str(),
                    "discovery failed"
                );
                let report = Report {
                    event_id: Some(push.event_id.clone()),
                    outcomes: vec![],
                    reason: Some(reason.clone()),
                    aws_calls: self.aws.calls.take(),
                };
                return if e.retryable {
                    Err(RetryableFailure {
                        summary: reason,
                        report,
                    })
                } else {
                    Ok(report)
                };
            }
        };

        let mut outcomes = Vec::new();
        let mut following = Vec::new();
        for selection in followers(&push, &tagged, &self.config) {
            match selection {
                Ok(follower) => following.push(follower),
                Err(excluded) if excluded.is_error => {
                    outcomes.push(Outcome::failed(&excluded.key, excluded.reason, false))
                }
                Err(excluded) => outcomes.push(Outcome::skipped(&excluded.key, excluded.reason)),
            }
        }
        let deadline = if invocation.deadline_ms > 0 {
            invocation.deadline_ms
        } else {
            now_ms() + DEFAULT_LEASE_MS
        };
        outcomes.extend(self.deploy_all(&push, following, deadline).await);

        for outcome in &outcomes {
            log_outcome(&push, outcome);
        }
        let report = Report {
            event_id: Some(push.event_id.clone()),
            outcomes,
            reason: None,
            aws_calls: self.aws.calls.take(),
        };
        let retryable: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| o.retryable)
            .map(|o| format!("{}/{}", o.cluster, o.service))
            .collect();
        if retryable.is_empty() {
            Ok(report)
        } else {
            Err(RetryableFailure {
                summary: format!("push {} of {}:{}: {} must be retried ({}); the ledger makes the retry deploy each service once", push.event_id, push.repository, push.tag, retryable.len(), retryable.join(", ")),
                report,
            })
        }
    }

    async fn deploy_all(
        &self,
        push: &Push,
        following: Vec<Follower>,
        deadline_ms: u64,
    ) -> Vec<Outcome> {
        // DescribeServices takes 10 services of one cluster per call.
        let mut by_cluster: BTreeMap<&str, Vec<&Follower>> = BTreeMap::new();
        for follower in &following {
            by_cluster
                .entry(follower.key.cluster.as_str())
                .or_default()
                .push(follower);
        }
        let batches: Vec<(&str, Vec<&Follower>)> = by_cluster
            .into_iter()
            .flat_map(|(cluster, fs)| {
                fs.chunks(DESCRIBE_SERVICES_BATCH)
                    .map(|c| (cluster, c.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let described =
            futures::future::join_all(batches.into_iter().map(|(cluster, batch)| async move {
                let names: Vec<String> = batch.iter().map(|f| f.key.service.clone()).collect();
                (batch, self.aws.describe_services(cluster, &names).await)
            }))
            .await;

        let mut outcomes = Vec::new();
        let mut ready: Vec<(&Follower, Service)> = Vec::new();
        for (batch, result) in described {
            match result {
                Err(e) => outcomes.extend(
                    batch
                        .iter()
                        .map(|f| Outcome::failed(&f.key, e.to_string(), e.retryable)),
                ),
                Ok(found) => {
                    for follower in batch {
                        match found
                            .services
                            .iter()
                            .find(|s| s.service_name() == Some(follower.key.service.as_str()))
                        {
                            Some(service) => ready.push((follower, service.clone())),
                            None => {
                                let why = found
                                    .failures
                                    .iter()
                                    .find(|(arn, _)| {
                                        arn.ends_with(&format!("/{}", follower.key.service))
                                    })
                                    .map(|(_, r)| r.as_str())
                                    .unwrap_or("not returned");
                                outcomes.push(Outcome::failed(&follower.key, format!("ECS cannot describe the service ({why}); check the cluster and service names in {}", follower.via.join(" and ")), false));
                            }
                        }
                    }
                }
            }
        }

        // Each distinct task definition is described once, however many services run it.
        let mut arns: Vec<&str> = ready
            .iter()
            .filter_map(|(_, s)| s.task_definition())
            .collect();
        arns.sort_unstable();
        arns.dedup();
        let definitions: HashMap<&str, _> = futures::future::join_all(
            arns.into_iter()
                .map(|arn| async move { (arn, self.aws.describe_task_definition(arn).await) }),
        )
        .await
        .into_iter()
        .collect();

        let deployments = stream::iter(ready.iter().map(|(follower, service)| {
            let definition = service
                .task_definition()
                .and_then(|arn| definitions.get(arn));
            async move {
                match definition {
                    None => {
                        Outcome::failed(&follower.key, "the service has no task definition", false)
                            .on(service)
                    }
                    Some(Err(e)) => {
                        Outcome::failed(&follower.key, e.to_string(), e.retryable).on(service)
                    }
                    Some(Ok((definition, tags))) => {
                        self.deploy_one(push, follower, service, definition, tags, deadline_ms)
                            .await
                    }
                }
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        outcomes.extend(deployments);
        outcomes.sort_by(|a, b| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)));
        outcomes
    }

    async fn deploy_one(
        &self,
        push: &Push,
        follower: &Follower,
        service: &Service,
        definition: &TaskDefinition,
        tags: &[Tag],
        deadline_ms: u64,
    ) -> Outcome {
        let key = &follower.key;
        match decide(
            push,
            follower.container.as_deref(),
            service,
            definition,
            tags,
        ) {
            Decision::Skip(reason) => Outcome::skipped(key, reason).on(service),
            Decision::Fail(reason) => Outcome::failed(key, reason, false).on(service),
            Decision::AlreadyDeployedByThisEvent => {
                self.confirm_earlier_delivery(push, key, service, definition, tags, deadline_ms)
                    .await
            }
            Decision::Deploy(change) => {
                self.deploy_change(push, key, service, definition, tags, change, deadline_ms)
                    .await
            }
        }
    }

    fn new_record(
        &self,
        push: &Push,
        key: &ServiceKey,
        service: &Service,
        container: &str,
        previous: &str,
    ) -> DeploymentRecord {
        let now = now_text();
        DeploymentRecord {
            service_arn: service.service_arn().unwrap_or_default().to_string(),
            cluster: key.cluster.clone(),
            service: key.service.clone(),
            event_id: push.event_id.clone(),
            order_key: push.order_key(),
            repository: push.repository.clone(),
            tag: push.tag.clone(),
            digest: push.digest.to_string(),
            pushed_at: push.pushed_at_text(),
            container: container.to_string(),
            previous_task_definition: previous.to_string(),
            new_task_definition: None,
            deployment_id: None,
            status: Status::Deploying,
            reason: None,
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// Claims the service in the ledger; `Err` is the outcome to report when it cannot be had.
    async fn claim(
        &self,
        push: &Push,
        key: &ServiceKey,
        service: &Service,
        deadline_ms: u64,
    ) -> Result<Option<DeploymentRecord>, Outcome> {
        let service_arn = service.service_arn().unwrap_or_default();
        match self
            .ledger
            .claim(service_arn, push, deadline_ms, now_ms(), &now_text())
            .await
        {
            Ok(Claim::Acquired { resumed }) => Ok(resumed.map(|record| *record)),
            Ok(Claim::Busy {
                reason,
                retryable: true,
            }) => Err(Outcome::failed(key, reason, true).on(service)),
            Ok(
                Claim::Busy {
                    reason,
                    retryable: false,
                }
                | Claim::Stale { reason }
                | Claim::Finished { reason },
            ) => Err(Outcome::skipped(key, reason).on(service)),
            Err(e) => {
                Err(
                    Outcome::failed(key, format!("not deployed, because {e}"), e.retryable())
                        .on(service),
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn deploy_change(
        &self,
        push: &Push,
        key: &ServiceKey,
        service: &Service,
        definition: &TaskDefinition,
        tags: &[Tag],
        change: Change,
        deadline_ms: u64,
    ) -> Outcome {
        let previous = service.task_definition().unwrap_or_default().to_string();
        let mut record = match self.claim(push, key, service, deadline_ms).await {
            Ok(resumed) => resumed.unwrap_or_else(|| {
                self.new_record(push, key, service, &change.container, &previous)
            }),
            Err(outcome) => return outcome,
        };
        let mut outcome = Outcome {
            container: Some(change.container.clone()),
            image: Some(change.to_image.clone()),
            ..Outcome::new(key, OutcomeKind::Failed, None)
        }
        .on(service);
        record.updated_at = now_text();
        if let Err(e) = self.ledger.put(&record).await {
            return self
                .abandon(
                    push,
                    record,
                    outcome,
                    format!("not deployed, because {e}"),
                    e.retryable(),
                )
                .await;
        }

        let new_definition = match record.new_task_definition.clone() {
            Some(arn) => arn,
            None => {
                let provenance = Provenance {
                    pushed_tag: push.tag.clone(),
                    digest: push.digest.to_string(),
                    pushed_at: push.pushed_at_text(),
                    event_id: push.event_id.clone(),
                    previous_task_definition: previous.clone(),
                };
                let request = match revision_request(
                    self.aws.new_revision(),
                    definition,
                    tags,
                    &change.container,
                    &change.to_image,
                    &provenance,
                ) {
                    Ok(request) => request,
                    Err(e) => {
                        return self
                            .abandon(push, record, outcome, e.to_string(), false)
                            .await
                    }
                };
                let arn = match self.aws.register_task_definition(request).await {
                    Ok(arn) => arn,
                    Err(e) => {
                        return self
                            .abandon(push, record, outcome, e.to_string(), e.retryable)
                            .await
                    }
                };
                record.new_task_definition = Some(arn.clone());
                record.updated_at = now_text();
                if let Err(e) = self.ledger.put(&record).await {
                    return self
                        .abandon(
                            push,
                            record,
                            outcome,
                            format!("registered {arn} but could not record it: {e}"),
                            true,
                        )
                        .await;
                }
                arn
            }
        };
        outcome.task_definition = Some(new_definition.clone());

        let cluster = service.cluster_arn().unwrap_or(&key.cluster);
        let updated = match self
            .aws
            .update_service(cluster, &key.service, &new_definition)
            .await
        {
            Ok(updated) => updated,
            Err(e) => {
                return self
                    .abandon(push, record, outcome, e.to_string(), e.retryable)
                    .await
            }
        };
        record.deployment_id = updated.deployment_id.clone();
        record.status = Status::Deployed;
        record.updated_at = now_text();
        outcome.deployment_id = updated.deployment_id;
        outcome.outcome = OutcomeKind::Deployed;
        let recorded = match self.ledger.put(&record).await {
            Ok(()) => {
                self.ledger
                    .release(
                        &record.service_arn,
                        push,
                        Status::Deployed,
                        None,
                        &record.updated_at,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            // ECS has the new revision; the retry finds it running and only completes the ledger.
            outcome.reason = Some(format!(
                "deployed, but the ledger could not record it ({e}); a retry will"
            ));
            outcome.retryable = true;
        }
        outcome
    }

    /// Records why a claimed deployment stopped. A retryable stop leaves the claim for the retry.
    async fn abandon(
        &self,
        push: &Push,
        mut record: DeploymentRecord,
        mut outcome: Outcome,
        reason: String,
        retryable: bool,
    ) -> Outcome {
        record.status = if retryable {
            Status::Deploying
        } else {
            Status::Failed
        };
        record.reason = Some(reason.clone());
        record.updated_at = now_text();
        let recorded = match self.ledger.put(&record).await {
            Ok(()) => {
                self.ledger
                    .release(
                        &record.service_arn,
                        push,
                        record.status,
                        Some(&reason),
                        &record.updated_at,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        outcome.outcome = OutcomeKind::Failed;
        outcome.retryable = retryable;
        outcome.reason = Some(match recorded {
            Ok(()) => reason,
            Err(e) => format!("{reason} (and the ledger could not record it: {e})"),
        });
        outcome
    }

    /// The service already runs the revision an earlier delivery of this push registered; make
    /// sure the ledger says so, and touch nothing in ECS.
    async fn confirm_earlier_delivery(
        &self,
        push: &Push,
        key: &ServiceKey,
        service: &Service,
        definition: &TaskDefinition,
        tags: &[Tag],
        deadline_ms: u64,
    ) -> Outcome {
        let running = service.task_definition().unwrap_or_default().to_string();
        let previous = tag_value(tags, TAG_PREVIOUS)
            .unwrap_or_default()
            .to_string();
        let mut outcome =
            Outcome::skipped(key, "an earlier delivery of this push already deployed it")
                .on(service);
        outcome.task_definition = Some(running.clone());
        outcome.previous_task_definition = Some(previous.clone());
        let resumed = match self.claim(push, key, service, deadline_ms).await {
            Ok(resumed) => resumed,
            Err(skipped_or_failed) => {
                return Outcome {
                    task_definition: Some(running),
                    previous_task_definition: Some(previous),
                    ..skipped_or_failed
                }
            }
        };
        let container = crate::plan::container_running(definition, push).unwrap_or_default();
        let mut record =
            resumed.unwrap_or_else(|| self.new_record(push, key, service, &container, &previous));
        record.new_task_definition = Some(running.clone());
        record.deployment_id = record.deployment_id.or_else(|| {
            service
                .deployments()
                .iter()
                .find(|d| d.task_definition() == Some(running.as_str()))
                .and_then(|d| d.id().map(str::to_string))
        });
        record.status = Status::Deployed;
        record.updated_at = now_text();
        let recorded = match self.ledger.put(&record).await {
            Ok(()) => {
                self.ledger
                    .release(
                        &record.service_arn,
                        push,
                        Status::Deployed,
                        None,
                        &record.updated_at,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match recorded {
            Ok(()) => {
                outcome.reason = Some(
                    "an earlier delivery of this push deployed it; the ledger now records it"
                        .into(),
                )
            }
            Err(e) => {
                outcome.reason = Some(format!("an earlier delivery of this push deployed it, but the ledger could not record it ({e})"));
                outcome.retryable = e.retryable();
            }
        }
        outcome
    }
}

fn log_outcome(push: &Push, o: &Outcome) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                event_id = push.event_id.as_str(),
                repository = push.repository.as_str(),
                tag = push.tag.as_str(),
                digest = push.digest.as_str(),
                cluster = o.cluster.as_str(),
                service = o.service.as_str(),
                container = o.container.as_deref(),
                task_definition = o.task_definition.as_deref(),
                previous_task_definition = o.previous_task_definition.as_deref(),
                deployment_id = o.deployment_id.as_deref(),
                outcome = o.outcome.as_str(),
                reason = o.reason.as_deref(),
                retryable = o.retryable,
                "{} {}/{}",
                o.outcome.as_str(),
                o.cluster,
                o.service
            )
        };
    }
    match o.outcome {
        OutcomeKind::Failed => line!(error),
        _ => line!(info),
    }
}
