#![allow(deprecated)] // the fixture sets every field, the retired Elastic Inference one too
use super::*;
use aws_sdk_ecs::types::*;
use aws_smithy_types::DateTime;

const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// A task definition with every field the SDK knows set, as DescribeTaskDefinition returns it.
fn described() -> TaskDefinition {
    let app = ContainerDefinition::builder()
        .name("app")
        .image(format!("{REGISTRY}/web:latest"))
        .cpu(256)
        .memory(512)
        .essential(true)
        .port_mappings(
            PortMapping::builder()
                .container_port(8080)
                .protocol(TransportProtocol::Tcp)
                .name("http")
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("DATABASE_URL")
                .value("postgres://user:hunter2@db/app")
                .build(),
        )
        .secrets(
            Secret::builder()
                .name("API_KEY")
                .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:api")
                .build()
                .unwrap(),
        )
        .depends_on(
            ContainerDependency::builder()
                .container_name("envoy")
                .condition(ContainerCondition::Healthy)
                .build()
                .unwrap(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f localhost:8080/health")
                .interval(10)
                .build()
                .unwrap(),
        )
        .ulimits(
            Ulimit::builder()
                .name(UlimitName::Nofile)
                .soft_limit(4096)
                .hard_limit(8192)
                .build()
                .unwrap(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/ecs/web")
                .build()
                .unwrap(),
        )
        .mount_points(
            MountPoint::builder()
                .source_volume("data")
                .container_path("/data")
                .build(),
        )
        .docker_labels("team", "web")
        .build();
    let envoy = ContainerDefinition::builder()
        .name("envoy")
        .image("public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29")
        .essential(true)
        .build();
    TaskDefinition::builder()
        .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/web:7")
        .container_definitions(app)
        .container_definitions(envoy)
        .family("web")
        .task_role_arn("arn:aws:iam::123456789012:role/web-task")
        .execution_role_arn("arn:aws:iam::123456789012:role/web-exec")
        .network_mode(NetworkMode::Awsvpc)
        .revision(7)
        .volumes(
            Volume::builder()
                .name("data")
                .efs_volume_configuration(
                    EfsVolumeConfiguration::builder()
                        .file_system_id("fs-1")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .status(TaskDefinitionStatus::Active)
        .requires_attributes(
            Attribute::builder()
                .name("com.amazonaws.ecs.capability.docker-remote-api.1.19")
                .build()
                .unwrap(),
        )
        .placement_constraints(
            TaskDefinitionPlacementConstraint::builder()
                .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                .expression("attribute:ecs.os-type == linux")
                .build(),
        )
        .compatibilities(Compatibility::Ec2)
        .compatibilities(Compatibility::Fargate)
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture(CpuArchitecture::X8664)
                .operating_system_family(OsFamily::Linux)
                .build(),
        )
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .inference_accelerators(
            InferenceAccelerator::builder()
                .device_name("gpu0")
                .device_type("eia2.medium")
                .build()
                .unwrap(),
        )
        .pid_mode(PidMode::Task)
        .ipc_mode(IpcMode::Task)
        .proxy_configuration(
            ProxyConfiguration::builder()
                .container_name("envoy")
                .r#type(ProxyConfigurationType::Appmesh)
                .properties(
                    KeyValuePair::builder()
                        .name("AppPorts")
                        .value("8080")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .registered_at(DateTime::from_secs(1_700_000_000))
        .deregistered_at(DateTime::from_secs(1_700_000_100))
        .delete_requested_at(DateTime::from_secs(1_700_000_200))
        .registered_by("arn:aws:iam::123456789012:user/alice")
        .ephemeral_storage(EphemeralStorage::builder().size_in_gib(30).build())
        .enable_fault_injection(true)
        .build()
}

fn provenance() -> Provenance {
    Provenance {
        pushed_tag: "latest".into(),
        digest: format!("sha256:{}", "b".repeat(64)),
        pushed_at: "2026-11-26T12:00:00Z".into(),
        event_id: "e-1".into(),
        previous_task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7".into(),
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn request(
    current: &TaskDefinition,
    tags: &[Tag],
    container: &str,
    image: &str,
) -> Result<RegisterTaskDefinitionFluentBuilder, RevisionError> {
    // A client that is never sent anything: only its request builder is inspected.
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("us-east-1"))
        .build();
    revision_request(
        aws_sdk_ecs::Client::from_conf(config).register_task_definition(),
        current,
        tags,
        container,
        image,
        &provenance(),
    )
}

/// The top-level `name: value` pairs of a derived `Debug` rendering `Type { name: value, .. }`.
fn debug_fields(rendered: &str) -> Vec<(String, String)> {
    let body = &rendered[rendered.find('{').expect("a struct") + 1..rendered.rfind('}').unwrap()];
    let (mut fields, mut depth, mut in_string, mut escaped, mut start) =
        (Vec::new(), 0i32, false, false, 0);
    let mut push = |part: &str| {
        if let Some((name, value)) = part.split_once(": ") {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    };
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' | '[' | '(' if !in_string => depth += 1,
            '}' | ']' | ')' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&body[start..]);
    fields
}

#[test]
fn the_fixture_sets_every_field_the_sdk_knows() {
    // When the SDK grows a field, it shows up here as None: set it in `described()`, then the
    // next test tells whether the revision carries it over.
    let unset: Vec<_> = debug_fields(&format!("{:?}", described()))
        .into_iter()
        .filter(|(_, v)| v == "None")
        .map(|(n, _)| n)
        .collect();
    assert!(
        unset.is_empty(),
        "fixture leaves these TaskDefinition fields unset: {unset:?}"
    );
}

#[test]
fn every_writable_field_is_carried_over_unchanged() {
    let current = described();
    let image = format!("{REGISTRY}/web@sha256:{}", "b".repeat(64));
    let built = request(&current, &[], "app", &image).unwrap();
    let input: std::collections::BTreeMap<_, _> = debug_fields(&format!("{:?}", built.as_input()))
        .into_iter()
        .collect();
    let mut expected_containers = current.container_definitions.clone().unwrap();
    expected_containers[0].image = Some(image);

    for (name, value) in debug_fields(&format!("{current:?}")) {
        if READ_ONLY_FIELDS.contains(&name.as_str()) {
            assert!(
                !input.contains_key(&name),
                "{name} is read-only but RegisterTaskDefinition takes it"
            );
            continue;
        }
        let carried = input.get(&name).unwrap_or_else(|| {
            panic!("TaskDefinition.{name} has no RegisterTaskDefinition field: classify it")
        });
        if name == "container_definitions" {
            // Debug redacts environment values, so containers are compared whole, below.
            continue;
        }
        assert_eq!(
            carried, &value,
            "TaskDefinition.{name} was not carried over"
        );
    }
    assert_eq!(
        built.get_container_definitions().as_ref(),
        Some(&expected_containers),
        "only app's image may change"
    );
    // And RegisterTaskDefinition takes nothing that the described definition lacks, but tags.
    let described_names: Vec<_> = debug_fields(&format!("{current:?}"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for name in input.keys() {
        assert!(
            name == "tags" || described_names.contains(name),
            "RegisterTaskDefinition.{name} is not filled from the described definition"
        );
    }
}

#[test]
fn tags_are_kept_reserved_ones_dropped_and_provenance_replaced() {
    let current = [
        tag("team", "web"),
        tag("aws:cloudformation:stack-name", "s"),
        tag(TAG_DIGEST, "sha256:old"),
        tag(TAG_EVENT_ID, "old"),
    ];
    let built = request(&described(), &current, "app", "x").unwrap();
    let tags = built.get_tags().clone().unwrap();
    assert_eq!(tag_value(&tags, "team"), Some("web"));
    assert_eq!(tag_value(&tags, "aws:cloudformation:stack-name"), None);
    assert_eq!(
        tag_value(&tags, TAG_DIGEST),
        Some(provenance().digest.as_str())
    );
    assert_eq!(tag_value(&tags, TAG_EVENT_ID), Some("e-1"));
    assert_eq!(tag_value(&tags, TAG_PUSHED_TAG), Some("latest"));
    assert_eq!(
        tag_value(&tags, TAG_PUSHED_AT),
        Some("2026-11-26T12:00:00Z")
    );
    assert_eq!(
        tag_value(&tags, TAG_PREVIOUS),
        Some(provenance().previous_task_definition.as_str())
    );
    assert_eq!(tags.len(), 6);
}

#[test]
fn too_many_tags_and_unknown_containers_are_refused() {
    let many: Vec<Tag> = (0..46).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert_eq!(
        request(&described(), &many, "app", "x").unwrap_err(),
        RevisionError::TooManyTags(51)
    );
    assert_eq!(
        request(&described(), &[], "nope", "x").unwrap_err(),
        RevisionError::NoSuchContainer("nope".into())
    );
}
