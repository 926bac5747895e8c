use super::*;
use aws_sdk_ecs::types::{DeploymentAlarms, DeploymentCircuitBreaker, DeploymentConfiguration};

const SERVICE: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

fn td(n: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/web:{n}")
}

fn record(
    order: &str,
    kind: Kind,
    status: Status,
    previous: u32,
    new: u32,
    deployment_id: Option<&str>,
) -> DeploymentRecord {
    DeploymentRecord {
        kind,
        reverts: None,
        service_arn: SERVICE.into(),
        cluster: "prod".into(),
        service: "web".into(),
        event_id: format!("ev-{order}"),
        order_key: format!("2026-11-26T12:00:0{order}Z#ev-{order}"),
        repository: "web".into(),
        tag: "latest".into(),
        digest: format!("sha256:{}", order.repeat(64)),
        pushed_at: format!("2026-11-26T12:00:0{order}Z"),
        container: "app".into(),
        previous_task_definition: td(previous),
        new_task_definition: Some(td(new)),
        deployment_id: deployment_id.map(Into::into),
        previous_images: None,
        running_at_last_sweep: None,
        service_deployment_arn: None,
        codedeploy_deployment_id: None,
        awaits_ecs_rollback: false,
        status,
        reason: None,
        created_at: "t".into(),
        updated_at: "t".into(),
    }
}

fn service(
    running: u32,
    listed: &[(&str, u32)],
    config: Option<DeploymentConfiguration>,
) -> Service {
    let mut b = Service::builder()
        .service_arn(SERVICE)
        .task_definition(td(running))
        .set_deployment_configuration(config);
    for (id, n) in listed {
        b = b.deployments(
            aws_sdk_ecs::types::Deployment::builder()
                .id(*id)
                .task_definition(td(*n))
                .build(),
        );
    }
    b.build()
}

#[test]
fn finds_by_deployment_id_then_by_task_definition() {
    let history = [
        record("3", Kind::Deploy, Status::Deployed, 2, 3, None),
        record(
            "2",
            Kind::Deploy,
            Status::Succeeded,
            1,
            2,
            Some("ecs-svc/2"),
        ),
    ];
    assert_eq!(
        find_deployment(&history, "ecs-svc/2", &service(3, &[], None))
            .unwrap()
            .event_id,
        "ev-2"
    );
    // ECS lists the deployment: its task definition says which record.
    assert_eq!(
        find_deployment(
            &history,
            "ecs-svc/3",
            &service(2, &[("ecs-svc/3", 3)], None)
        )
        .unwrap()
        .event_id,
        "ev-3"
    );
    // ECS no longer lists it: the in-flight record of the revision the service runs.
    assert_eq!(
        find_deployment(
            &history,
            "ecs-svc/3",
            &service(3, &[("ecs-svc/0", 1)], None)
        )
        .unwrap()
        .event_id,
        "ev-3"
    );
    // Someone else's deployment of another revision: not ours.
    assert_eq!(
        find_deployment(
            &history,
            "ecs-svc/9",
            &service(9, &[("ecs-svc/9", 9)], None)
        ),
        None
    );
    assert_eq!(
        find_deployment(&history, "ecs-svc/9", &service(7, &[], None)),
        None
    );
}

#[test]
fn a_failure_rolls_back_to_the_last_completed_revision_not_minus_one() {
    let history = [
        record("4", Kind::Deploy, Status::Deployed, 3, 4, None),
        record("3", Kind::Deploy, Status::Failed, 2, 3, None),
        record("2", Kind::Deploy, Status::Succeeded, 1, 2, None),
        record("1", Kind::Deploy, Status::Succeeded, 0, 1, None),
    ];
    match on_failure(&history[0], &service(4, &[], None), &history) {
        FailureAction::RollBack { target, .. } => assert_eq!(target, td(2)),
        other => panic!("{other:?}"),
    }
    // With nothing completed, the revision that ran before.
    match on_failure(&history[0], &service(4, &[], None), &history[..2]) {
        FailureAction::RollBack { target, why } => {
            assert_eq!((target, why.contains("before")), (td(3), true))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rollbacks_duplicates_native_rollback_and_manual_changes_are_left_alone() {
    let failed = record("4", Kind::Deploy, Status::Deployed, 3, 4, None);
    let rollback = record("5", Kind::Rollback, Status::Deployed, 4, 2, None);
    assert!(matches!(
        on_failure(&rollback, &service(2, &[], None), &[]),
        FailureAction::NeedsHuman(_)
    ));
    let settled = DeploymentRecord {
        status: Status::Failed,
        ..failed.clone()
    };
    assert!(matches!(
        on_failure(&settled, &service(4, &[], None), &[]),
        FailureAction::AlreadySettled(_)
    ));
    assert!(
        matches!(on_failure(&failed, &service(7, &[], None), &[]), FailureAction::ChangedSince(ref r) if r.contains(&td(7)))
    );
    let breaker = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .build();
    assert!(
        matches!(on_failure(&failed, &service(4, &[], Some(breaker)), &[]), FailureAction::EcsRollsBack(ref r) if r.contains("circuit breaker"))
    );
    let alarms = DeploymentConfiguration::builder()
        .alarms(
            DeploymentAlarms::builder()
                .enable(true)
                .rollback(true)
                .alarm_names("5xx")
                .build()
                .unwrap(),
        )
        .build();
    assert!(
        matches!(on_failure(&failed, &service(4, &[], Some(alarms)), &[]), FailureAction::EcsRollsBack(ref r) if r.contains("alarm"))
    );
    let breaker_without_rollback = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(false)
                .build(),
        )
        .build();
    assert!(matches!(
        on_failure(
            &failed,
            &service(4, &[], Some(breaker_without_rollback)),
            &[]
        ),
        FailureAction::RollBack { .. }
    ));
}

/// A service whose deployments are (id, revision, status, rollout state).
fn deployments(listed: &[(&str, u32, &str, DeploymentRolloutState)]) -> Service {
    let mut b = Service::builder().service_arn(SERVICE);
    for (id, n, status, state) in listed {
        b = b.deployments(
            aws_sdk_ecs::types::Deployment::builder()
                .id(*id)
                .task_definition(td(*n))
                .status(*status)
                .rollout_state(state.clone())
                .build(),
        );
    }
    b.build()
}

#[test]
fn what_ecs_shows_settles_a_deployment_in_flight() {
    use DeploymentRolloutState::{Completed, Failed, InProgress};
    let ours = record("1", Kind::Deploy, Status::Deployed, 1, 2, Some("ecs-svc/2"));
    let shows = |listed| ecs_shows(&ours, &deployments(listed));

    assert_eq!(
        shows(&[("ecs-svc/2", 2, "PRIMARY", InProgress)]),
        EcsShows::Primary
    );
    assert_eq!(
        shows(&[("ecs-svc/2", 2, "PRIMARY", Completed)]),
        EcsShows::Completed
    );
    assert_eq!(
        shows(&[
            ("ecs-svc/3", 1, "PRIMARY", InProgress),
            ("ecs-svc/2", 2, "ACTIVE", Failed)
        ]),
        EcsShows::Failed
    );
    // Completed, then a newer deployment came: still completed.
    assert_eq!(
        shows(&[
            ("ecs-svc/3", 3, "PRIMARY", InProgress),
            ("ecs-svc/2", 2, "ACTIVE", Completed)
        ]),
        EcsShows::Completed
    );
    // Replaced while still rolling out, or gone from the list: superseded, never failed.
    let EcsShows::Replaced(why) = shows(&[
        ("ecs-svc/3", 3, "PRIMARY", InProgress),
        ("ecs-svc/2", 2, "ACTIVE", InProgress),
    ]) else {
        panic!("expected Replaced");
    };
    assert!(why.contains("ecs-svc/3"), "{why}");
    assert!(matches!(
        shows(&[("ecs-svc/3", 3, "PRIMARY", Completed)]),
        EcsShows::Replaced(_)
    ));
    assert_eq!(shows(&[]), EcsShows::Unknown);

    // Without a recorded id, by revision.
    let unlinked = DeploymentRecord {
        deployment_id: None,
        ..ours.clone()
    };
    assert_eq!(
        ecs_shows(
            &unlinked,
            &deployments(&[("ecs-svc/9", 2, "PRIMARY", InProgress)])
        ),
        EcsShows::Primary
    );
}

#[test]
fn ecs_reporting_failed_outranks_a_supersession_read_from_its_list() {
    let superseded = record(
        "1",
        Kind::Deploy,
        Status::Superseded,
        1,
        2,
        Some("ecs-svc/2"),
    );
    let moved_on = service(3, &[("ecs-svc/3", 3)], None);
    assert!(matches!(
        on_failure(&superseded, &moved_on, &[]),
        FailureAction::ChangedSince(_)
    ));
}

fn rolling(running: i32, desired: i32, failed: i32) -> aws_sdk_ecs::types::Deployment {
    aws_sdk_ecs::types::Deployment::builder()
        .id("ecs-svc/2")
        .status("PRIMARY")
        .running_count(running)
        .desired_count(desired)
        .pending_count(desired - running)
        .failed_tasks(failed)
        .rollout_state(DeploymentRolloutState::InProgress)
        .build()
}

#[test]
fn past_the_timeout_progress_is_looked_at_again_and_only_a_stall_or_failures_fail() {
    let progressing = |p| matches!(p, Progress::Progressing(_));
    // Baking or settling: every task runs, none failed.
    assert!(progressing(progress(&rolling(2, 2, 0), Some(2))));
    // Slow but moving: more tasks than at the last look (or than at the start).
    assert!(progressing(progress(&rolling(1, 2, 0), None)));
    assert!(progressing(progress(&rolling(2, 3, 0), Some(1))));
    // No progress since the last look, or none since it started.
    let Progress::Stuck(why) = progress(&rolling(1, 2, 0), Some(1)) else {
        panic!("expected Stuck");
    };
    assert!(why.contains("1 of 2 tasks running"), "{why}");
    assert!(!progressing(progress(&rolling(0, 2, 0), None)));
    // Failing tasks: stuck at once, whatever runs.
    let Progress::Stuck(why) = progress(&rolling(2, 2, 1), Some(0)) else {
        panic!("expected Stuck");
    };
    assert!(why.contains("1 failed"), "{why}");
}

#[test]
fn ecs_owns_the_rollbacks_of_blue_green_linear_and_canary() {
    use aws_sdk_ecs::types::DeploymentStrategy;
    let with = |strategy: Option<DeploymentStrategy>| {
        service(
            2,
            &[],
            Some(
                DeploymentConfiguration::builder()
                    .set_strategy(strategy)
                    .build(),
            ),
        )
    };
    assert_eq!(
        native_strategy(&with(Some(DeploymentStrategy::BlueGreen))),
        Some("BLUE_GREEN")
    );
    assert_eq!(
        native_strategy(&with(Some(DeploymentStrategy::Canary))),
        Some("CANARY")
    );
    assert_eq!(
        native_strategy(&with(Some(DeploymentStrategy::Rolling))),
        None
    );
    assert_eq!(native_strategy(&with(None)), None);

    // Where pushdeploy would roll back, it asks ECS to instead.
    let failed = record("2", Kind::Deploy, Status::Deployed, 1, 2, Some("ecs-svc/2"));
    let blue_green = with(Some(DeploymentStrategy::BlueGreen));
    assert!(matches!(
        on_failure(&failed, &blue_green, &[]),
        FailureAction::AskEcsToRollBack(_)
    ));
}

#[test]
fn when_ecs_did_not_roll_back_pushdeploy_does() {
    let breaker = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .build();
    let failed = record("2", Kind::Deploy, Status::Deployed, 1, 2, Some("ecs-svc/2"));
    let still_on_it = service(2, &[("ecs-svc/2", 2)], Some(breaker));
    assert!(matches!(
        on_failure(&failed, &still_on_it, &[]),
        FailureAction::EcsRollsBack(_)
    ));
    assert!(matches!(
        on_failure_ecs_did_not_roll_back(&failed, &still_on_it, &[]),
        FailureAction::RollBack { ref target, .. } if *target == td(1)
    ));
}

#[test]
fn ecs_rollback_is_seen_failed_or_not_started() {
    use DeploymentRolloutState::{Failed, InProgress};
    let failed = record("2", Kind::Deploy, Status::Failed, 1, 2, Some("ecs-svc/2"));
    let verdict = |listed, history: &[DeploymentRecord]| {
        ecs_rollback_verdict(&failed, &deployments(listed), history)
    };
    assert_eq!(
        verdict(&[("ecs-svc/2", 2, "PRIMARY", Failed)], &[]),
        EcsRollback::NotStarted
    );
    assert!(matches!(
        verdict(
            &[
                ("ecs-svc/9", 1, "PRIMARY", InProgress),
                ("ecs-svc/2", 2, "ACTIVE", Failed)
            ],
            &[]
        ),
        EcsRollback::Seen(_)
    ));
    assert!(matches!(
        verdict(
            &[
                ("ecs-svc/9", 1, "PRIMARY", Failed),
                ("ecs-svc/2", 2, "ACTIVE", Failed)
            ],
            &[]
        ),
        EcsRollback::Failed(_)
    ));
    // A newer push of pushdeploy's, not ECS's rollback, is primary and failing: that one has
    // a record of its own, this one is done waiting.
    let newer = record("3", Kind::Deploy, Status::Deployed, 1, 3, Some("ecs-svc/9"));
    assert!(matches!(
        verdict(&[("ecs-svc/9", 3, "PRIMARY", Failed)], &[newer]),
        EcsRollback::Seen(_)
    ));
}

#[test]
fn completed_and_failed_are_believed_only_when_ecs_shows_them() {
    use crate::ecs_event::DeploymentState::InProgress as SaysInProgress;
    use crate::ecs_event::DeploymentState::{Completed as SaysCompleted, Failed as SaysFailed};
    use DeploymentRolloutState::{Completed, Failed, InProgress};
    let confirms = |claimed, listed| ecs_confirms(claimed, "ecs-svc/2", &deployments(listed));

    // ECS shows what the event says.
    assert_eq!(
        confirms(SaysCompleted, &[("ecs-svc/2", 2, "PRIMARY", Completed)]),
        Ok(())
    );
    // Completed, and a newer deployment has started since: still completed.
    assert_eq!(
        confirms(
            SaysCompleted,
            &[
                ("ecs-svc/3", 3, "PRIMARY", InProgress),
                ("ecs-svc/2", 2, "ACTIVE", Completed)
            ]
        ),
        Ok(())
    );
    assert_eq!(
        confirms(SaysFailed, &[("ecs-svc/2", 2, "PRIMARY", Failed)]),
        Ok(())
    );
    // ECS rolled the service back by itself: the failed deployment drains beside the rollback.
    assert_eq!(
        confirms(
            SaysFailed,
            &[
                ("ecs-svc/4", 1, "PRIMARY", InProgress),
                ("ecs-svc/2", 2, "ACTIVE", Failed)
            ]
        ),
        Ok(())
    );
    assert_eq!(
        confirms(SaysInProgress, &[("ecs-svc/2", 2, "PRIMARY", InProgress)]),
        Ok(())
    );

    // A forged COMPLETED for a deployment still rolling out, or one that failed.
    let shows = confirms(SaysCompleted, &[("ecs-svc/2", 2, "PRIMARY", InProgress)]).unwrap_err();
    assert!(
        shows.contains("ecs-svc/2 PRIMARY, rollout IN_PROGRESS"),
        "{shows}"
    );
    assert!(confirms(SaysCompleted, &[("ecs-svc/2", 2, "PRIMARY", Failed)]).is_err());
    // A forged FAILED for a deployment rolling out healthily, or one that completed.
    assert!(confirms(SaysFailed, &[("ecs-svc/2", 2, "PRIMARY", InProgress)]).is_err());
    let shows = confirms(SaysFailed, &[("ecs-svc/2", 2, "PRIMARY", Completed)]).unwrap_err();
    assert!(shows.contains("rollout COMPLETED"), "{shows}");
    // Another deployment's state says nothing of this one.
    assert!(confirms(SaysFailed, &[("ecs-svc/3", 2, "PRIMARY", Failed)]).is_err());
    // A deployment ECS does not list confirms nothing, IN_PROGRESS included.
    for claimed in [SaysCompleted, SaysFailed, SaysInProgress] {
        let shows = confirms(claimed, &[("ecs-svc/9", 1, "PRIMARY", Completed)]).unwrap_err();
        assert!(
            shows.contains("does not list deployment ecs-svc/2")
                && shows.contains("ecs-svc/9 PRIMARY COMPLETED"),
            "{shows}"
        );
    }
    assert!(confirms(SaysCompleted, &[])
        .unwrap_err()
        .contains("lists none"));
}

#[test]
fn without_a_rollout_state_completed_is_the_steady_state_and_failed_is_never_shown() {
    use crate::ecs_event::DeploymentState::{Completed as SaysCompleted, Failed as SaysFailed};
    // A service behind a Classic Load Balancer: ECS reports no rolloutState.
    let deployment = |id: &str, status: &str, running: i32| {
        aws_sdk_ecs::types::Deployment::builder()
            .id(id)
            .status(status)
            .task_definition(td(2))
            .desired_count(2)
            .running_count(running)
            .build()
    };
    let steady = Service::builder()
        .service_arn(SERVICE)
        .deployments(deployment("ecs-svc/2", "PRIMARY", 2))
        .build();
    assert_eq!(ecs_confirms(SaysCompleted, "ecs-svc/2", &steady), Ok(()));
    assert!(ecs_confirms(SaysFailed, "ecs-svc/2", &steady).is_err());
    let rolling_out = Service::builder()
        .service_arn(SERVICE)
        .deployments(deployment("ecs-svc/2", "PRIMARY", 1))
        .build();
    assert!(ecs_confirms(SaysCompleted, "ecs-svc/2", &rolling_out).is_err());
    let beside_older = Service::builder()
        .service_arn(SERVICE)
        .deployments(deployment("ecs-svc/2", "PRIMARY", 2))
        .deployments(deployment("ecs-svc/1", "ACTIVE", 1))
        .build();
    let shows = ecs_confirms(SaysCompleted, "ecs-svc/2", &beside_older).unwrap_err();
    assert!(shows.contains("rollout not reported"), "{shows}");
}

#[test]
fn a_sweep_runs_on_the_clock_and_refuses_a_time_far_from_it() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .to_utc();
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    // On time, a little early or late (clocks differ), late by a delivery's retries: runs.
    for ok in [
        "2026-11-26T12:00:00Z",
        "2026-11-26T12:04:59Z",
        "2026-11-26T11:55:00Z",
        "2026-11-25T12:00:01Z",
    ] {
        assert_eq!(sweep_refused(at(ok), now), None, "{ok}");
    }
    let far = sweep_refused(at("2999-01-01T00:00:00Z"), now).unwrap();
    assert!(
        far.contains("2999-01-01T00:00:00Z")
            && far.contains("2026-11-26T12:00:00Z")
            && far.contains("ahead of AWS's clock"),
        "{far}"
    );
    assert!(sweep_refused(at("2026-11-26T12:05:01Z"), now).is_some());
    let old = sweep_refused(at("2026-11-25T11:59:59Z"), now).unwrap();
    assert!(old.contains("more than 24 hours before"), "{old}");
}

#[test]
fn a_dry_run_tag_added_later_does_not_hold_back_a_deployment_made_for_real() {
    // (stack DryRun, service tagged pushdeploy:dry-run, the ledger records the deployment)
    let table = [
        ((false, false, true), false),
        ((false, false, false), false),
        // Tagged after pushdeploy deployed it: rolled back, quarantined, recorded as usual.
        ((false, true, true), false),
        // Not pushdeploy's deployment, on a tagged service: not even noted.
        ((false, true, false), true),
        ((true, false, true), true),
        ((true, true, true), true),
        ((true, false, false), true),
        ((true, true, false), true),
    ];
    for ((stack, tagged, recorded), expected) in table {
        assert_eq!(
            dry_run_for(stack, tagged, recorded),
            expected,
            "stack {stack}, tagged {tagged}, recorded {recorded}"
        );
    }
}
