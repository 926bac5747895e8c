//! The bench's AWS model (tests/support/aws_model.rs) checked by itself: its arithmetic, and
//! that its proxy throttles as ECS's documented buckets say, against moto.

use crate::support::aws_model::{
    bound, bound_of_burst, critical_path, normal_quantile, AwsModel, AwsModelProxy, Bucket,
    Latency, Logged, Operation, Tokens, Workload,
};
use crate::support::{TestBed, REGISTRY};
use std::time::Duration;

fn at(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn logged(operation: &str, started: u64, ended: u64) -> Logged {
    Logged {
        call: Operation {
            service: "ecs".into(),
            operation: operation.into(),
        },
        started: at(started),
        ended: at(ended),
        throttled: false,
        late: Duration::ZERO,
    }
}

#[test]
fn the_critical_path_counts_calls_that_waited_for_each_other() {
    // Two made together, then one after both, then two overlapping each other.
    let log = [
        logged("A", 0, 10),
        logged("B", 1, 12),
        logged("C", 12, 20),
        logged("D", 21, 30),
        logged("E", 25, 35),
    ];
    assert_eq!(critical_path(&log), 3);
    assert_eq!(critical_path(&log[..2]), 1);
    assert_eq!(critical_path(&[]), 0);
}

#[test]
fn a_bucket_admits_its_burst_then_its_sustained_rate() {
    let mut tokens = Tokens::full(Bucket {
        burst: 20.0,
        per_second: 1.0,
    });
    let admitted = (0..25).filter(|_| tokens.take(at(0))).count();
    assert_eq!(admitted, 20);
    assert!(!tokens.take(at(500)), "half a token is not a call");
    assert!(tokens.take(at(1000)), "one second refills one token");
    assert!(!tokens.take(at(1000)));
    let bucket = Bucket {
        burst: 50.0,
        per_second: 5.0,
    };
    assert_eq!(Tokens::admits_all_by(bucket, 50), Duration::ZERO);
    assert_eq!(Tokens::admits_all_by(bucket, 200), Duration::from_secs(30));
}

#[test]
fn latencies_follow_their_stated_median_and_p99() {
    assert!(normal_quantile(0.5).abs() < 1e-9);
    assert!((normal_quantile(0.99) - 2.326_347_874).abs() < 1e-6);
    assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-6);
    let latency = Latency::ms(40.0, 120.0);
    assert_eq!(latency.at(0.0), at(40));
    let p99 = latency.at(2.326_347_874).as_secs_f64() * 1000.0;
    assert!((p99 - 120.0).abs() < 0.01, "{p99}");
    assert!(latency.longest_of(50) > latency.longest_of(5));
    assert_eq!(latency.longest_of(1), at(40));
}

#[test]
fn calls_are_named_as_the_wire_names_them() {
    let ecs = Operation::of(
        Some("AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"),
        b"{}",
    );
    assert_eq!(
        (ecs.service.as_str(), ecs.operation.as_str()),
        ("ecs", "RegisterTaskDefinition")
    );
    assert_eq!(ecs.ecs_group(), Some("task definition modify"));
    let ecr = Operation::of(
        Some("AmazonEC2ContainerRegistry_V20150921.DescribeImages"),
        b"",
    );
    assert_eq!((ecr.service.as_str(), ecr.ecs_group()), ("ecr", None));
    let sns = Operation::of(None, b"Action=Publish&Version=2010-03-31");
    assert_eq!(
        (sns.service.as_str(), sns.operation.as_str()),
        ("sns", "Publish")
    );
}

#[test]
fn the_bound_is_the_unavoidable_chain_or_the_buckets_whichever_is_longer() {
    let model = AwsModel::stated();
    // One service: the Tagging API (60 ms, ECR's 30 beside it), then DescribeServices,
    // DescribeTaskDefinition, RegisterTaskDefinition and UpdateService at ECS's median 40.
    let one = bound(
        &model,
        Workload {
            services: 1,
            clusters: 1,
            definitions: 1,
        },
    );
    assert_eq!(one, at(220));
    // 200 services: UpdateService's bucket (50, then 5 a second) admits the last after 30 s.
    let many = bound(
        &model,
        Workload {
            services: 200,
            clusters: 10,
            definitions: 20,
        },
    );
    assert!(
        many > Duration::from_secs(30) && many < Duration::from_secs(31),
        "{many:?}"
    );
}

#[test]
fn a_burst_of_invocations_waits_for_its_slowest_chain() {
    let model = AwsModel::stated();
    let one = bound_of_burst(&model, 1, 20);
    let twenty = bound_of_burst(&model, 20, 20);
    // One chain's mean is above its medians' sum (220 ms: log-normal means exceed medians),
    // and the slowest of twenty is slower still; 20 pushes fit the buckets' bursts.
    assert!(one > at(220) && one < at(400), "{one:?}");
    assert!(twenty > one && twenty < at(1000), "{twenty:?}");
    // Two at a time, twenty chains take about ten chains' time, and no less than nine.
    let two_slots = bound_of_burst(&model, 20, 2);
    assert!(two_slots > one * 9 && two_slots < one * 12, "{two_slots:?}");
}

/// ECS's answer when a bucket is empty ("If you exceed an API throttling quota, you get the
/// ThrottlingException error code"), through the proxy, from a client that does not retry.
#[tokio::test]
async fn the_proxy_throttles_register_task_definition_beyond_its_burst() {
    let bed = TestBed::start().await;
    let mut model = AwsModel::stated();
    for latency in model.latency.values_mut() {
        *latency = Latency::ms(1.0, 2.0);
    }
    // A refill too slow to matter within the test, so the count does not depend on its speed.
    model.buckets.insert(
        "task definition modify",
        Bucket {
            burst: 20.0,
            per_second: 0.001,
        },
    );
    let proxy = AwsModelProxy::start(bed.moto.address, model).await;
    let sdk = bed.sdk_through(&proxy.url).await;
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&sdk)
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
            .build(),
    );
    let register = |i: usize| {
        let ecs = ecs.clone();
        async move {
            ecs.register_task_definition()
                .family(format!("f{i}"))
                .container_definitions(
                    aws_sdk_ecs::types::ContainerDefinition::builder()
                        .name("app")
                        .image(format!("{REGISTRY}/web:latest"))
                        .memory(128)
                        .build(),
                )
                .send()
                .await
        }
    };
    let answers = futures::future::join_all((0..25).map(register)).await;
    let throttled = answers
        .iter()
        .filter(|a| {
            a.as_ref()
                .err()
                .and_then(|e| aws_smithy_types::error::metadata::ProvideErrorMetadata::code(e))
                == Some("ThrottlingException")
        })
        .count();
    let registered = answers.iter().filter(|a| a.is_ok()).count();
    let other: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err())
        .map(|e| {
            format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(e)
            )
        })
        .filter(|e| !e.contains("ThrottlingException"))
        .collect();
    assert_eq!((registered, throttled), (20, 5), "{other:?}");
    let log = proxy.log();
    assert_eq!(log.len(), 25, "{log:#?}");
    assert_eq!(log.iter().filter(|c| c.throttled).count(), 5);
}
