//! The compiled `gate` binary, run as Lambda runs it (the Runtime API stand-in), invoked as an
//! ECS lifecycle hook invokes it, against moto and the ECS world, with a local HTTP server in
//! the green revision's place: healthy, failing or slow. ECS's side of the hook is played here:
//! it hands back the `hookDetails` the gate answered, merged with the hook's static details
//! ("Amazon ECS merges this data and passes it back on the next invocation").

use crate::support;
use crate::support::runtime_api::{FunctionProcess, RuntimeApi};
use crate::support::{push_event, TestBed, REGISTRY};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Response;
use pushdeploy::deploy::Deployer;
use pushdeploy::invocation::Invocation;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const INVOKE_WITHIN: Duration = Duration::from_secs(60);

/// How the stand-in for the green revision answers `GET /healthz`.
#[derive(Clone, Copy)]
enum Green {
    Healthy,
    Failing,
    Slow,
}

/// A loopback HTTP server answering as `green` does; its base URL.
async fn green(green: Green) -> (String, tokio::task::JoinHandle<()>) {
    let (address, server) = support::loopback::serve(move |_req| async move {
        let status = match green {
            Green::Healthy => 200,
            Green::Failing => 500,
            Green::Slow => {
                tokio::time::sleep(Duration::from_millis(700)).await;
                200
            }
        };
        let response = Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap();
        Ok::<_, std::convert::Infallible>(response)
    })
    .await;
    (format!("http://{address}"), server)
}

/// A blue/green service prod/web following `web`, tagged with `tags`, and one push of
/// pushdeploy's onto it; the hook payload ECS would send at `stage` for that deployment.
async fn deployed(bed: &TestBed, tags: &[(&str, &str)], stage: &str) -> Value {
    bed.push_image("web", "latest", 0).await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    let mut all = vec![("pushdeploy:repository", "web")];
    all.extend_from_slice(tags);
    let config = aws_sdk_ecs::types::DeploymentConfiguration::builder()
        .strategy(aws_sdk_ecs::types::DeploymentStrategy::BlueGreen)
        .bake_time_in_minutes(10)
        .build();
    let service_arn = bed.service_with("prod", "web", &td, &all, config).await;
    let pushed = bed.push_image("web", "latest", 1).await;
    let now = bed.world().now().await;
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let report = deployer
        .handle(
            push_event("push-1", "web", "latest", &pushed, &now),
            &Invocation::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        report.outcomes[0].outcome.as_str(),
        "deployed",
        "{report:?}"
    );
    let view = bed.world().service("prod", "web").await;
    let sd = &view["serviceDeployments"][0];
    hook_payload(&service_arn, sd, stage)
}

fn hook_payload(service_arn: &str, sd: &Value, stage: &str) -> Value {
    let green = sd["targetServiceRevision"]["arn"].as_str().unwrap();
    json!({
        "executionId": "exec-1",
        "lifecycleStage": stage,
        "resourceArn": sd["serviceDeploymentArn"],
        "executionDetails": {
            "serviceArn": service_arn,
            "targetServiceRevisionArn": green,
            "testTrafficWeights": {green: 100},
            "productionTrafficWeights": {}
        },
        "hookDetails": {"team": "web"}
    })
}

/// ECS's side of an IN_PROGRESS answer: the next invocation carries the answer's hookDetails
/// merged into the static ones.
fn called_again(payload: &Value, answer: &Value) -> Value {
    let mut next = payload.clone();
    for (k, v) in answer["hookDetails"].as_object().into_iter().flatten() {
        next["hookDetails"][k] = v.clone();
    }
    next
}

fn gate(api: &RuntimeApi, bed: &TestBed, extra: &[(&str, &str)]) -> FunctionProcess {
    let mut env = bed.function_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    FunctionProcess::spawn(Path::new(env!("CARGO_BIN_EXE_gate")), api, &env)
}

fn quarantine_keys(
    items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i.get("sk")?.as_s().ok().cloned())
        .filter(|sk| sk.starts_with("QUARANTINE#"))
        .collect()
}

async fn ledger_items(
    bed: &TestBed,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    bed.dynamodb
        .scan()
        .table_name(support::TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_green_is_in_progress_three_times_then_succeeded() {
    let bed = TestBed::start().await;
    let (url, _server) = green(Green::Healthy).await;
    let payload = deployed(
        &bed,
        &[
            ("pushdeploy:smoke", "/healthz 200 500ms x4"),
            ("pushdeploy:smoke-url", &url),
        ],
        "POST_TEST_TRAFFIC_SHIFT",
    )
    .await;
    let api = RuntimeApi::start().await;
    let function = gate(&api, &bed, &[]);
    let mut next = payload.clone();
    for round in 1..=3 {
        let answer = api.invoke(next.clone(), INVOKE_WITHIN).await.response();
        assert_eq!(
            answer["hookStatus"], "IN_PROGRESS",
            "round {round}: {answer}"
        );
        assert_eq!(answer["callBackDelay"], 10);
        assert_eq!(
            answer["hookDetails"]["pushdeploy"]["streaks"],
            json!([round])
        );
        next = called_again(&payload, &answer);
        assert_eq!(
            next["hookDetails"]["team"], "web",
            "ECS keeps the static details"
        );
    }
    let answer = api.invoke(next, INVOKE_WITHIN).await.response();
    assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer}");
    assert!(answer.get("callBackDelay").is_none());
    let reason = answer["hookDetails"]["pushdeploy"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("GET /healthz 200 in"), "{reason}");
    assert!(quarantine_keys(&ledger_items(&bed).await).is_empty());
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_slow_green_fails_the_gate_with_the_evidence_and_quarantines_its_digest() {
    for (green_is, says) in [
        (Green::Failing, "answered 500, not 200"),
        (Green::Slow, "over its 300 ms budget"),
    ] {
        let bed = TestBed::start().await;
        let (url, _server) = green(green_is).await;
        let (topic, queue) = bed.notify_topic().await;
        let payload = deployed(
            &bed,
            &[
                ("pushdeploy:smoke", "/healthz 200 300ms x3"),
                ("pushdeploy:smoke-url", &url),
            ],
            "POST_TEST_TRAFFIC_SHIFT",
        )
        .await;
        let api = RuntimeApi::start().await;
        let function = gate(&api, &bed, &[("PUSHDEPLOY_NOTIFY_TOPIC_ARN", &topic)]);
        let answer = api.invoke(payload, INVOKE_WITHIN).await.response();
        assert_eq!(answer["hookStatus"], "FAILED", "{answer}");
        let reason = answer["hookDetails"]["pushdeploy"]["reason"]
            .as_str()
            .unwrap();
        assert!(reason.contains(says), "{reason}");
        let last = &answer["hookDetails"]["pushdeploy"]["last"][0];
        assert_eq!(last["path"], "/healthz");
        let items = ledger_items(&bed).await;
        let record = items
            .iter()
            .find(|i| {
                i.get("event_id")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("push-1")
            })
            .unwrap();
        let digest = record["digest"].as_s().unwrap();
        assert_eq!(
            quarantine_keys(&items),
            vec![format!("QUARANTINE#{digest}")]
        );
        let notes = bed.notifications(&queue, 1).await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        let message = notes[0]["Message"].as_str().unwrap();
        assert!(
            message.contains("deployment failed") && message.contains(says),
            "{message}"
        );
        function.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_checks_the_gate_fails_closed_and_says_how_to_configure() {
    let bed = TestBed::start().await;
    let payload = deployed(&bed, &[], "POST_TEST_TRAFFIC_SHIFT").await;
    let api = RuntimeApi::start().await;
    let function = gate(&api, &bed, &[]);

    // What a payload claims is confirmed before anything moves: for a service deployment ECS
    // does not know, the gate fails (closed) but quarantines nothing.
    let mut forged = payload.clone();
    forged["resourceArn"] =
        json!("arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/forged");
    let answer = api.invoke(forged, INVOKE_WITHIN).await.response();
    assert_eq!(answer["hookStatus"], "FAILED", "{answer}");
    assert!(quarantine_keys(&ledger_items(&bed).await).is_empty());

    let answer = api.invoke(payload.clone(), INVOKE_WITHIN).await.response();
    assert_eq!(answer["hookStatus"], "FAILED", "{answer}");
    let reason = answer["hookDetails"]["pushdeploy"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("no checks configured"), "{reason}");
    assert!(reason.contains("pushdeploy:smoke"), "{reason}");
    // ECS rolls such a deployment back, and a rolled-back digest is quarantined.
    assert_eq!(quarantine_keys(&ledger_items(&bed).await).len(), 1);

    // A rollback re-invokes the traffic-shift hooks with the weights reversed: never held,
    // even by a gate with nothing configured.
    let green = payload["executionDetails"]["targetServiceRevisionArn"]
        .as_str()
        .unwrap();
    let mut rollback = payload.clone();
    rollback["lifecycleStage"] = json!("TEST_TRAFFIC_SHIFT");
    rollback["executionDetails"]["testTrafficWeights"] =
        json!({green: 0, "arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/1": 100});
    let answer = api.invoke(rollback, INVOKE_WITHIN).await.response();
    assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer}");

    let garbage = api
        .invoke(json!({"hello": "world"}), INVOKE_WITHIN)
        .await
        .response();
    assert_eq!(garbage["hookStatus"], "FAILED", "{garbage}");
    function.stop().await;
}

/// Without a `pushdeploy:smoke-url`, the gate finds the test listener from the service's load
/// balancer: its `testListenerRule`, that rule's listener (port, protocol), the listener's load
/// balancer (DNS name), all read from ELBv2 (moto's). moto's DNS name resolves nowhere here (no
/// network), so the check fails; its reason names the URL the gate found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_url_tag_the_gate_finds_the_test_listener_through_elbv2() {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ProtocolEnum, RuleCondition, TargetTypeEnum,
    };
    let bed = TestBed::start().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&bed.sdk);
    let subnets = bed.world().subnets(support::REGION).await;
    let created = elb
        .create_load_balancer()
        .name("web")
        .set_subnets(Some(subnets.into_iter().take(2).collect()))
        .send()
        .await
        .expect("a load balancer");
    let lb = &created.load_balancers()[0];
    let (lb_arn, dns, vpc) = (
        lb.load_balancer_arn().unwrap().to_string(),
        lb.dns_name().unwrap().to_string(),
        lb.vpc_id().unwrap().to_string(),
    );
    let mut groups = Vec::new();
    for name in ["blue", "green"] {
        let tg = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .expect("a target group");
        groups.push(
            tg.target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string(),
        );
    }
    let forward = || {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&groups[0])
            .build()
    };
    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .default_actions(forward())
        .send()
        .await
        .expect("a test listener");
    let listener_arn = listener.listeners()[0].listener_arn().unwrap().to_string();
    let rule = elb
        .create_rule()
        .listener_arn(&listener_arn)
        .priority(1)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/*")
                .build(),
        )
        .actions(forward())
        .send()
        .await
        .expect("a test listener rule");
    let rule_arn = rule.rules()[0].rule_arn().unwrap().to_string();

    bed.push_image("web", "latest", 0).await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    let tag = |k: &str, v: &str| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build();
    let service = bed
        .ecs
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition(&td)
        .desired_count(2)
        .load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(&groups[0])
                .container_name("app")
                .container_port(8080)
                .advanced_configuration(
                    aws_sdk_ecs::types::AdvancedConfiguration::builder()
                        .alternate_target_group_arn(&groups[1])
                        .test_listener_rule(&rule_arn)
                        .role_arn("arn:aws:iam::123456789012:role/ecs-lb")
                        .build(),
                )
                .build(),
        )
        .tags(tag("pushdeploy:repository", "web"))
        .tags(tag("pushdeploy:smoke", "/healthz 200 300ms x1"))
        .send()
        .await
        .expect("a service behind the load balancer");
    let service_arn = service
        .service()
        .unwrap()
        .service_arn()
        .unwrap()
        .to_string();
    let green = "arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/2";
    let payload = json!({
        "executionId": "exec-elb",
        "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/x",
        "executionDetails": {
            "serviceArn": service_arn,
            "targetServiceRevisionArn": green,
            "testTrafficWeights": {green: 100},
            "productionTrafficWeights": {}
        }
    });
    let api = RuntimeApi::start().await;
    let function = gate(&api, &bed, &[]);
    let answer = api.invoke(payload, INVOKE_WITHIN).await.response();
    assert_eq!(answer["hookStatus"], "FAILED", "{answer}");
    let reason = answer["hookDetails"]["pushdeploy"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains(&format!("(against http://{dns}:8080)")),
        "{reason}"
    );
    function.stop().await;
}

/// Alarm checks run at any stage the hook runs at, on AWS's clock: OK too recently is
/// IN_PROGRESS, OK long enough SUCCEEDED. CloudWatch's answers come in Smithy RPC v2 CBOR,
/// from the world (moto does not speak it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_ok_long_enough_pass_at_any_stage() {
    let bed = TestBed::start().await;
    let world = bed.world();
    world
        .set_alarm("web-5xx", "OK", "Threshold Crossed: no datapoint > 1.0")
        .await;
    world
        .set_alarm("web-p99", "OK", "Threshold Crossed: no datapoint > 0.5")
        .await;
    let payload = deployed(
        &bed,
        &[("pushdeploy:alarms", "web-5xx web-p99 2m")],
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    )
    .await;
    let api = RuntimeApi::start().await;
    let function = gate(&api, &bed, &[]);
    let answer = api.invoke(payload.clone(), INVOKE_WITHIN).await.response();
    assert_eq!(answer["hookStatus"], "IN_PROGRESS", "{answer}");
    let reason = answer["hookDetails"]["pushdeploy"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("web-5xx OK for") && reason.contains("of 120"),
        "{reason}"
    );
    world.advance(121).await;
    let answer = api
        .invoke(called_again(&payload, &answer), INVOKE_WITHIN)
        .await
        .response();
    assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer}");
    let seen = &answer["hookDetails"]["pushdeploy"]["alarms"];
    assert_eq!(seen.as_array().map(Vec::len), Some(2), "{answer}");
    assert_eq!(seen[0]["state"], "OK");
    function.stop().await;
}

/// An alarm in ALARM fails the gate with the alarm's state, time and reason, and quarantines
/// the digest; an alarm CloudWatch does not know fails it too (closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_in_alarm_or_unknown_fails_the_gate_with_the_evidence() {
    for (state, says) in [
        (Some("ALARM"), "alarm web-5xx ALARM since"),
        (None, "CloudWatch has no alarm named web-5xx"),
    ] {
        let bed = TestBed::start().await;
        if let Some(state) = state {
            bed.world()
                .set_alarm(
                    "web-5xx",
                    state,
                    "Threshold Crossed: 1 datapoint [12.0] > 1.0",
                )
                .await;
        }
        let payload = deployed(
            &bed,
            &[("pushdeploy:alarms", "web-5xx")],
            "POST_TEST_TRAFFIC_SHIFT",
        )
        .await;
        let api = RuntimeApi::start().await;
        let function = gate(&api, &bed, &[]);
        let answer = api.invoke(payload, INVOKE_WITHIN).await.response();
        assert_eq!(answer["hookStatus"], "FAILED", "{answer}");
        let reason = answer["hookDetails"]["pushdeploy"]["reason"]
            .as_str()
            .unwrap();
        assert!(reason.contains(says), "{reason}");
        if state.is_some() {
            assert!(reason.contains("Threshold Crossed"), "{reason}");
        }
        assert_eq!(quarantine_keys(&ledger_items(&bed).await).len(), 1);
        function.stop().await;
    }
}
