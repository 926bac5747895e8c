//! The ledger's claim rules against DynamoDB on moto (its condition expressions are evaluated
//! for real): one owner per service at a time, newest push wins, leases end at the deadline.

use crate::support;

use crate::support::{digest, TestBed, TABLE};
use pushdeploy::event::Push;
use pushdeploy::ledger::{Claim, Lease, Ledger, Status};

const SERVICE: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
const NOW: u64 = 1_800_000_000_000;

fn push(event_id: &str, second: u32, d: char) -> Push {
    support::typed_push(event_id, second, d)
}

/// A claim by `holder` (a Lambda request id: each delivery of an event has its own).
async fn claim(ledger: &Ledger, p: &Push, holder: &str, lease_until: u64, now: u64) -> Claim {
    let lease = Lease {
        holder: holder.into(),
        until_ms: lease_until,
    };
    ledger
        .claim(SERVICE, p, &lease, now, "2026-11-26T12:00:00Z")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_claims_of_one_push_have_one_winner() {
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let p = push("ev-1", 0, 'a');
    let (a, b) = tokio::join!(
        claim(&ledger, &p, "delivery-1", NOW + 60_000, NOW),
        claim(&ledger, &p, "delivery-2", NOW + 60_000, NOW)
    );
    let mut results = [a, b];
    results.sort_by_key(|c| matches!(c, Claim::Acquired { .. }));
    assert_eq!(results[1], Claim::Acquired { resumed: None });
    assert_eq!(
        results[0],
        Claim::Busy {
            reason: "a concurrent delivery of this push is deploying it".into(),
            retryable: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_push_wins_and_an_older_one_in_flight_makes_the_newer_wait() {
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let (older, newer) = (push("ev-old", 0, 'a'), push("ev-new", 5, 'b'));

    assert_eq!(
        claim(&ledger, &older, "delivery-3", NOW + 60_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    match claim(&ledger, &newer, "delivery-4", NOW + 60_000, NOW).await {
        Claim::Busy {
            retryable: true,
            reason,
        } => assert!(reason.contains("older push"), "{reason}"),
        other => panic!("{other:?}"),
    }
    ledger
        .release(SERVICE, &older.event_id, Status::Deployed, None, "t")
        .await
        .unwrap();
    assert_eq!(
        claim(&ledger, &newer, "delivery-5", NOW + 60_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    match claim(&ledger, &older, "delivery-6", NOW + 60_000, NOW).await {
        Claim::Stale { reason } => assert!(reason.starts_with("stale push"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_past_its_deadline_is_taken_over_by_the_same_push_only() {
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let p = push("ev-1", 0, 'a');
    assert_eq!(
        claim(&ledger, &p, "delivery-7", NOW + 1_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    // Still leased: a redelivery stays out.
    assert!(matches!(
        claim(&ledger, &p, "delivery-8", NOW + 61_000, NOW + 500).await,
        Claim::Busy {
            retryable: false,
            ..
        }
    ));
    // The first invocation died at its deadline: its retry takes over.
    assert_eq!(
        claim(&ledger, &p, "delivery-9", NOW + 62_000, NOW + 2_000).await,
        Claim::Acquired { resumed: None }
    );
    // Done: later deliveries are told so.
    ledger
        .release(SERVICE, &p.event_id, Status::Deployed, None, "t")
        .await
        .unwrap();
    assert!(matches!(
        claim(&ledger, &p, "delivery-10", NOW + 70_000, NOW + 10_000).await,
        Claim::Finished { .. }
    ));
    // Losing the head shows up when releasing.
    let newer = push("ev-2", 9, 'b');
    assert_eq!(
        claim(&ledger, &newer, "delivery-11", NOW + 80_000, NOW + 20_000).await,
        Claim::Acquired { resumed: None }
    );
    assert!(ledger
        .release(SERVICE, &p.event_id, Status::Failed, Some("late"), "t")
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_of_a_claim_may_take_it_again_while_leased() {
    // A claim whose write landed but whose answer was lost is sent again by the SDK (same
    // invocation), and Lambda's retry of a failed invocation keeps its request id: both find
    // their own claim and go on. Another delivery of the same event still stays out.
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let p = push("ev-1", 0, 'a');
    assert_eq!(
        claim(&ledger, &p, "req-1", NOW + 60_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    assert_eq!(
        claim(&ledger, &p, "req-1", NOW + 60_000, NOW + 10).await,
        Claim::Acquired { resumed: None }
    );
    assert!(matches!(
        claim(&ledger, &p, "req-2", NOW + 60_000, NOW + 20).await,
        Claim::Busy {
            retryable: false,
            ..
        }
    ));
    // Once the push is done, its own holder is told so like anyone else.
    ledger
        .release(SERVICE, &p.event_id, Status::Deployed, None, "t")
        .await
        .unwrap();
    assert!(matches!(
        claim(&ledger, &p, "req-1", NOW + 60_000, NOW + 30).await,
        Claim::Finished { .. }
    ));
}

/// Situation: ECS sends IN_PROGRESS as soon as UpdateService starts a deployment, so the rollback
/// function can read the deployment's record before the deploy function's last write and write
/// after it. Interleaved exactly so, through two gates at fault proxies: the deploy function's
/// final PutItem is held until the rollback function has read the record, and the rollback
/// function's write is held until the deploy function has finished. Each function must change
/// only the fields it owns: the record ends `deployed`, in flight, with its ECS deployment id,
/// and ECS's COMPLETED then makes it the last known good revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollback_function_never_undoes_the_deploy_functions_last_write() {
    use pushdeploy::deploy::{Deployer, OutcomeKind};
    use pushdeploy::invocation::Invocation;
    use pushdeploy::rollback::RollbackHandler;
    use support::fault_proxy::{call, Fault, FaultProxy, Plan};

    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let first = bed
        .task_definition(
            "web",
            &[("app", &format!("{}/web@{}", support::REGISTRY, digest('a')))],
        )
        .await;
    let service_arn = bed
        .service("prod", "web", &first, &[("pushdeploy:repository", "web")])
        .await;
    let deploy_proxy = FaultProxy::start(bed.moto.address).await;
    let rollback_proxy = FaultProxy::start(bed.moto.address).await;
    let deployer = Deployer::new(&bed.sdk_through(&deploy_proxy.url).await, bed.config());
    let rollback = RollbackHandler::new(&bed.sdk_through(&rollback_proxy.url).await, bed.config());
    let invocation = Invocation::default();

    // The deploy function's second transaction is its last write: the record as `deployed`,
    // with the claim released.
    deploy_proxy.break_calls(Plan {
        call: call("dynamodb", "TransactWriteItems"),
        skip: 1,
        times: 1,
        fault: Fault::Held,
    });
    let event = bed
        .pushed(support::push_event(
            "push-1",
            "web",
            "latest",
            &digest('b'),
            "2026-11-26T12:00:00Z",
        ))
        .await;
    let (finished, deploy_finished) = tokio::sync::oneshot::channel();
    let deploy = async {
        let answer = deployer.handle(event, &invocation).await;
        let _ = finished.send(());
        answer
    };
    let rollback_side = async {
        deploy_proxy.held(1).await;
        // UpdateService has started the deployment; ECS's IN_PROGRESS reaches the rollback
        // function, which reads the record (still `deploying`) and writes: that write is held.
        let in_progress = bed
            .world()
            .take_event("SERVICE_DEPLOYMENT_IN_PROGRESS")
            .await
            .expect("ECS reports the deployment in progress");
        rollback_proxy.break_calls(Plan {
            // Its first ledger write, whichever call it is.
            call: call("dynamodb", "PutItem|UpdateItem"),
            skip: 0,
            times: 1,
            fault: Fault::Held,
        });
        let recording = rollback.handle(in_progress.clone(), &invocation);
        // The deploy function finishes first, then the rollback function's write lands.
        let steer = async {
            rollback_proxy.held(1).await;
            deploy_proxy.release();
            deploy_finished.await.unwrap();
            rollback_proxy.release();
        };
        let (recorded, ()) = tokio::join!(recording, steer);
        (in_progress, recorded)
    };
    let (deployed, (in_progress, recorded)) = tokio::join!(deploy, rollback_side);
    let deployed = deployed.unwrap();
    assert_eq!(
        deployed.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{deployed:?}"
    );
    let recorded = recorded.unwrap();
    assert_eq!(
        recorded.outcomes[0].outcome,
        OutcomeKind::Recorded,
        "{recorded:?}"
    );

    let ledger = deployer.ledger();
    let record = ledger.latest(&service_arn, 5).await.unwrap().remove(0);
    assert_eq!(record.status, Status::Deployed, "{record:?}");
    assert_eq!(
        record.deployment_id.as_deref(),
        in_progress["detail"]["deploymentId"].as_str()
    );
    let in_flight = ledger
        .in_flight_since_before("9999-12-31T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        in_flight.len(),
        1,
        "still watched by the sweep: {in_flight:?}"
    );

    // ECS completes it: the last known good revision.
    bed.world().start_tasks("prod", "web", 1).await;
    let completed = bed
        .world()
        .take_event("SERVICE_DEPLOYMENT_COMPLETED")
        .await
        .expect("ECS reports the deployment completed");
    rollback
        .handle(completed, &Invocation::default())
        .await
        .unwrap();
    let record = ledger.latest(&service_arn, 5).await.unwrap().remove(0);
    assert_eq!(record.status, Status::Succeeded, "{record:?}");
}
