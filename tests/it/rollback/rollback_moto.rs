//! The rollback function against moto and the deployment-aware ECS world inside it
//! (`tests/support/ecs_world.py`). The service runs `web:latest` (an image that exists in moto's
//! ECR, so ECS resolves it to a digest) with the deployment circuit breaker on and ECS's own
//! rollback off, so rolling back is pushdeploy's job. Every UpdateService starts a real
//! deployment with the id ECS returns (and pushdeploy records); the tests make its tasks start
//! or fail, and hand the rollback function exactly the `ECS Deployment State Change` events the
//! world emitted for that, in order. What each decision did is then read back from ECS (the
//! world's view of the service) and from the ledger: rollback and quarantine, the last
//! COMPLETED revision as the target, no rollback of a rollback, deployments pushdeploy did not
//! start and services changed by hand left alone, the sweep of deployments that never end.
//! Forged input (anyone allowed lambda:InvokeFunction can send any payload) moves nothing: a
//! sweep dated 2999, a COMPLETED or a FAILED that ECS does not show.
//! Rollbacks to a revision that names the image by tag land on a copy pinned to the digest ECS
//! recorded for it (tag `pushdeploy:pins`).
//! ECS's own rollback (circuit breaker with `rollback: true`) and a 5xx on the rollback's
//! UpdateService are in tests/it/rollback/rollback_mocks.rs.

use crate::support;

use crate::support::{digest, push_event, TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, Outcome, OutcomeKind, Report};
use pushdeploy::invocation::Invocation;
use pushdeploy::ledger::{Kind, Status};
use pushdeploy::rollback::RollbackHandler;
use serde_json::{json, Value};

const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
const CLUSTER: &str = "prod";
const SERVICE: &str = "web";
const CONTAINER: &str = "app";
const IN_PROGRESS: &str = "SERVICE_DEPLOYMENT_IN_PROGRESS";
const COMPLETED: &str = "SERVICE_DEPLOYMENT_COMPLETED";
const FAILED: &str = "SERVICE_DEPLOYMENT_FAILED";

/// The service's deployments, the pushdeploy functions, and the world that runs them.
struct Rig {
    bed: TestBed,
    world: support::ecs_world::World,
    deployer: Deployer,
    rollback: RollbackHandler,
    /// The revision the service was created on: `web:latest`, by tag.
    first: String,
    /// The digest `web:latest` named in ECR when the service was created.
    first_digest: String,
}

impl Rig {
    async fn new() -> Rig {
        let bed = TestBed::start().await;
        let world = bed.world();
        let first_digest = bed.push_image("web", "latest", 0).await;
        bed.cluster(CLUSTER).await;
        let first = bed
            .task_definition("web", &[(CONTAINER, &format!("{REGISTRY}/web:latest"))])
            .await;
        // Circuit breaker on, so that failing tasks make ECS fail the deployment (and say so);
        // ECS's own rollback off, so that rolling back is pushdeploy's decision.
        let breaker = support::circuit_breaker(false);
        bed.service_with(
            CLUSTER,
            SERVICE,
            &first,
            &[("pushdeploy:repository", "web")],
            breaker,
        )
        .await;
        let mut config = bed.config();
        config.deploy_timeout = std::time::Duration::from_secs(60);
        Rig {
            deployer: Deployer::new(&bed.sdk, config.clone()),
            // Its clock is AWS's, as the world's answers tell it (their Date header).
            rollback: RollbackHandler::new(&bed.sdk, config),
            world,
            bed,
            first,
            first_digest,
        }
    }

    /// Moves the world's clock, and with it the Date of every answer, on by `seconds`.
    async fn advance(&self, seconds: u64) {
        self.world.advance(seconds).await;
    }

    /// Pushes `web:latest` with digest `d` to ECR and delivers its event.
    async fn push(&self, event_id: &str, d: char, time: &str) -> Report {
        self.bed.ecr_has("web", "latest", &digest(d)).await;
        self.deployer
            .handle(
                push_event(event_id, "web", "latest", &digest(d), time),
                &Invocation::default(),
            )
            .await
            .unwrap()
    }

    /// Deploys the push; its new revision and the ECS deployment id UpdateService returned.
    async fn deploy(&self, event_id: &str, d: char, time: &str) -> (String, String) {
        let report = self.push(event_id, d, time).await;
        let outcome = only(&report);
        assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{report:?}");
        (
            outcome.task_definition.clone().unwrap(),
            outcome
                .deployment_id
                .clone()
                .expect("UpdateService names the deployment it started"),
        )
    }

    /// Deploys the push and starts both tasks: ECS reports the deployment in progress, then
    /// completed. Its new revision and the rollback function's answers to those two events.
    async fn deploy_completed(
        &self,
        event_id: &str,
        d: char,
        time: &str,
    ) -> (String, Vec<(Value, Report)>) {
        let (revision, _) = self.deploy(event_id, d, time).await;
        self.start_tasks(2).await;
        let answered = self.deliver().await;
        assert_eq!(answered_names(&answered), [IN_PROGRESS, COMPLETED]);
        (revision, answered)
    }

    async fn ecs(&self, event: Value) -> Report {
        self.rollback
            .handle(event, &Invocation::default())
            .await
            .unwrap()
    }

    /// The events ECS emitted since the last call, in order.
    async fn take(&self) -> Vec<Value> {
        self.world.take_events().await
    }

    /// Hands every event ECS emitted since the last call to the rollback function, in order.
    async fn deliver(&self) -> Vec<(Value, Report)> {
        let mut answered = Vec::new();
        for event in self.take().await {
            let report = self.ecs(event.clone()).await;
            answered.push((event, report));
        }
        answered
    }

    async fn start_tasks(&self, n: u32) {
        self.world.start_tasks(CLUSTER, SERVICE, n).await;
    }

    async fn fail_tasks(&self, n: u32) {
        self.world.fail_tasks(CLUSTER, SERVICE, n).await;
    }

    async fn running(&self) -> String {
        self.bed.running(CLUSTER, SERVICE).await
    }

    /// The service's PRIMARY deployment, as ECS shows it.
    async fn primary(&self) -> Value {
        let view = self.world.service(CLUSTER, SERVICE).await;
        view["deployments"]
            .as_array()
            .and_then(|ds| ds.iter().find(|d| d["status"] == "PRIMARY"))
            .cloned()
            .unwrap_or_else(|| panic!("no PRIMARY deployment: {view:#}"))
    }

    /// The digest ECS resolved the followed container to in the PRIMARY deployment's service
    /// revision: what the service really runs.
    async fn digest_running(&self) -> Option<String> {
        let view = self.world.service(CLUSTER, SERVICE).await;
        let primary = self.primary().await;
        view["serviceRevisions"]
            .as_array()?
            .iter()
            .find(|r| r["serviceRevisionArn"] == primary["serviceRevisionArn"])?["containerImages"]
            .as_array()?
            .iter()
            .find(|c| c["containerName"] == CONTAINER)?["imageDigest"]
            .as_str()
            .map(str::to_string)
    }

    /// The revision `revision` is a pinned copy of (its `pushdeploy:pins` tag), if it is one.
    async fn pins(&self, revision: &str) -> Option<String> {
        let (_, tags) = self.bed.describe(revision).await;
        tags.iter()
            .find(|t| t.key() == Some("pushdeploy:pins"))
            .and_then(|t| t.value().map(str::to_string))
    }
}

fn only(report: &Report) -> &Outcome {
    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    &report.outcomes[0]
}

/// The event names, in order.
fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["detail"]["eventName"].as_str().unwrap_or("?"))
        .collect()
}

fn answered_names(answered: &[(Value, Report)]) -> Vec<&str> {
    answered
        .iter()
        .map(|(e, _)| e["detail"]["eventName"].as_str().unwrap_or("?"))
        .collect()
}

fn deployment_id(event: &Value) -> &str {
    event["detail"]["deploymentId"].as_str().unwrap_or("?")
}

fn reason(outcome: &Outcome) -> &str {
    outcome.reason.as_deref().unwrap_or_default()
}

/// EventBridge's standard Scheduled Event, as the sweep rule sends it, dated `time`.
fn sweep(id: &str, time: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": time, "region": "us-east-1", "resources": [], "detail": {}})
}

/// ECS's own event `genuine`, rewritten by someone allowed lambda:InvokeFunction to claim
/// `event_name` for the same deployment.
fn forged(genuine: &Value, event_name: &str, reason: &str) -> Value {
    let mut event = genuine.clone();
    event["id"] = json!(format!("forged-{event_name}"));
    event["detail"]["eventName"] = json!(event_name);
    event["detail"]["eventType"] = json!(if event_name == FAILED {
        "ERROR"
    } else {
        "INFO"
    });
    event["detail"]["reason"] = json!(reason);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_is_rolled_back_quarantined_and_a_new_digest_still_deploys() {
    let w = Rig::new().await;
    let (d1, d1_id) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    assert_eq!(w.running().await, d1);
    let started = w.deliver().await;
    assert_eq!(answered_names(&started), [IN_PROGRESS]);
    assert_eq!(deployment_id(&started[0].0), d1_id);
    assert_eq!(only(&started[0].1).outcome, OutcomeKind::Recorded);

    // Three tasks fail to start: the circuit breaker fails the deployment, and ECS says so.
    w.fail_tasks(3).await;
    let failed = w.take().await;
    assert_eq!(names(&failed), [FAILED]);
    assert_eq!(deployment_id(&failed[0]), d1_id);
    assert_eq!(w.primary().await["rolloutState"], "FAILED");
    let report = w.ecs(failed[0].clone()).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    // The revision that ran before names `web:latest` by tag: the rollback lands on a copy of
    // it pinned to the digest ECS resolved for it, not on the first revision itself (which
    // would resolve `latest` anew).
    let pinned = outcome.task_definition.clone().unwrap();
    assert_ne!(pinned, w.first);
    assert_eq!(w.pins(&pinned).await.as_deref(), Some(w.first.as_str()));
    assert_eq!(
        w.bed.image(&pinned, CONTAINER).await,
        format!("{REGISTRY}/web@{}", w.first_digest)
    );
    assert_eq!(
        outcome.previous_task_definition.as_deref(),
        Some(d1.as_str())
    );
    assert!(reason(outcome).contains("circuit breaker"), "{outcome:?}");
    assert_eq!(
        w.running().await,
        pinned,
        "back on (a pinned copy of) the revision that ran before"
    );
    assert_eq!(
        w.digest_running().await.as_deref(),
        Some(w.first_digest.as_str()),
        "ECS runs the digest that ran before"
    );
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), Some(&1));

    // The rollback's own deployment runs its tasks and completes.
    let rollback_id = outcome.deployment_id.clone().unwrap();
    w.start_tasks(2).await;
    let settled = w.deliver().await;
    assert_eq!(answered_names(&settled), [IN_PROGRESS, COMPLETED]);
    assert!(settled.iter().all(|(e, _)| deployment_id(e) == rollback_id));
    assert!(
        reason(only(&settled[1].1)).contains("last known good"),
        "{settled:?}"
    );

    // The same digest pushed again (another tag event, later): quarantined, ECS not touched.
    let again = w.push("push-1-again", '1', "2026-11-26T12:10:00Z").await;
    let outcome = only(&again);
    assert_eq!(outcome.outcome, OutcomeKind::Skipped);
    assert!(reason(outcome).starts_with("quarantined"), "{outcome:?}");
    assert_eq!(w.running().await, pinned);
    assert!(w.take().await.is_empty(), "no deployment started");

    // A new digest deploys as usual, to completion.
    let (d2, d2_id) = w.deploy("push-2", '2', "2026-11-26T12:15:00Z").await;
    assert_eq!(w.running().await, d2);
    w.start_tasks(2).await;
    let done = w.deliver().await;
    assert_eq!(answered_names(&done), [IN_PROGRESS, COMPLETED]);
    assert!(done.iter().all(|(e, _)| deployment_id(e) == d2_id));
    assert_eq!(
        w.digest_running().await.as_deref(),
        Some(digest('2').as_str())
    );

    // The ledger tells the story.
    let history = w.deployer.ledger().latest(SERVICE_ARN, 10).await.unwrap();
    let failed = history
        .iter()
        .find(|r| r.event_id == "push-1" && r.kind == Kind::Deploy)
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.deployment_id.as_deref(), Some(d1_id.as_str()));
    let rollback = history.iter().find(|r| r.kind == Kind::Rollback).unwrap();
    assert_eq!(
        (
            rollback.reverts.as_deref(),
            rollback.new_task_definition.as_deref(),
            rollback.deployment_id.as_deref(),
            rollback.status,
        ),
        (
            Some(failed.sk().as_str()),
            Some(pinned.as_str()),
            Some(rollback_id.as_str()),
            Status::Succeeded
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_goes_back_to_the_last_completed_revision_not_minus_one_nor_older() {
    let w = Rig::new().await;
    let (d1, first) = w
        .deploy_completed("push-1", '1', "2026-11-26T12:00:00Z")
        .await;
    assert_eq!(only(&first[1].1).outcome, OutcomeKind::Recorded);
    let (d2, second) = w
        .deploy_completed("push-2", '2', "2026-11-26T12:02:00Z")
        .await;
    assert!(
        reason(only(&second[1].1)).contains("last known good"),
        "{second:?}"
    );
    // A revision registered by hand in between, so "the revision before D3" is not D2's.
    w.bed
        .task_definition("web", &[(CONTAINER, &format!("{REGISTRY}/web:manual"))])
        .await;
    let (d3, d3_id) = w.deploy("push-3", '3', "2026-11-26T12:04:00Z").await;
    w.fail_tasks(3).await;
    let third = w.deliver().await;
    assert_eq!(answered_names(&third), [IN_PROGRESS, FAILED]);
    assert!(third.iter().all(|(e, _)| deployment_id(e) == d3_id));

    let report = &third[1].1;
    assert_eq!(only(report).outcome, OutcomeKind::RolledBack, "{report:?}");
    // D2 names its image by digest, so it is the target as it is: no pinned copy.
    assert_eq!(
        only(report).task_definition.as_deref(),
        Some(d2.as_str()),
        "{report:?}"
    );
    assert_eq!(w.running().await, d2, "the last COMPLETED revision, D2's");
    assert_ne!(w.running().await, d1, "not an older COMPLETED one");
    assert_eq!(
        w.digest_running().await.as_deref(),
        Some(digest('2').as_str())
    );
    let revisions = w.bed.revisions("web").await;
    let minus_one = &revisions[revisions.iter().position(|r| *r == d3).unwrap() - 1];
    assert_ne!(&d2, minus_one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollback_is_never_rolled_back_again() {
    let w = Rig::new().await;
    w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    w.fail_tasks(3).await;
    let failed = w.deliver().await;
    assert_eq!(answered_names(&failed), [IN_PROGRESS, FAILED]);
    let rolled_back = only(&failed[1].1);
    assert_eq!(rolled_back.outcome, OutcomeKind::RolledBack);
    // A pinned copy of the first revision (it names `web:latest` by tag), not the first itself.
    let pinned = rolled_back.task_definition.clone().unwrap();
    assert_eq!(w.pins(&pinned).await.as_deref(), Some(w.first.as_str()));
    assert_eq!(w.running().await, pinned);
    // ECS names the rollback's deployment by the id UpdateService returned, which pushdeploy
    // recorded: the deployment ECS now shows as PRIMARY.
    let rollback_id = rolled_back.deployment_id.clone().unwrap();
    assert_eq!(w.primary().await["id"], rollback_id.as_str());

    // The rollback deployment fails too: ECS starts it, then its tasks fail to start.
    w.fail_tasks(3).await;
    let events = w.take().await;
    assert_eq!(names(&events), [IN_PROGRESS, FAILED]);
    assert!(events.iter().all(|e| deployment_id(e) == rollback_id));
    let in_progress = w.ecs(events[0].clone()).await;
    assert_eq!(only(&in_progress).outcome, OutcomeKind::Recorded);
    let report = w.ecs(events[1].clone()).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::NeedsHuman, "{outcome:?}");
    assert!(
        reason(outcome).contains("does not roll back a rollback"),
        "{outcome:?}"
    );
    assert_eq!(
        report.aws_calls.get("ECS.UpdateService"),
        None,
        "no further UpdateService"
    );
    assert_eq!(w.running().await, pinned);
    assert_eq!(w.primary().await["rolloutState"], "FAILED");
    let history = w.deployer.ledger().latest(SERVICE_ARN, 10).await.unwrap();
    assert_eq!(
        history
            .iter()
            .find(|r| r.kind == Kind::Rollback)
            .unwrap()
            .status,
        Status::NeedsHuman
    );
    // Delivered again (EventBridge delivers at least once): still nothing.
    let again = w.ecs(events[1].clone()).await;
    assert_eq!(again.aws_calls.get("ECS.UpdateService"), None);
    assert!(w.take().await.is_empty(), "no deployment started");
    assert_eq!(w.running().await, pinned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_pushdeploy_did_not_start_and_services_changed_by_hand_are_untouched() {
    let w = Rig::new().await;
    // Nothing of pushdeploy's: someone forces a new deployment of the first revision, and it
    // fails.
    w.bed
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    w.fail_tasks(3).await;
    let theirs = w.deliver().await;
    assert_eq!(answered_names(&theirs), [IN_PROGRESS, FAILED]);
    for (event, report) in &theirs {
        let outcome = only(report);
        assert_eq!(outcome.outcome, OutcomeKind::Recorded, "{event}");
        assert!(
            reason(outcome).starts_with("not a deployment pushdeploy started"),
            "{outcome:?}"
        );
        assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);
    }
    assert_eq!(w.running().await, w.first);
    assert!(w.take().await.is_empty(), "no deployment started");

    // pushdeploy's deployment, linked to its ECS id by UpdateService's answer; the
    // IN_PROGRESS event ECS sends names the same id...
    let (d1, d1_id) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    let started = w.deliver().await;
    assert_eq!(answered_names(&started), [IN_PROGRESS]);
    assert_eq!(deployment_id(&started[0].0), d1_id);
    let linked = w
        .deployer
        .ledger()
        .latest(SERVICE_ARN, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(linked.deployment_id.as_deref(), Some(d1_id.as_str()));
    // ...then it fails, but before the FAILED event reaches pushdeploy someone moves the
    // service by hand (a held-back delivery: EventBridge gives no delivery time).
    w.fail_tasks(3).await;
    let late = w.take().await;
    assert_eq!(names(&late), [FAILED]);
    assert_eq!(deployment_id(&late[0]), d1_id);
    let manual = w
        .bed
        .task_definition("web", &[(CONTAINER, &format!("{REGISTRY}/web:hotfix"))])
        .await;
    w.bed
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&manual)
        .send()
        .await
        .unwrap();
    let report = w.ecs(late[0].clone()).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::Recorded, "{outcome:?}");
    assert!(reason(outcome).contains("changed since"), "{outcome:?}");
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);
    // The person's deployment is theirs, not pushdeploy's.
    let by_hand = w.deliver().await;
    assert_eq!(answered_names(&by_hand), [IN_PROGRESS]);
    assert!(reason(only(&by_hand[0].1)).starts_with("not a deployment pushdeploy started"));
    assert_eq!(w.running().await, manual, "the human's change wins");
    assert_ne!(manual, d1);
    assert!(w.take().await.is_empty(), "no deployment started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_stops_progressing_is_rolled_back_by_the_sweep() {
    let w = Rig::new().await;
    let (d1, _) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    // One of its two tasks starts, the other never does: ECS says nothing more.
    w.start_tasks(1).await;
    let started = w.deliver().await;
    assert_eq!(answered_names(&started), [IN_PROGRESS]);
    assert_eq!(w.primary().await["rolloutState"], "IN_PROGRESS");

    // Within the timeout (60 s here): nothing to do.
    let early = w.ecs(sweep("sweep-1", &w.world.now().await)).await;
    assert!(early.outcomes.is_empty(), "{early:?}");
    assert_eq!(w.running().await, d1);

    // Past it (on ECS's clock), still IN_PROGRESS and no event; but one task has started since
    // UpdateService: progress, so the sweep looks again one timeout later.
    w.advance(120).await;
    assert!(w.take().await.is_empty(), "ECS reported nothing");
    assert_eq!(w.primary().await["rolloutState"], "IN_PROGRESS");
    let progressing = w.ecs(sweep("sweep-1", &w.world.now().await)).await;
    let outcome = only(&progressing);
    assert_eq!(outcome.outcome, OutcomeKind::Recorded, "{outcome:?}");
    assert!(reason(outcome).contains("still progressing"), "{outcome:?}");
    assert_eq!(w.running().await, d1);

    // Another timeout on, no more tasks: stuck. The deployment is failed, the service rolled
    // back, the digest quarantined, and the reason says what ECS showed.
    w.advance(120).await;
    let late = w.ecs(sweep("sweep-1", &w.world.now().await)).await;
    let outcome = only(&late);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    assert!(
        reason(outcome).contains("no progress since the last look")
            && reason(outcome).contains("1 of 2 tasks running")
            && reason(outcome).contains("past PUSHDEPLOY_DEPLOY_TIMEOUT (60 s)"),
        "{outcome:?}"
    );
    // The first revision names `web:latest` by tag: back on a pinned copy of it.
    let pinned = outcome.task_definition.clone().unwrap();
    assert_eq!(w.pins(&pinned).await.as_deref(), Some(w.first.as_str()));
    assert_eq!(w.running().await, pinned);
    assert_eq!(
        w.digest_running().await.as_deref(),
        Some(w.first_digest.as_str())
    );
    assert_eq!(late.aws_calls.get("ECS.UpdateService"), Some(&1));
    let again = w.push("push-1-again", '1', "2026-11-26T12:30:00Z").await;
    assert!(reason(only(&again)).starts_with("quarantined"));
}

/// With `PUSHDEPLOY_CLUSTERS` set, the rollback rule still delivers every cluster's deployment
/// events, and the role's `ecs:cluster` condition denies DescribeServices on the others: an
/// event of another cluster is a skip that costs no AWS call, not a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_a_cluster_outside_pushdeploy_clusters_costs_no_aws_call() {
    let bed = TestBed::start().await;
    let mut config = bed.config();
    config.clusters = Some(["prod".to_string()].into_iter().collect());
    let rollback = RollbackHandler::new(&bed.sdk, config);
    let event = json!({
        "version": "0", "id": "ev-other", "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": "2026-11-26T12:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:ecs:us-east-1:123456789012:service/staging/web"],
        "detail": {"eventType": "ERROR", "eventName": "SERVICE_DEPLOYMENT_FAILED",
                   "deploymentId": "ecs-svc/1234567890123456789", "updatedAt": "2026-11-26T12:00:00Z",
                   "reason": "ECS deployment circuit breaker: task failed to start."}
    });
    let report = rollback
        .handle(event, &Invocation::default())
        .await
        .expect("no failure, so no Lambda retry");
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::Skipped, "{outcome:?}");
    assert_eq!(
        outcome.skip_reason,
        Some(pushdeploy::outcome::SkipReason::ClusterNotAllowed)
    );
    assert!(report.aws_calls.is_empty(), "{:?}", report.aws_calls);
}

/// Issue 14, item 2. A `Scheduled Event` dated 2999 against a deployment that ECS shows rolling
/// out healthily (just started, no task up yet, nothing failed). Before: the sweep measured its
/// cutoff from that `time`, found the deployment 973 years past the deploy timeout with no
/// progress, failed it, rolled the service back and quarantined the digest. Now: refused with
/// its reason, after one ledger read (which sets the clock from AWS's answer) and no other AWS
/// call; and a sweep a few minutes ahead (within the clocks' tolerance) is measured from AWS's
/// clock, so it finds nothing past the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sweep_dated_2999_is_refused_and_fails_nothing() {
    let w = Rig::new().await;
    let (d1, d1_id) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    let started = w.deliver().await;
    assert_eq!(answered_names(&started), [IN_PROGRESS]);
    let primary = w.primary().await;
    assert_eq!(
        (
            &primary["id"],
            &primary["rolloutState"],
            &primary["failedTasks"]
        ),
        (&json!(d1_id), &json!("IN_PROGRESS"), &json!(0)),
        "healthy and young"
    );

    let report = w.ecs(sweep("forged-sweep", "2999-01-01T00:00:00Z")).await;
    assert!(report.outcomes.is_empty(), "nothing moved: {report:?}");
    let why = report.reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("2999-01-01T00:00:00Z") && why.contains("ahead of AWS's clock"),
        "{report:?}"
    );
    // One read of the ledger, which also sets the clock from AWS's answer; nothing else.
    let calls: Vec<&String> = report.aws_calls.keys().collect();
    assert_eq!(calls, ["DynamoDB.Query"], "{:?}", report.aws_calls);

    // Four minutes ahead passes as clock skew, but the cutoff is the clock's: the deployment
    // started seconds ago, within the 60 s timeout.
    let ahead = chrono::DateTime::parse_from_rfc3339(&w.world.now().await).unwrap()
        + chrono::Duration::minutes(4);
    let report = w.ecs(sweep("sweep-ahead", &ahead.to_rfc3339())).await;
    assert!(report.outcomes.is_empty(), "{report:?}");

    // Nothing moved: ECS runs the deployment as before, the ledger still follows it, the
    // digest is not quarantined.
    assert_eq!(w.running().await, d1);
    assert!(w.take().await.is_empty(), "no deployment started");
    let history = w.deployer.ledger().latest(SERVICE_ARN, 10).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].status, Status::Deployed);
    let quarantined = w
        .deployer
        .ledger()
        .quarantined(SERVICE_ARN, &digest('1'))
        .await
        .unwrap();
    assert_eq!(quarantined, None);

    // The deployment completes as it was going to.
    w.start_tasks(2).await;
    let done = w.deliver().await;
    assert_eq!(answered_names(&done), [COMPLETED]);
    assert!(
        reason(only(&done[0].1)).contains("last known good"),
        "{done:?}"
    );
}

/// Issue 14, item 2. A COMPLETED for a deployment that ECS shows still rolling out. Before: the
/// ledger took it as the service's last known good, and when the deployment then really
/// failed, the FAILED found it "already recorded as succeeded": no rollback at all. Now: not
/// recorded, one line says what the event claimed and what ECS shows, and the real failure
/// rolls back to the real last known good revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_completed_is_not_the_last_known_good_and_the_real_failure_rolls_back() {
    let w = Rig::new().await;
    let (d1, _) = w
        .deploy_completed("push-1", '1', "2026-11-26T12:00:00Z")
        .await;
    let (d2, d2_id) = w.deploy("push-2", '2', "2026-11-26T12:02:00Z").await;
    let started = w.deliver().await;
    assert_eq!(answered_names(&started), [IN_PROGRESS]);
    assert_eq!(w.primary().await["rolloutState"], "IN_PROGRESS");

    let claim = forged(
        &started[0].0,
        COMPLETED,
        &format!("ECS deployment {d2_id} completed."),
    );
    let report = w.ecs(claim).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::Skipped, "{outcome:?}");
    assert!(
        reason(outcome).contains(&format!("the event says deployment {d2_id} is COMPLETED"))
            && reason(outcome).contains(&format!("{d2_id} PRIMARY, rollout IN_PROGRESS")),
        "{outcome:?}"
    );
    let history = w.deployer.ledger().latest(SERVICE_ARN, 10).await.unwrap();
    let pushed = |event_id: &str| {
        history
            .iter()
            .find(|r| r.event_id == event_id)
            .map(|r| r.status)
    };
    assert_eq!(pushed("push-2"), Some(Status::Deployed), "not succeeded");
    assert_eq!(pushed("push-1"), Some(Status::Succeeded));

    // Then push-2's tasks fail: ECS fails the deployment, and the rollback lands on D1.
    w.fail_tasks(3).await;
    let failed = w.deliver().await;
    assert_eq!(answered_names(&failed), [FAILED]);
    let outcome = only(&failed[0].1);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    assert_eq!(outcome.task_definition.as_deref(), Some(d1.as_str()));
    assert_eq!(w.running().await, d1, "the real last known good revision");
    assert_ne!(w.running().await, d2);
    assert_eq!(
        w.digest_running().await.as_deref(),
        Some(digest('1').as_str())
    );
}

/// Issue 14, item 2. A FAILED for a deployment that ECS shows rolling out healthily (one of
/// two tasks up, none failed). Before: the service was rolled back (UpdateService to a pinned
/// copy of the revision before) and the good digest quarantined. Now: nothing moved, and the
/// deployment completes and is recorded as it was going to be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_failed_for_a_healthy_deployment_moves_nothing() {
    let w = Rig::new().await;
    let (d1, d1_id) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    let started = w.deliver().await;
    assert_eq!(answered_names(&started), [IN_PROGRESS]);
    w.start_tasks(1).await;
    assert!(w.take().await.is_empty(), "ECS reported nothing more");
    assert_eq!(w.primary().await["rolloutState"], "IN_PROGRESS");

    let claim = forged(
        &started[0].0,
        FAILED,
        "ECS deployment circuit breaker: task failed to start.",
    );
    let report = w.ecs(claim).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::Skipped, "{outcome:?}");
    assert!(
        reason(outcome).contains(&format!("the event says deployment {d1_id} is FAILED"))
            && reason(outcome).contains("rollout IN_PROGRESS, 1 of 2 tasks running, 0 failed"),
        "{outcome:?}"
    );
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);
    assert_eq!(w.running().await, d1);
    assert!(w.take().await.is_empty(), "no deployment started");
    let quarantined = w
        .deployer
        .ledger()
        .quarantined(SERVICE_ARN, &digest('1'))
        .await
        .unwrap();
    assert_eq!(quarantined, None);
    let record = w
        .deployer
        .ledger()
        .latest(SERVICE_ARN, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.status, Status::Deployed);

    w.start_tasks(1).await;
    let done = w.deliver().await;
    assert_eq!(answered_names(&done), [COMPLETED]);
    assert!(
        reason(only(&done[0].1)).contains("last known good"),
        "{done:?}"
    );
    assert_eq!(w.running().await, d1);
}

/// Anyone who may tag the service could otherwise leave a failed deployment running: a
/// `pushdeploy:dry-run` tag added after pushdeploy started the deployment does not stop its
/// rollback (the ledger records it, so it was made for real).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_tag_added_after_the_deployment_started_does_not_stop_its_rollback() {
    let w = Rig::new().await;
    let (d1, d1_id) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    assert_eq!(answered_names(&w.deliver().await), [IN_PROGRESS]);

    w.bed
        .ecs
        .tag_resource()
        .resource_arn(SERVICE_ARN)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("pushdeploy:dry-run")
                .value("true")
                .build(),
        )
        .send()
        .await
        .expect("tag the service");

    w.fail_tasks(3).await;
    let failed = w.take().await;
    assert_eq!(names(&failed), [FAILED]);
    assert_eq!(deployment_id(&failed[0]), d1_id);
    let report = w.ecs(failed[0].clone()).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    let pinned = outcome.task_definition.clone().unwrap();
    assert_eq!(w.running().await, pinned, "ECS was told to go back");
    assert_ne!(pinned, d1);
    assert_eq!(
        w.digest_running().await.as_deref(),
        Some(w.first_digest.as_str())
    );
    let quarantined = w
        .deployer
        .ledger()
        .quarantined(SERVICE_ARN, &digest('1'))
        .await
        .unwrap();
    assert!(quarantined.is_some(), "the failed digest is quarantined");
}

/// Tags are anyone's to write who may register a revision: a revision planted in the family
/// with this rollback's `pushdeploy:pins` and event-id tags, but another image, is not adopted
/// as the pinned copy; the rollback registers its own and lands on the digest that ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_revision_tagged_as_the_pinned_copy_is_not_adopted() {
    let w = Rig::new().await;
    let (d1, _) = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    assert_eq!(answered_names(&w.deliver().await), [IN_PROGRESS]);
    w.fail_tasks(3).await;
    let failed = w.take().await;
    assert_eq!(names(&failed), [FAILED]);

    let evil = format!("{REGISTRY}/web@{}", digest('e'));
    let tag = |k: &str, v: &str| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build();
    let planted = w
        .bed
        .ecs
        .register_task_definition()
        .family("web")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name(CONTAINER)
                .image(&evil)
                .memory(128)
                .essential(true)
                .build(),
        )
        .tags(tag("pushdeploy:pins", &w.first))
        .tags(tag("pushdeploy:event-id", "push-1"))
        .send()
        .await
        .expect("plant a revision")
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .unwrap();

    let report = w.ecs(failed[0].clone()).await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    let pinned = outcome.task_definition.clone().unwrap();
    assert_ne!(pinned, planted, "the planted revision is not adopted");
    assert_ne!(pinned, d1);
    assert_eq!(
        w.bed.image(&pinned, CONTAINER).await,
        format!("{REGISTRY}/web@{}", w.first_digest)
    );
    assert_eq!(w.running().await, pinned);
    assert_eq!(report.aws_calls.get("ECS.RegisterTaskDefinition"), Some(&1));
}
