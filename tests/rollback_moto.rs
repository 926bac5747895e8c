//! The rollback function against moto. moto never starts ECS deployments, so it never emits
//! deployment events and UpdateService returns no new deployment id: these tests deliver the
//! ECS events themselves, and pushdeploy matches them to its ledger by task definition (the
//! fallback for a deployment id it never learned). What moto cannot hold, a service's
//! `deploymentConfiguration` (circuit breaker, alarms), is in tests/rollback_mocks.rs.

mod support;

use pushdeploy::deploy::{Deployer, Invocation, OutcomeKind, Report};
use pushdeploy::ledger::{Kind, Status};
use pushdeploy::rollback::RollbackHandler;
use serde_json::{json, Value};
use support::{digest, push_event, TestBed, REGISTRY};

const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

fn deployment_event(id: &str, name: &str, deployment_id: &str, time: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
        "account": "123456789012", "time": time, "region": "us-east-1", "resources": [SERVICE_ARN],
        "detail": {
            "eventType": if name.ends_with("FAILED") { "ERROR" } else { "INFO" },
            "eventName": name, "deploymentId": deployment_id, "updatedAt": time,
            "reason": if name.ends_with("FAILED") { "ECS deployment circuit breaker: task failed to start." } else { "" }
        }
    })
}

struct World {
    bed: TestBed,
    deployer: Deployer,
    rollback: RollbackHandler,
    first: String,
}

impl World {
    async fn new() -> World {
        let bed = TestBed::start().await;
        bed.cluster("prod").await;
        let first = bed
            .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
            .await;
        bed.service("prod", "web", &first, &[("pushdeploy:repository", "web")])
            .await;
        let mut config = bed.config();
        config.deploy_timeout = std::time::Duration::from_secs(60);
        World {
            deployer: Deployer::new(&bed.sdk, config.clone()),
            rollback: RollbackHandler::new(&bed.sdk, config),
            bed,
            first,
        }
    }

    async fn push(&self, event_id: &str, d: char, time: &str) -> Report {
        self.deployer
            .handle(
                push_event(event_id, "web", "latest", &digest(d), time),
                &Invocation::default(),
            )
            .await
            .unwrap()
    }

    async fn deploy(&self, event_id: &str, d: char, time: &str) -> String {
        let report = self.push(event_id, d, time).await;
        assert_eq!(
            report.outcomes[0].outcome,
            OutcomeKind::Deployed,
            "{report:?}"
        );
        report.outcomes[0].task_definition.clone().unwrap()
    }

    async fn ecs(&self, event: Value) -> Report {
        self.rollback
            .handle(event, &Invocation::default())
            .await
            .unwrap()
    }

    async fn running(&self) -> String {
        self.bed.running("prod", "web").await
    }
}

fn only(report: &Report) -> &pushdeploy::deploy::Outcome {
    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    &report.outcomes[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_is_rolled_back_quarantined_and_a_new_digest_still_deploys() {
    let w = World::new().await;
    let d1 = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    assert_eq!(w.running().await, d1);

    let report = w
        .ecs(deployment_event(
            "ecs-1",
            "SERVICE_DEPLOYMENT_FAILED",
            "ecs-svc/d1",
            "2026-11-26T12:05:00Z",
        ))
        .await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    assert_eq!(outcome.task_definition.as_deref(), Some(w.first.as_str()));
    assert_eq!(
        outcome.previous_task_definition.as_deref(),
        Some(d1.as_str())
    );
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("circuit breaker"),
        "{outcome:?}"
    );
    assert_eq!(
        w.running().await,
        w.first,
        "back on the revision that ran before"
    );
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), Some(&1));

    // The same digest pushed again (another tag event, later): quarantined.
    let again = w.push("push-1-again", '1', "2026-11-26T12:10:00Z").await;
    let outcome = only(&again);
    assert_eq!(outcome.outcome, OutcomeKind::Skipped);
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .starts_with("quarantined"),
        "{outcome:?}"
    );
    assert_eq!(w.running().await, w.first);

    // A new digest deploys as usual.
    let d2 = w.deploy("push-2", '2', "2026-11-26T12:15:00Z").await;
    assert_eq!(w.running().await, d2);

    // The ledger tells the story.
    let history = w.deployer.ledger().latest(SERVICE_ARN, 10).await.unwrap();
    let failed = history
        .iter()
        .find(|r| r.event_id == "push-1" && r.kind == Kind::Deploy)
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    let rollback = history.iter().find(|r| r.kind == Kind::Rollback).unwrap();
    assert_eq!(
        (
            rollback.reverts.as_deref(),
            rollback.new_task_definition.as_deref()
        ),
        (Some(failed.sk().as_str()), Some(w.first.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_goes_back_to_the_last_completed_revision_not_minus_one_nor_older() {
    let w = World::new().await;
    w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    assert_eq!(
        only(
            &w.ecs(deployment_event(
                "ecs-1",
                "SERVICE_DEPLOYMENT_COMPLETED",
                "ecs-svc/d1",
                "2026-11-26T12:01:00Z"
            ))
            .await
        )
        .outcome,
        OutcomeKind::Recorded
    );
    let d2 = w.deploy("push-2", '2', "2026-11-26T12:02:00Z").await;
    let completed = w
        .ecs(deployment_event(
            "ecs-2",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "ecs-svc/d2",
            "2026-11-26T12:03:00Z",
        ))
        .await;
    assert!(
        only(&completed)
            .reason
            .as_deref()
            .unwrap()
            .contains("last known good"),
        "{completed:?}"
    );
    // A revision registered by hand in between, so "the revision before D3" is not D2's.
    w.bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:manual"))])
        .await;
    let d3 = w.deploy("push-3", '3', "2026-11-26T12:04:00Z").await;

    let report = w
        .ecs(deployment_event(
            "ecs-3",
            "SERVICE_DEPLOYMENT_FAILED",
            "ecs-svc/d3",
            "2026-11-26T12:05:00Z",
        ))
        .await;
    assert_eq!(only(&report).outcome, OutcomeKind::RolledBack, "{report:?}");
    assert_eq!(w.running().await, d2, "the last COMPLETED revision, D2's");
    let revisions = w.bed.revisions("web").await;
    let minus_one = &revisions[revisions.iter().position(|r| *r == d3).unwrap() - 1];
    assert_ne!(&d2, minus_one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollback_is_never_rolled_back_again() {
    let w = World::new().await;
    w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    let rolled_back = w
        .ecs(deployment_event(
            "ecs-1",
            "SERVICE_DEPLOYMENT_FAILED",
            "ecs-svc/d1",
            "2026-11-26T12:05:00Z",
        ))
        .await;
    assert_eq!(only(&rolled_back).outcome, OutcomeKind::RolledBack);
    assert_eq!(w.running().await, w.first);
    // ECS names the rollback's deployment in its events by the id UpdateService returned.
    // (moto returns its service's first deployment, whose task definition happens to be the
    // rollback target, so pushdeploy records that id; with none, the task definition would do.)
    let rollback_id = only(&rolled_back)
        .deployment_id
        .clone()
        .unwrap_or_else(|| "ecs-svc/rollback".into());

    // The rollback deployment fails too.
    let report = w
        .ecs(deployment_event(
            "ecs-2",
            "SERVICE_DEPLOYMENT_FAILED",
            &rollback_id,
            "2026-11-26T12:10:00Z",
        ))
        .await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::NeedsHuman, "{outcome:?}");
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("does not roll back a rollback"),
        "{outcome:?}"
    );
    assert_eq!(
        report.aws_calls.get("ECS.UpdateService"),
        None,
        "no further UpdateService"
    );
    assert_eq!(w.running().await, w.first);
    let history = w.deployer.ledger().latest(SERVICE_ARN, 10).await.unwrap();
    assert_eq!(
        history
            .iter()
            .find(|r| r.kind == Kind::Rollback)
            .unwrap()
            .status,
        Status::NeedsHuman
    );
    // Delivered again: still nothing.
    let again = w
        .ecs(deployment_event(
            "ecs-2",
            "SERVICE_DEPLOYMENT_FAILED",
            &rollback_id,
            "2026-11-26T12:10:00Z",
        ))
        .await;
    assert_eq!(again.aws_calls.get("ECS.UpdateService"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_pushdeploy_did_not_start_and_services_changed_by_hand_are_untouched() {
    let w = World::new().await;
    // Nothing of pushdeploy's: an ECS deployment of the first revision fails.
    let report = w
        .ecs(deployment_event(
            "ecs-0",
            "SERVICE_DEPLOYMENT_FAILED",
            "ecs-svc/theirs",
            "2026-11-26T11:00:00Z",
        ))
        .await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::Recorded);
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .starts_with("not a deployment pushdeploy started"),
        "{outcome:?}"
    );
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);
    assert_eq!(w.running().await, w.first);

    // pushdeploy's deployment, linked to its ECS id by the IN_PROGRESS event...
    let d1 = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    w.ecs(deployment_event(
        "ecs-1",
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "ecs-svc/d1",
        "2026-11-26T12:00:05Z",
    ))
    .await;
    let linked = w
        .deployer
        .ledger()
        .latest(SERVICE_ARN, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(linked.deployment_id.as_deref(), Some("ecs-svc/d1"));
    // ...then someone moves the service by hand, and only then ECS reports the failure.
    let manual = w
        .bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:hotfix"))])
        .await;
    w.bed
        .ecs
        .update_service()
        .cluster("prod")
        .service("web")
        .task_definition(&manual)
        .send()
        .await
        .unwrap();
    let report = w
        .ecs(deployment_event(
            "ecs-2",
            "SERVICE_DEPLOYMENT_FAILED",
            "ecs-svc/d1",
            "2026-11-26T12:05:00Z",
        ))
        .await;
    let outcome = only(&report);
    assert_eq!(outcome.outcome, OutcomeKind::Recorded, "{outcome:?}");
    assert!(
        outcome.reason.as_deref().unwrap().contains("changed since"),
        "{outcome:?}"
    );
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);
    assert_eq!(w.running().await, manual, "the human's change wins");
    assert_ne!(manual, d1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_never_completes_is_rolled_back_by_the_sweep() {
    let w = World::new().await;
    let d1 = w.deploy("push-1", '1', "2026-11-26T12:00:00Z").await;
    let sweep = |time: String| {
        json!({"version": "0", "id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": time, "region": "us-east-1", "resources": [], "detail": {}})
    };
    let now = chrono::Utc::now();

    // Within the timeout (60 s here): nothing to do.
    let early = w
        .ecs(sweep(pushdeploy::event::timestamp_text(
            &(now + chrono::Duration::seconds(30)),
        )))
        .await;
    assert!(early.outcomes.is_empty(), "{early:?}");
    assert_eq!(w.running().await, d1);

    // Past it: the deployment is failed, the service rolled back, the digest quarantined.
    let late = w
        .ecs(sweep(pushdeploy::event::timestamp_text(
            &(now + chrono::Duration::seconds(120)),
        )))
        .await;
    let outcome = only(&late);
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("did not complete within 60 s"),
        "{outcome:?}"
    );
    assert_eq!(w.running().await, w.first);
    let again = w.push("push-1-again", '1', "2026-11-26T12:30:00Z").await;
    assert!(only(&again)
        .reason
        .as_deref()
        .unwrap()
        .starts_with("quarantined"));
}
