//! The deploy function: a push in, one outcome per following service out.

mod dry_run;
mod one_service;
mod reconcile;

use crate::aws::{Aws, AwsError, EcrImage, DESCRIBE_SERVICES_BATCH};
use crate::config::Config;
use crate::confirm::{confirm, Confirmed};
use crate::event::{parse_deploy_trigger, trust, DeployTrigger, NotDeployable, Push};
use crate::follow::{followers, Follower, TaggedService};
use crate::invocation::Invocation;
use crate::ledger::{Lease, Ledger};
use crate::notify::Notifier;
use crate::outcome::SkipReason;
pub use crate::outcome::{Outcome, OutcomeKind, Report, RetryableFailure};
use crate::policy::TagPolicy;
use crate::tags::{flag, TAG_PAUSED};
use crate::telemetry::{Run, Subject};
use aws_config::SdkConfig;
use aws_sdk_ecs::types::{Service, Tag, TaskDefinition};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the services of one push share: the claim's lease, and the revisions registered so far.
pub struct Shared<'a> {
    /// This invocation's lease: who holds each service's claim in the ledger, and until when.
    pub lease: &'a Lease,
    /// Revisions registered for this push so far, so that services on the same new revision
    /// share one registration.
    pub revisions: Revisions,
}

/// One registration per distinct new revision, whoever asks first; the others wait for it. A
/// failed registration is not kept: the next service to need it tries again.
#[derive(Default)]
pub struct Revisions(std::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>);

impl Revisions {
    /// The revision registered under `key`: by `register` if nobody has yet, else the one
    /// another service's deploy registered (waiting for it while it is being registered).
    pub async fn once<F, Fut>(&self, key: String, register: F) -> Result<String, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, AwsError>>,
    {
        let cell = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(register).await.cloned()
    }
}

/// The deploy function: what it promises is that a push moves every service that follows it
/// onto that exact image, pinned by digest, at most once per service and never backwards, and
/// that whatever it does not do is answered with its reason.
pub struct Deployer {
    aws: Aws,
    ledger: Ledger,
    notifier: Notifier,
    config: Config,
}

impl Deployer {
    /// The deploy function on the standard AWS configuration (`AWS_ENDPOINT_URL`, region,
    /// credentials) and its settings.
    pub fn new(sdk: &SdkConfig, config: Config) -> Deployer {
        Deployer::with_aws(Aws::new(sdk), config)
    }

    /// The deploy function on clients configured elsewhere (their retries, their HTTP).
    pub fn with_aws(aws: Aws, config: Config) -> Deployer {
        Deployer {
            ledger: Ledger::new(aws.dynamodb.clone(), config.table.clone()),
            notifier: Notifier::new(aws.sns.clone(), config.notify_topic()),
            aws,
            config,
        }
    }

    /// Starts opening the connections a push needs (when `PUSHDEPLOY_WARM_UP` allows), in a
    /// task of its own: the function polls for its first event meanwhile instead of waiting,
    /// and that event's calls find each connection open or opening. The handshakes to ECS, the
    /// Tagging API and DynamoDB then run side by side, where the push would make them one after
    /// another (its ECS calls wait for the Tagging API's answer).
    pub fn warm_up(&self) {
        if self.config.warm_up {
            let (aws, table) = (self.aws.clone(), self.config.table.clone());
            tokio::spawn(async move {
                aws.warm_up(&table, std::time::Duration::from_secs(2)).await;
            });
        }
    }

    /// The ledger it writes (for the CLI and the tests to read).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// One invocation: the payload parsed once into what the function is asked to do (a push,
    /// or the reconcile), and done; the report has one outcome per service concerned, or the
    /// reason nothing moved. Never panics on input; an error is returned only when Lambda
    /// should retry, which the ledger makes safe (each service takes a push once).
    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        self.aws.calls.take();
        let work = async {
            match parse_deploy_trigger(payload) {
                Ok(DeployTrigger::Reconcile { event_id, at }) => {
                    self.reconcile(event_id, at, invocation).await
                }
                Ok(DeployTrigger::Push(push)) => self.on_push(*push, invocation).await,
                Err(ignored) => {
                    Ok(self.ignored(ignored.event_id, ignored.reason.to_string(), invocation))
                }
            }
        };
        // Boxed: the invocation's future type is deep enough that the deploy binary's `main`
        // went past the compiler's query depth limit once it was wrapped once more.
        crate::pace::by_deadline(invocation.deadline(), Box::pin(work)).await
    }

    /// The answer to what moves nothing, with its reason (logged by [`Report::ignored`]).
    fn ignored(&self, event_id: Option<String>, reason: String, invocation: &Invocation) -> Report {
        let request_id = invocation.request_id.as_deref();
        Report::ignored(event_id, reason, self.aws.calls.take(), request_id)
    }

    /// A push or a replication: trusted by where it comes from, confirmed by ECR, deployed to
    /// every service that follows it.
    async fn on_push(
        &self,
        push: Push,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        let started = std::time::Instant::now();
        let request_id = invocation.request_id.as_deref();
        if let Err(reason) = self.trusts(&push, invocation) {
            return Ok(self.ignored(Some(push.event_id), reason.to_string(), invocation));
        }
        log_replication(&push, request_id);
        // Discovery and ECR's word on the push, at once: confirming costs no time of its own.
        let (tagged, image) = tokio::join!(
            self.aws.tagged_services(&push.repository),
            self.aws
                .image_by_digest(&push.account, &push.repository, push.digest.as_str()),
        );
        let tagged = match tagged {
            Ok(tagged) => tagged,
            Err(e) => {
                let what = format!(
                    "could not find the services that follow {}",
                    push.repository
                );
                return self.cannot_start(&push, what, e, started, request_id);
            }
        };
        let (following, mut outcomes) = self.select(&push, &tagged);
        // ECR's word matters only to a push someone follows: a push nobody follows moves
        // nothing whatever ECR says, and its answer stays "no service follows".
        if !following.is_empty() {
            let image = match image {
                Ok(image) => image,
                Err(e) => {
                    let what = "could not confirm the push with ECR".to_string();
                    return self.cannot_start(&push, what, e, started, request_id);
                }
            };
            match self
                .on_confirmation(&push, image.as_ref(), following, invocation)
                .await
            {
                Ok(more) => outcomes.extend(more),
                Err(unbelieved) => {
                    return Ok(self.ignored(Some(push.event_id.clone()), unbelieved, invocation))
                }
            }
        }
        self.finish(&push, outcomes, request_id, started).await
    }

    /// The followers' outcomes once ECR has had its say: deployed when ECR confirms the push,
    /// each a stale skip when the event is late; `Err` with the reason when the event is not
    /// believed at all (nothing moves, and the event is ignored).
    async fn on_confirmation(
        &self,
        push: &Push,
        image: Option<&EcrImage>,
        following: Vec<Follower>,
        invocation: &Invocation,
    ) -> Result<Vec<Outcome>, String> {
        // Now on AWS's clock, as the answers just read tell it.
        match confirm(push, image, self.aws.clock.now()) {
            Ok(confirmed) => Ok(self
                .deploy_confirmed(push, &confirmed, following, invocation)
                .await),
            // A late event: each service skips it, as it would any stale push.
            Err(late) if late.is_stale() => {
                let reason = late.to_string();
                Ok(following
                    .iter()
                    .map(|f| Outcome::skipped(&f.key, SkipReason::Stale, reason.clone()))
                    .collect())
            }
            Err(unbelieved) => Err(unbelieved.to_string()),
        }
    }

    /// Whether the push comes from where this function takes pushes from: its own region, and
    /// its own account or one of `PUSHDEPLOY_TRUSTED_ACCOUNTS`.
    fn trusts(&self, push: &Push, invocation: &Invocation) -> Result<(), NotDeployable> {
        let (home_account, home_region) = invocation.home();
        let home_region = home_region.or(self.aws.region());
        let accounts = self.config.trusted_accounts.as_ref();
        trust(push, home_account, home_region, accounts)
    }

    /// The services that follow the push, and an outcome for each one excluded (a cluster
    /// outside `Clusters` is a skip; a bad mapping, a failure).
    fn select(&self, push: &Push, tagged: &[TaggedService]) -> (Vec<Follower>, Vec<Outcome>) {
        let mut following = Vec::new();
        let mut excluded = Vec::new();
        for selection in followers(push, tagged, &self.config) {
            match selection {
                Ok(follower) => following.push(follower),
                Err(out) if out.is_error => {
                    excluded.push(Outcome::failed(&out.key, out.reason, false))
                }
                Err(out) => excluded.push(Outcome::skipped(
                    &out.key,
                    SkipReason::ClusterNotAllowed,
                    out.reason,
                )),
            }
        }
        (following, excluded)
    }

    /// The push's outcomes told (log lines, metrics, notifications) and answered; a push that
    /// moved nothing says who would have to follow it.
    async fn finish(
        &self,
        push: &Push,
        mut outcomes: Vec<Outcome>,
        request_id: Option<&str>,
        started: std::time::Instant,
    ) -> Result<Report, RetryableFailure> {
        outcomes.sort_by(|a, b| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)));
        // "My push did nothing" deserves a line of its own too.
        let reason = outcomes
            .is_empty()
            .then(|| nobody_follows(push, request_id));
        let what = format!("push {} of {}:{}", push.event_id, push.repository, push.tag);
        let event_id = Some(push.event_id.clone());
        Run::new(Subject::from(push), request_id, started, &self.config)
            .close(
                outcomes,
                event_id,
                reason,
                &self.aws.calls,
                &self.notifier,
                &what,
            )
            .await
    }

    /// The answer when the push cannot even be looked at: its followers or ECR's word on it
    /// could not be read. Retryable errors make Lambda retry the event.
    fn cannot_start(
        &self,
        push: &Push,
        what: String,
        e: AwsError,
        started: std::time::Instant,
        request_id: Option<&str>,
    ) -> Result<Report, RetryableFailure> {
        let reason = format!("{what}: {e}");
        tracing::error!(
            request_id,
            event_id = push.event_id.as_str(),
            repository = push.repository.as_str(),
            tag = push.tag.as_str(),
            digest = push.digest.as_str(),
            outcome = "failed",
            reason = reason.as_str(),
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            "discovery failed"
        );
        let report = Report {
            event_id: Some(push.event_id.clone()),
            outcomes: vec![],
            reason: Some(reason.clone()),
            aws_calls: self.aws.calls.take(),
        };
        if e.retryable {
            Err(RetryableFailure {
                summary: reason,
                report,
            })
        } else {
            Ok(report)
        }
    }

    /// Deploys a push ECR confirmed: services that follow its one tag ordered by when the tag
    /// moved, the others by when ECR says the image was pushed ([`Confirmed::ordered_for`]).
    async fn deploy_confirmed(
        &self,
        push: &Push,
        confirmed: &Confirmed,
        following: Vec<Follower>,
        invocation: &Invocation,
    ) -> Vec<Outcome> {
        let (by_tag, by_image): (Vec<Follower>, Vec<Follower>) = following
            .into_iter()
            .partition(|f| matches!(f.policy, TagPolicy::Exact(_)));
        let lease = invocation.lease();
        let mut outcomes = Vec::new();
        for group in [by_tag, by_image] {
            let Some(first) = group.first() else {
                continue;
            };
            let ordered = confirmed.ordered_for(push, &first.policy);
            let shared = Shared {
                lease: &lease,
                revisions: Revisions::default(),
            };
            outcomes.extend(self.deploy_all(&ordered, group, &shared).await);
        }
        outcomes
    }

    /// Deploys the push to every follower: the services described (10 of one cluster per
    /// call), each distinct task definition described once, then each service deployed, at
    /// most `PUSHDEPLOY_CONCURRENCY` at a time.
    async fn deploy_all(
        &self,
        push: &Push,
        following: Vec<Follower>,
        shared: &Shared<'_>,
    ) -> Vec<Outcome> {
        let (ready, mut outcomes) = self.describe_followers(&following).await;
        let definitions = self.describe_definitions(&ready).await;
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
                        self.deploy_one(push, follower, service, definition, tags, shared)
                            .await
                    }
                }
            }
        }))
        .buffer_unordered(self.config.concurrency)
        .collect::<Vec<_>>()
        .await;
        outcomes.extend(deployments);
        outcomes
    }

    /// Each follower's service as ECS describes it, ready to deploy; an outcome for each one
    /// that is not (paused, gone, or not readable).
    async fn describe_followers<'f>(
        &self,
        following: &'f [Follower],
    ) -> (Vec<(&'f Follower, Service)>, Vec<Outcome>) {
        let batches = by_cluster_batches(following.iter(), |f| f.key.cluster.as_str());
        let described =
            futures::future::join_all(batches.into_iter().map(|(cluster, batch)| async move {
                let names: Vec<String> = batch.iter().map(|f| f.key.service.clone()).collect();
                (batch, self.aws.describe_services(cluster, &names).await)
            }))
            .await;
        let mut outcomes = Vec::new();
        let mut ready = Vec::new();
        for (batch, result) in described {
            let found = match result {
                Ok(found) => found,
                Err(e) => {
                    let failed =
                        |f: &&Follower| Outcome::failed(&f.key, e.to_string(), e.retryable);
                    outcomes.extend(batch.iter().map(failed));
                    continue;
                }
            };
            for follower in batch {
                let named = |s: &&Service| s.service_name() == Some(follower.key.service.as_str());
                match found.services.iter().find(named) {
                    Some(service) if flag(service, TAG_PAUSED) => {
                        outcomes.push(paused(follower, service))
                    }
                    Some(service) => ready.push((follower, service.clone())),
                    None => outcomes.push(not_described(follower, &found.failures)),
                }
            }
        }
        (ready, outcomes)
    }

    /// Each distinct task definition the services run, described once however many run it.
    async fn describe_definitions<'s>(
        &self,
        ready: &'s [(&Follower, Service)],
    ) -> HashMap<&'s str, Result<(TaskDefinition, Vec<Tag>), AwsError>> {
        let mut arns: Vec<&str> = ready
            .iter()
            .filter_map(|(_, s)| s.task_definition())
            .collect();
        arns.sort_unstable();
        arns.dedup();
        futures::future::join_all(
            arns.into_iter()
                .map(|arn| async move { (arn, self.aws.describe_task_definition(arn).await) }),
        )
        .await
        .into_iter()
        .collect()
    }
}

/// `items` grouped by cluster, in batches of at most [`DESCRIBE_SERVICES_BATCH`]: what one
/// DescribeServices call takes ("up to ten services", API reference).
pub(super) fn by_cluster_batches<'i, T: 'i>(
    items: impl Iterator<Item = &'i T>,
    cluster: impl Fn(&T) -> &str,
) -> Vec<(&'i str, Vec<&'i T>)> {
    let mut grouped: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
    for item in items {
        grouped.entry(cluster(item)).or_default().push(item);
    }
    grouped
        .into_iter()
        .flat_map(|(cluster, all)| {
            all.chunks(DESCRIBE_SERVICES_BATCH)
                .map(|batch| (cluster, batch.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A service tagged `pushdeploy:paused=true`: skipped, with the command that lifts it.
fn paused(follower: &Follower, service: &Service) -> Outcome {
    let key = &follower.key;
    Outcome::skipped(
        key,
        SkipReason::Paused,
        format!(
            "paused: the service is tagged {TAG_PAUSED}=true (lift it with `pushdeploy resume --cluster {} --service {}`)",
            key.cluster, key.service
        ),
    )
    .on(service)
}

/// A service DescribeServices did not return. One the Tagging API alone listed and ECS reports
/// MISSING or INACTIVE is gone (the Tagging API lists resources tagged before and may lag behind
/// a deletion): a skip. One a rule names is a configuration to fix: a failure.
fn not_described(follower: &Follower, failures: &[(String, String)]) -> Outcome {
    let why = failures
        .iter()
        .find(|(arn, _)| arn.ends_with(&format!("/{}", follower.key.service)))
        .map(|(_, r)| r.as_str())
        .unwrap_or("not returned");
    if follower.only_by_tags() && matches!(why, "MISSING" | "INACTIVE") {
        return Outcome::skipped(
            &follower.key,
            SkipReason::NotActive,
            format!(
                "ECS reports the service {why}: it is gone, though the Tagging API still lists it"
            ),
        );
    }
    Outcome::failed(
        &follower.key,
        format!(
            "ECS cannot describe the service ({why}); check the cluster and service names in {}",
            follower.via.join(" and ")
        ),
        false,
    )
}

/// One line for an image ECR replicated into this region: it deploys like a push.
fn log_replication(push: &Push, request_id: Option<&str>) {
    if let Some(from) = &push.replicated_from {
        tracing::info!(
            request_id,
            event_id = push.event_id.as_str(),
            repository = push.repository.as_str(),
            tag = push.tag.as_str(),
            digest = push.digest.as_str(),
            source_account = from.account.as_str(),
            source_region = from.region.as_str(),
            "a replicated image: deployed like a push"
        );
    }
}

/// The reason a push that moved nothing gives, logged on a line of its own.
fn nobody_follows(push: &Push, request_id: Option<&str>) -> String {
    let reason = format!(
        "no service follows {}:{} (tag pushdeploy:repository={} with pushdeploy:tag={}, or a PUSHDEPLOY_RULES entry)",
        push.repository, push.tag, push.repository, push.tag
    );
    tracing::info!(
        request_id,
        event_id = push.event_id.as_str(),
        repository = push.repository.as_str(),
        tag = push.tag.as_str(),
        digest = push.digest.as_str(),
        outcome = "none",
        reason = reason.as_str(),
        "no service follows this push"
    );
    reason
}
