//! One push whose fan-out needs more revisions than ECS's RegisterTaskDefinition bucket holds,
//! through the bench's model of ECS's throttling (tests/support/aws_model.rs) in front of moto:
//! the deploy paces its calls to ECS's documented rates instead of meeting ThrottlingException.
//! ("Request throttling for the Amazon ECS API": task definition modify actions, a bucket of 20
//! refilled at 1 a second; "If you exceed an API throttling quota, you get the
//! ThrottlingException error code".)

use crate::support::aws_model::{AwsModel, AwsModelProxy, Latency};
use crate::support::{digest, push_event, TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind};
use pushdeploy::invocation::Invocation;

/// Two more distinct task definitions than the bucket's burst: the last two must wait about a
/// second each for a token.
const SERVICES: usize = 22;

/// `services` services `s<i>` in cluster `c0`, each on a task definition of its own
/// (`<family><i>`) following `web:latest`; ECS's buckets in front of moto, with latencies of a
/// millisecond or two; and a deploy function through them.
async fn paced_world(services: usize, family: &str) -> (TestBed, AwsModelProxy, Deployer) {
    let bed = TestBed::start().await;
    bed.cluster("c0").await;
    for i in 0..services {
        let td = bed
            .task_definition(
                &format!("{family}{i}"),
                &[("app", &format!("{REGISTRY}/web:latest"))],
            )
            .await;
        bed.service(
            "c0",
            &format!("s{i}"),
            &td,
            &[("pushdeploy:repository", "web")],
        )
        .await;
    }
    let mut model = AwsModel::stated();
    for latency in model.latency.values_mut() {
        *latency = Latency::ms(1.0, 2.0);
    }
    let proxy = AwsModelProxy::start(bed.moto.address, model).await;
    let deployer = Deployer::new(&bed.sdk_through(&proxy.url).await, bed.config());
    (bed, proxy, deployer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_beyond_register_task_definitions_burst_waits_for_tokens_and_is_never_throttled()
{
    let (bed, proxy, deployer) = paced_world(SERVICES, "f").await;
    let push = push_event(
        "paced-1",
        "web",
        "latest",
        &digest('f'),
        "2026-11-26T12:00:00Z",
    );
    let report = deployer
        .handle(bed.pushed(push).await, &Invocation::default())
        .await
        .unwrap();

    let deployed = report
        .outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Deployed)
        .count();
    assert_eq!(deployed, SERVICES, "{report:?}");
    let log = proxy.log();
    let registers = log
        .iter()
        .filter(|c| c.call.operation == "RegisterTaskDefinition")
        .count();
    let throttled: Vec<_> = log.iter().filter(|c| c.throttled).collect();
    assert_eq!(registers, SERVICES);
    assert!(throttled.is_empty(), "ECS throttled: {throttled:?}");
}

/// More distinct task definitions than the bucket admits before the invocation must stop
/// sending: the services whose registration would wait past that are left, retryable, and
/// Lambda's retry (the same request id, a new deadline) deploys them. Nothing is throttled,
/// nothing fails for good, and each service still gets exactly one revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_longer_than_the_invocation_leaves_the_rest_for_lambdas_retry() {
    const MORE: usize = 25;
    let (bed, proxy, deployer) = paced_world(MORE, "g").await;
    let push = bed
        .pushed(push_event(
            "paced-2",
            "web",
            "latest",
            &digest('e'),
            "2026-11-26T12:00:00Z",
        ))
        .await;
    // Four seconds: the last second is kept for the end, and the bucket's 21st to 25th tokens
    // come a second apart after its burst of 20, so at least the last two cannot be had in time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let first = Invocation {
        request_id: Some("req-paced-2".into()),
        deadline_ms: now_ms + 4_000,
        ..Invocation::default()
    };
    let left = match deployer.handle(push.clone(), &first).await {
        Err(failure) => failure.report,
        Ok(report) => panic!("every service deployed in one invocation: {report:?}"),
    };
    let waiting: Vec<_> = left
        .outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Failed)
        .collect();
    assert!(!waiting.is_empty(), "{left:?}");
    for outcome in &waiting {
        assert!(outcome.retryable, "{outcome:?}");
        let reason = outcome.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("left for Lambda's retry"), "{reason}");
    }

    let retry = Invocation {
        deadline_ms: now_ms + 120_000,
        ..first
    };
    let report = deployer.handle(push, &retry).await.unwrap();
    let deployed = report
        .outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Deployed)
        .count();
    assert_eq!(deployed, waiting.len(), "{report:?}");
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| matches!(o.outcome, OutcomeKind::Deployed | OutcomeKind::Skipped)),
        "{report:?}"
    );
    for i in 0..MORE {
        let running = bed.running("c0", &format!("s{i}")).await;
        assert_eq!(
            bed.image(&running, "app").await,
            format!("{REGISTRY}/web@{}", digest('e')),
            "s{i}"
        );
        assert_eq!(bed.revisions(&format!("g{i}")).await.len(), 2, "g{i}");
    }
    let log = proxy.log();
    let throttled: Vec<_> = log.iter().filter(|c| c.throttled).collect();
    assert!(throttled.is_empty(), "ECS throttled: {throttled:?}");
}
