//! One service, one push: decide, claim the service in the ledger, register the revision,
//! update the service, record what happened.

use super::{Deployer, Shared};
use crate::aws::{primary_deployment, write_at_most_once, AwsError, UpdatedService};
use crate::clock::{now_ms, now_text};
use crate::codedeploy::{
    appspec, group_deploys, group_named_by_tags, is_code_deploy, the_one_group, traffic_target,
    GroupRef,
};
use crate::diff::{named, unlike_planned};
use crate::event::Push;
use crate::follow::{Follower, ServiceKey};
use crate::ledger::{Claim, DeploymentRecord, Kind, Lease, LedgerError, Status, Taken};
use crate::outcome::{Outcome, OutcomeKind, SkipReason};
use crate::plan::{decide, unreported_failure_warning, Change, Controller, Decision};
use crate::resolved::{image_of, is_pinned, revision_running, ResolvedImages};
use crate::revision::{revision_request, tag_value, Provenance, RevisionError};
use crate::tags::{flag, TAG_DRY_RUN, TAG_EVENT_ID, TAG_PREVIOUS};
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{Service, Tag, TaskDefinition};
use std::sync::Mutex;

/// The service one push meets, as ECS described it: read once, handed to every step.
pub(super) struct Target<'a> {
    pub(super) push: &'a Push,
    pub(super) key: &'a ServiceKey,
    pub(super) service: &'a Service,
    pub(super) definition: &'a TaskDefinition,
    pub(super) tags: &'a [Tag],
}

impl Target<'_> {
    /// The task definition the service runs before this push: what its revision is made from,
    /// what the provenance tags and the ledger record name as the one to go back to.
    fn previous(&self) -> &str {
        self.service.task_definition().unwrap_or_default()
    }
}

impl Deployer {
    pub(super) async fn deploy_one(
        &self,
        push: &Push,
        follower: &Follower,
        service: &Service,
        definition: &TaskDefinition,
        tags: &[Tag],
        shared: &Shared<'_>,
    ) -> Outcome {
        let key = &follower.key;
        let decision = decide(
            push,
            follower.container.as_deref(),
            &follower.policy,
            service,
            definition,
            tags,
        );
        let target = Target {
            push,
            key,
            service,
            definition,
            tags,
        };
        if self.config.dry_run || flag(service, TAG_DRY_RUN) {
            return self.dry_run(&target, decision).await;
        }
        match decision {
            Decision::Skip(code, reason) => Outcome::skipped(key, code, reason).on(service),
            Decision::Fail(reason) => Outcome::failed(key, reason, false).on(service),
            Decision::AlreadyDeployedByThisEvent => {
                self.confirm_earlier_delivery(&target, shared.lease).await
            }
            Decision::Deploy(change) => self.deploy_change(&target, change, shared).await,
        }
    }

    /// The revision `change` registers from the service's definition, tagged with where it came
    /// from; the same request for a real run and a dry run.
    pub(super) fn planned_revision(
        &self,
        target: &Target<'_>,
        change: &Change,
    ) -> Result<RegisterTaskDefinitionFluentBuilder, RevisionError> {
        revision_request(
            self.aws.new_revision(),
            target.definition,
            target.tags,
            &change.container,
            &change.to_image,
            &provenance(target.push, target.previous()),
        )
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
            kind: Kind::Deploy,
            reverts: None,
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
            previous_images: None,
            running_at_last_sweep: None,
            service_deployment_arn: None,
            codedeploy_deployment_id: None,
            awaits_ecs_rollback: false,
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
        lease: &Lease,
    ) -> Result<Option<DeploymentRecord>, Outcome> {
        let service_arn = service.service_arn().unwrap_or_default();
        match self
            .ledger
            .claim(service_arn, push, lease, now_ms(), &now_text())
            .await
        {
            Ok(Claim::Acquired { resumed }) => Ok(resumed.map(|record| *record)),
            Ok(refused) => Err(refused_outcome(key, service, refused)),
            Err(e) => Err(ledger_failed(key, service, &e)),
        }
    }

    /// The change made: the service taken in the ledger, the planned revision registered once
    /// (or adopted, when an interrupted attempt registered exactly it) and recorded,
    /// UpdateService, and the ledger told. Each step that fails hands the claim back with its
    /// reason ([`Self::abandon`]).
    async fn deploy_change(
        &self,
        target: &Target<'_>,
        change: Change,
        shared: &Shared<'_>,
    ) -> Outcome {
        // The digests the service runs now matter only to a rollback, so only the record written
        // before UpdateService must hold them: they are read while the service is taken and its
        // revision registered, off the critical path.
        let (taken, images) = tokio::join!(
            self.take_and_find_revision(target, &change, shared),
            self.images_running(target, &change.container)
        );
        let (mut record, outcome, revision) = match taken {
            Ok(taken) => taken,
            Err(outcome) => return outcome,
        };
        let found = images.and_then(|images| revision.map(|revision| (images, revision)));
        let (images, (new_definition, refused)) = match found {
            Ok(found) => found,
            Err((reason, retryable)) => {
                return self.abandon(record, outcome, reason, retryable).await
            }
        };
        // An interrupted delivery's reading was made before anything changed: it stands.
        record.previous_images = record.previous_images.or(images);
        if record.new_task_definition.as_deref() != Some(new_definition.as_str()) {
            record.new_task_definition = Some(new_definition.clone());
            record.updated_at = now_text();
            if let Err(e) = self.ledger.put_deploying(&record).await {
                let reason = format!("registered {new_definition} but could not record it: {e}");
                return self.abandon(record, outcome, reason, true).await;
            }
        }
        self.update_and_settle(
            record,
            outcome,
            target,
            (new_definition, change.through),
            refused,
        )
        .await
    }

    /// The service taken ([`Self::take_service`]), the outcome its deployment will report, and
    /// the revision it moves to ([`Self::revision_for`]), or why there is none.
    async fn take_and_find_revision(
        &self,
        target: &Target<'_>,
        change: &Change,
        shared: &Shared<'_>,
    ) -> Result<(DeploymentRecord, Outcome, Found), Outcome> {
        let (record, resuming) = self.take_service(target, &change.container, shared).await?;
        let outcome = Outcome {
            container: Some(change.container.clone()),
            image: Some(change.to_image.clone()),
            ..Outcome::new(target.key, OutcomeKind::Failed, None)
        }
        .on(target.service);
        let revision = self
            .revision_for(target, change, shared, &record, resuming)
            .await;
        Ok((record, outcome, revision))
    }

    /// The revision the service moves to: the one the ledger already names (an interrupted
    /// attempt of this push recorded it), the one such an attempt registered without recording
    /// it (when it is exactly the planned one), or the planned one registered now; with why a
    /// claimed one was refused, for the outcome. The caller records it before UpdateService
    /// names it: the rollback function knows a deployment by its revision.
    async fn revision_for(
        &self,
        target: &Target<'_>,
        change: &Change,
        shared: &Shared<'_>,
        record: &DeploymentRecord,
        resuming: bool,
    ) -> Found {
        if let Some(recorded) = record.new_task_definition.clone() {
            return Ok((recorded, None));
        }
        // Built before anything is sent, so that a revision found in the family is adopted only
        // when it is exactly this one.
        let planned = self.planned_revision(target, change);
        let refused = Mutex::new(None);
        let adopted = match (&planned, resuming) {
            (Ok(request), true) => self.registered_earlier(target, request, &refused).await,
            _ => None,
        };
        let arn = match adopted {
            Some(arn) => arn,
            None => {
                self.register_once(target, change, planned, shared, &refused)
                    .await?
            }
        };
        let refused = refused.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((arn, refused))
    }

    /// The service taken for the push in one ledger write ([`crate::ledger::Ledger::take`]): not
    /// for a quarantined digest; the record an interrupted delivery left (`true`: resuming) or
    /// the intent written.
    async fn take_service(
        &self,
        target: &Target<'_>,
        container: &str,
        shared: &Shared<'_>,
    ) -> Result<(DeploymentRecord, bool), Outcome> {
        let Target {
            push, key, service, ..
        } = *target;
        let intent = self.new_record(push, key, service, container, target.previous());
        match self.ledger.take(&intent, shared.lease, now_ms()).await {
            Ok(Taken::Held { record, resumed }) => Ok((*record, resumed)),
            Ok(Taken::Quarantined(reason)) => {
                Err(Outcome::skipped(key, SkipReason::Quarantined, reason).on(service))
            }
            Ok(Taken::Refused(refused)) => Err(refused_outcome(key, service, refused)),
            Err(e) => Err(ledger_failed(key, service, &e)),
        }
    }

    /// The planned revision registered, once for every service on the same revision
    /// (RegisterTaskDefinition is throttled at 1/s per account), never re-sent blindly; or why
    /// not, and whether a retry may help.
    async fn register_once(
        &self,
        target: &Target<'_>,
        change: &Change,
        planned: Result<RegisterTaskDefinitionFluentBuilder, RevisionError>,
        shared: &Shared<'_>,
        refused: &Mutex<Option<String>>,
    ) -> Result<String, (String, bool)> {
        let request = planned.map_err(|e| (e.to_string(), false))?;
        let register = || self.aws.register_task_definition(request.clone());
        let landed = || self.registered_earlier(target, &request, refused);
        let same_revision = format!(
            "{}#{}#{}",
            target.definition.task_definition_arn().unwrap_or_default(),
            change.container,
            change.to_image
        );
        shared
            .revisions
            .once(same_revision, || write_at_most_once(register, landed))
            .await
            .map_err(|e| (e.to_string(), e.retryable))
    }

    /// UpdateService onto `new_definition`, and the ledger told: the outcome, with the warnings
    /// an operator should see (`refused`: a revision not adopted).
    async fn update_and_settle(
        &self,
        mut record: DeploymentRecord,
        mut outcome: Outcome,
        target: &Target<'_>,
        (new_definition, through): (String, Controller),
        refused: Option<String>,
    ) -> Outcome {
        let service = target.service;
        outcome.task_definition = Some(new_definition.clone());
        let updated = match self.move_service(target, &new_definition, through).await {
            Ok(updated) => updated,
            Err((reason, retryable)) => {
                return self.abandon(record, outcome, reason, retryable).await
            }
        };
        record.deployment_id = updated.deployment_id.clone();
        record.service_deployment_arn = updated.service_deployment_arn;
        record.codedeploy_deployment_id = updated.codedeploy_deployment_id.clone();
        record.status = Status::Deployed;
        record.reason = None;
        record.updated_at = now_text();
        outcome.deployment_id = updated.deployment_id.or(updated.codedeploy_deployment_id);
        outcome.outcome = OutcomeKind::Deployed;
        outcome.warning = [refused, unreported_failure_warning(service)]
            .into_iter()
            .flatten()
            .reduce(|a, b| format!("{a}; {b}"));
        if let Err(e) = self.ledger.settle(&record).await {
            // ECS has the new revision; the retry finds it running and only completes the ledger.
            outcome.retryable = e.retryable();
            outcome.reason = Some(if outcome.retryable {
                format!("deployed, but the ledger could not record it ({e}); a retry will")
            } else {
                format!("deployed, but the ledger could not record it ({e})")
            });
        }
        outcome
    }

    /// The service moved onto `new_definition` by its controller: UpdateService, or a CodeDeploy
    /// deployment; `Err`: why not, and whether a retry may help.
    async fn move_service(
        &self,
        target: &Target<'_>,
        new_definition: &str,
        through: Controller,
    ) -> Result<UpdatedService, (String, bool)> {
        let (key, service) = (target.key, target.service);
        match through {
            Controller::Ecs => {
                let cluster = service.cluster_arn().unwrap_or(&key.cluster);
                self.aws
                    .update_service(cluster, &key.service, new_definition)
                    .await
                    .map_err(|e| (e.to_string(), e.retryable))
            }
            Controller::CodeDeploy => self.start_codedeploy(target, new_definition).await,
        }
    }

    /// A CodeDeploy deployment of `new_definition` through the one deployment group that deploys
    /// the service: the one its tags name, once CodeDeploy confirms it deploys the service, else
    /// the one found among every application's groups.
    async fn start_codedeploy(
        &self,
        target: &Target<'_>,
        new_definition: &str,
    ) -> Result<UpdatedService, (String, bool)> {
        let (key, service, push) = (target.key, target.service, target.push);
        let aws_failed = |e: AwsError| (e.to_string(), e.retryable);
        let group = self.codedeploy_group(target).await?;
        let (container, port) = traffic_target(service).map_err(|e| (e, false))?;
        let spec = appspec(new_definition, &container, port);
        let description = format!(
            "pushdeploy: {}:{} = {} (event {})",
            push.repository, push.tag, push.digest, push.event_id
        );
        let id = self
            .aws
            .deploy_with_codedeploy(&group, &spec, &description)
            .await
            .map_err(aws_failed)?;
        tracing::info!(
            cluster = %key.cluster,
            service = %key.service,
            codedeploy_group = %group,
            codedeploy_deployment_id = %id,
            "started a CodeDeploy deployment"
        );
        Ok(UpdatedService {
            deployment_id: None,
            service_deployment_arn: None,
            codedeploy_deployment_id: Some(id),
        })
    }

    /// The deployment group that deploys the service: the one its tags name, once CodeDeploy
    /// confirms it lists the service, else the one found among every application's groups.
    async fn codedeploy_group(&self, target: &Target<'_>) -> Result<GroupRef, (String, bool)> {
        let (key, service) = (target.key, target.service);
        let aws_failed = |e: AwsError| (e.to_string(), e.retryable);
        match group_named_by_tags(service).map_err(|e| (e, false))? {
            Some(named) => {
                let targets = self.aws.group_targets(&named).await.map_err(aws_failed)?;
                if !group_deploys(&targets, &key.cluster, &key.service) {
                    let why = format!("CodeDeploy deployment group {named}, which the service's tags name, does not list the service among its ECS services");
                    return Err((why, false));
                }
                Ok(named)
            }
            None => {
                let found = self
                    .aws
                    .groups_deploying(&key.cluster, &key.service)
                    .await
                    .map_err(aws_failed)?;
                the_one_group(found, &key.cluster, &key.service).map_err(|e| (e, false))
            }
        }
    }

    /// The CodeDeploy deployment that put a CODE_DEPLOY service on `revision`, found again
    /// when an interrupted delivery did not record it; `None` for another controller, or when
    /// CodeDeploy shows none (the record then stays without one, and the sweep leaves it be).
    async fn codedeploy_deployment_onto(
        &self,
        target: &Target<'_>,
        revision: &str,
    ) -> Option<String> {
        if !is_code_deploy(target.service) {
            return None;
        }
        let group = self.codedeploy_group(target).await.ok()?;
        self.aws
            .codedeploy_deployment_onto(&group, revision)
            .await
            .ok()
            .flatten()
    }

    /// The digests ECS recorded for the revision the service runs now, read only when the
    /// followed container names its image by tag: a rollback to that revision must land on them,
    /// and ECS is the only one who knows them. `None` when the image is pinned already, or ECS
    /// lists no service revision for the service; `Err`: why they cannot be read, and whether a
    /// retry may.
    async fn images_running(
        &self,
        target: &Target<'_>,
        container: &str,
    ) -> Result<Option<ResolvedImages>, (String, bool)> {
        let (service, definition) = (target.service, target.definition);
        if image_of(definition, container).is_none_or(is_pinned) {
            return Ok(None);
        }
        let arns: Vec<String> = service
            .current_service_revisions()
            .iter()
            .filter_map(|r| r.arn().map(str::to_string))
            .collect();
        let Some(running) = service.task_definition().filter(|_| !arns.is_empty()) else {
            return Ok(None);
        };
        let tasks = service
            .current_service_revisions()
            .iter()
            .filter_map(|r| Some((r.arn()?.to_string(), r.running_task_count())))
            .collect();
        match self.aws.describe_service_revisions(&arns).await {
            Ok(revisions) => Ok(revision_running(&revisions, running, &tasks)
                .map(ResolvedImages::of_revision)),
            Err(e) => Err((
                format!("not deployed: cannot read the digests the service runs now, which a rollback would need ({e})"),
                e.retryable,
            )),
        }
    }

    /// The outcome when the quarantine refuses the push (or cannot be read); `None`: go ahead.
    pub(super) async fn quarantine_refuses(
        &self,
        push: &Push,
        key: &ServiceKey,
        service: &Service,
    ) -> Option<Outcome> {
        let service_arn = service.service_arn().unwrap_or_default();
        match self
            .ledger
            .quarantined(service_arn, push.digest.as_str())
            .await
        {
            Ok(None) => None,
            Ok(Some(reason)) => {
                Some(Outcome::skipped(key, SkipReason::Quarantined, reason).on(service))
            }
            Err(e) => Some(ledger_failed(key, service, &e)),
        }
    }

    /// The family's newest revision, if it is the one `planned` registers: an earlier attempt
    /// of this push sent it and never heard back (a lost answer, or a crash before recording).
    /// It is adopted only when it equals the request field by field (every container with all
    /// its fields, every task-level setting, the tags; see [`unlike_planned`]): a revision that
    /// merely carries this push's event id and image (which anyone allowed to register a
    /// revision could give it; a reconcile's event id is predictable) is not adopted, and the
    /// caller registers the planned one itself. `refused` then says why, naming the fields that
    /// differ, never their values.
    async fn registered_earlier(
        &self,
        target: &Target<'_>,
        planned: &RegisterTaskDefinitionFluentBuilder,
        refused: &Mutex<Option<String>>,
    ) -> Option<String> {
        let push = target.push;
        let family = target.definition.family()?;
        let (latest, tags) = self.aws.describe_task_definition(family).await.ok()?;
        let arn = latest.task_definition_arn()?;
        let differences = unlike_planned(&latest, &tags, planned);
        if differences.is_empty() {
            return Some(arn.to_string());
        }
        // Another's revision, newer than the one this push runs from: nothing to adopt, and
        // nothing odd. One that claims to be this push's, but is not its request, is.
        if tag_value(&tags, TAG_EVENT_ID) == Some(push.event_id.as_str()) {
            let fields = named(&differences);
            tracing::warn!(
                event_id = %push.event_id,
                revision = arn,
                differs_in = %fields,
                "not adopting a revision that carries this push's event id: it is not the revision pushdeploy would register"
            );
            let why = format!(
                "not adopted: {arn} carries this push's event id but is not the revision pushdeploy would register (differs in: {fields}); registered its own"
            );
            *refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        }
        None
    }

    /// Records why a claimed deployment stopped. A retryable stop leaves the claim for the retry.
    async fn abandon(
        &self,
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
        let recorded = self.ledger.settle(&record).await;
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
    async fn confirm_earlier_delivery(&self, target: &Target<'_>, lease: &Lease) -> Outcome {
        let Target {
            push,
            key,
            service,
            definition,
            tags,
        } = *target;
        let running = service.task_definition().unwrap_or_default().to_string();
        let previous = tag_value(tags, TAG_PREVIOUS)
            .unwrap_or_default()
            .to_string();
        let mut outcome = Outcome::skipped(
            key,
            SkipReason::AlreadyHandled,
            "an earlier delivery of this push already deployed it",
        )
        .on(service);
        outcome.task_definition = Some(running.clone());
        outcome.previous_task_definition = Some(previous.clone());
        let resumed = match self.claim(push, key, service, lease).await {
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
        record.deployment_id = record
            .deployment_id
            .or_else(|| primary_deployment(service, &running));
        record.service_deployment_arn = record.service_deployment_arn.or_else(|| {
            primary_deployment(service, &running)
                .and(service.current_service_deployment())
                .map(str::to_string)
        });
        if record.codedeploy_deployment_id.is_none() {
            record.codedeploy_deployment_id =
                self.codedeploy_deployment_onto(target, &running).await;
        }
        record.status = Status::Deployed;
        record.reason = None;
        record.updated_at = now_text();
        let recorded = self.ledger.settle(&record).await;
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

/// The revision a service moves to and why a claimed one was refused (see
/// [`Deployer::revision_for`]); or why there is none, and whether a retry may find one.
type Found = Result<(String, Option<String>), (String, bool)>;

/// The provenance tags of the revision a push makes from `previous`.
pub(super) fn provenance(push: &Push, previous: &str) -> Provenance {
    Provenance {
        pushed_tag: push.tag.clone(),
        digest: push.digest.to_string(),
        pushed_at: push.pushed_at_text(),
        event_id: push.event_id.clone(),
        previous_task_definition: previous.to_string(),
    }
}

/// The outcome of a push the ledger head refused: a retryable busy service fails the invocation
/// so Lambda tries again; the rest are skipped with the head's reason.
fn refused_outcome(key: &ServiceKey, service: &Service, refused: Claim) -> Outcome {
    match refused {
        Claim::Busy {
            reason,
            retryable: true,
        } => Outcome::failed(key, reason, true),
        Claim::Busy {
            reason,
            retryable: false,
        } => Outcome::skipped(key, SkipReason::InProgress, reason),
        Claim::Stale { reason } => Outcome::skipped(key, SkipReason::Stale, reason),
        Claim::Finished { reason } => Outcome::skipped(key, SkipReason::AlreadyHandled, reason),
        Claim::Acquired { .. } => Outcome::failed(
            key,
            "not deployed: the ledger both took and refused the service; retry",
            true,
        ),
    }
    .on(service)
}

/// The outcome when the ledger cannot be read or written before anything changed.
fn ledger_failed(key: &ServiceKey, service: &Service, e: &LedgerError) -> Outcome {
    Outcome::failed(key, format!("not deployed, because {e}"), e.retryable()).on(service)
}
