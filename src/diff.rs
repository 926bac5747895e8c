//! Field by field, what differs between a described task-definition revision and a request to
//! register one: the one comparison behind the dry run's diff (the running revision against the
//! planned one) and behind adopting a revision whose registration's answer was lost (the
//! family's newest revision against the request pushdeploy would have sent). Differences are
//! named, never shown: values may be secrets.

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition};
use std::fmt;

/// One difference, by name only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A field of a container both sides have.
    ContainerField {
        /// The container's name.
        container: String,
        /// The field, as the SDK's `ContainerDefinition` names it (`image`, `port_mappings`).
        field: &'static str,
    },
    /// A container the request has and the revision lacks.
    ContainerMissing(String),
    /// A container the revision has and the request lacks.
    ContainerExtra(String),
    /// The same containers, listed in another order (or one listed twice on one side).
    ContainerList,
    /// A task-level field.
    TaskField(&'static str),
    /// A tag (its key) whose value differs, or that only one side carries.
    Tag(String),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::ContainerField { container, field } => {
                write!(f, "container {container}: {field}")
            }
            Difference::ContainerMissing(name) => write!(f, "container {name} (missing)"),
            Difference::ContainerExtra(name) => write!(f, "container {name} (not planned)"),
            Difference::ContainerList => f.write_str("container definitions: order or count"),
            Difference::TaskField(field) => f.write_str(field),
            Difference::Tag(key) => write!(f, "tag {key}"),
        }
    }
}

/// Declares the compared fields of a type as a list (for the tests that hold it to the SDK's
/// fields) and a function naming those that differ between two values.
macro_rules! field_by_field {
    ($list:ident, $differing:ident, $ty:ty, [$($field:ident),* $(,)?]) => {
        /// Every field of the type, compared one by one.
        #[cfg(test)]
        const $list: &[&str] = &[$(stringify!($field)),*];

        fn $differing(a: &$ty, b: &$ty) -> Vec<&'static str> {
            let mut differing = Vec::new();
            $(if a.$field != b.$field {
                differing.push(stringify!($field));
            })*
            differing
        }
    };
}

field_by_field!(
    CONTAINER_FIELDS,
    container_fields_differing,
    ContainerDefinition,
    [
        name,
        image,
        repository_credentials,
        cpu,
        memory,
        memory_reservation,
        links,
        port_mappings,
        essential,
        restart_policy,
        entry_point,
        command,
        environment,
        environment_files,
        mount_points,
        volumes_from,
        linux_parameters,
        secrets,
        depends_on,
        start_timeout,
        stop_timeout,
        version_consistency,
        hostname,
        user,
        working_directory,
        disable_networking,
        privileged,
        readonly_root_filesystem,
        dns_servers,
        dns_search_domains,
        extra_hosts,
        docker_security_options,
        interactive,
        pseudo_terminal,
        docker_labels,
        ulimits,
        log_configuration,
        health_check,
        system_controls,
        resource_requirements,
        firelens_configuration,
        credential_specs,
    ]
);

/// The fields of `b` (same name as `a`) that differ from `a`'s; never empty when they differ,
/// even if the SDK grew a field this list does not know yet.
fn container_differences(a: &ContainerDefinition, b: &ContainerDefinition) -> Vec<&'static str> {
    let mut fields = container_fields_differing(a, b);
    if fields.is_empty() && a != b {
        fields.push("a field pushdeploy does not know");
    }
    fields
}

/// Declares the task-level fields a request sets, each with its request getter.
macro_rules! task_fields {
    ($($field:ident => $getter:ident),* $(,)?) => {
        /// The task-level fields compared, besides container definitions and tags.
        #[cfg(test)]
        const TASK_FIELDS: &[&str] = &[$(stringify!($field)),*];

        #[allow(deprecated)] // Elastic Inference is retired, but old definitions may carry it.
        fn task_fields_differing(
            described: &TaskDefinition,
            planned: &RegisterTaskDefinitionFluentBuilder,
        ) -> Vec<&'static str> {
            let mut differing = Vec::new();
            $(if &described.$field != planned.$getter() {
                differing.push(stringify!($field));
            })*
            differing
        }
    };
}

task_fields!(
    family => get_family,
    task_role_arn => get_task_role_arn,
    execution_role_arn => get_execution_role_arn,
    network_mode => get_network_mode,
    volumes => get_volumes,
    placement_constraints => get_placement_constraints,
    requires_compatibilities => get_requires_compatibilities,
    cpu => get_cpu,
    memory => get_memory,
    pid_mode => get_pid_mode,
    ipc_mode => get_ipc_mode,
    proxy_configuration => get_proxy_configuration,
    inference_accelerators => get_inference_accelerators,
    ephemeral_storage => get_ephemeral_storage,
    runtime_platform => get_runtime_platform,
    enable_fault_injection => get_enable_fault_injection,
);

/// Everything the request `planned` sets but its tags, compared with the revision `described`:
/// each container definition whole (every field), the list of containers and its order, and
/// every task-level field. Containers come in the request's order, then the revision's extras,
/// then task-level fields.
pub(crate) fn differences(
    described: &TaskDefinition,
    planned: &RegisterTaskDefinitionFluentBuilder,
) -> Vec<Difference> {
    let empty = Vec::new();
    let before = described.container_definitions();
    let after = planned
        .get_container_definitions()
        .as_ref()
        .unwrap_or(&empty);
    let mut found = Vec::new();
    for new in after {
        let name = new.name().unwrap_or("?").to_string();
        match before.iter().find(|c| c.name() == new.name()) {
            None => found.push(Difference::ContainerMissing(name)),
            Some(old) => found.extend(container_differences(old, new).into_iter().map(|field| {
                Difference::ContainerField {
                    container: name.clone(),
                    field,
                }
            })),
        }
    }
    for old in before {
        if !after.iter().any(|c| c.name() == old.name()) {
            found.push(Difference::ContainerExtra(
                old.name().unwrap_or("?").to_string(),
            ));
        }
    }
    let names = |containers: &[ContainerDefinition]| -> Vec<Option<String>> {
        containers.iter().map(|c| c.name.clone()).collect()
    };
    // Same names in another order, or a name twice on one side: nothing above says so.
    if names(before) != names(after) && !found.iter().any(is_container_set_change) {
        found.push(Difference::ContainerList);
    }
    found.extend(
        task_fields_differing(described, planned)
            .into_iter()
            .map(Difference::TaskField),
    );
    found
}

fn is_container_set_change(d: &Difference) -> bool {
    matches!(
        d,
        Difference::ContainerMissing(_) | Difference::ContainerExtra(_)
    )
}

/// The keys of the tags that differ between the revision's `described` tags and the request's:
/// a value that differs, or a tag only one side carries. `aws:` tags are not compared: they are
/// AWS's own, and no request may set them.
pub(crate) fn tag_differences(
    described: &[Tag],
    planned: &RegisterTaskDefinitionFluentBuilder,
) -> Vec<String> {
    let pairs = |tags: &[Tag]| -> Vec<(String, String)> {
        let mut pairs: Vec<_> = tags
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .filter(|(k, _)| !k.starts_with("aws:"))
            .collect();
        pairs.sort();
        pairs
    };
    let (before, after) = (
        pairs(described),
        pairs(planned.get_tags().as_deref().unwrap_or_default()),
    );
    let mut keys: Vec<String> = before
        .iter()
        .filter(|p| !after.contains(p))
        .chain(after.iter().filter(|p| !before.contains(p)))
        .map(|(k, _)| k.clone())
        .collect();
    // A key twice on one side only (ECS refuses it; compared all the same).
    if keys.is_empty() && before != after {
        keys.extend(after.iter().map(|(k, _)| k.clone()));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What keeps the revision `described` (with its `described_tags`) from being the one the
/// request `planned` would register: every difference `differences` finds, and the tags.
/// Empty: it is that revision, field by field.
pub fn unlike_planned(
    described: &TaskDefinition,
    described_tags: &[Tag],
    planned: &RegisterTaskDefinitionFluentBuilder,
) -> Vec<Difference> {
    let mut found = differences(described, planned);
    found.extend(
        tag_differences(described_tags, planned)
            .into_iter()
            .map(Difference::Tag),
    );
    found
}

/// The names of what differs, for a log line or a reason: `field, field, ...`, never values.
pub(crate) fn named(differences: &[Difference]) -> String {
    differences
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Unified-diff-like lines: `-`/`+` for what changes, `=` for what was compared and is equal.
pub(crate) fn planned_diff(
    current: &TaskDefinition,
    planned: &RegisterTaskDefinitionFluentBuilder,
) -> Vec<String> {
    let running = current
        .task_definition_arn()
        .unwrap_or("(running revision)");
    let family = planned.get_family().as_deref().unwrap_or("?");
    let mut lines = vec![
        format!("--- {running} (running)"),
        format!("+++ {family}:<next revision> (planned)"),
    ];
    let found = differences(current, planned);
    let empty = Vec::new();
    let after = planned
        .get_container_definitions()
        .as_ref()
        .unwrap_or(&empty);
    let mut same = Vec::new();
    for new in after {
        match container_lines(current, new, &found) {
            Some(changed) => lines.extend(changed),
            None => same.push(format!("container {}", new.name().unwrap_or("?"))),
        }
    }
    let differing = task_lines(&found, &mut lines);
    same.push(
        "task settings (family, roles, network mode, cpu, memory, volumes, placement, platform)"
            .into(),
    );
    if !differing {
        lines.push(format!("= unchanged: {}", same.join(", ")));
    } else {
        same.pop();
        if !same.is_empty() {
            lines.push(format!("= unchanged: {}", same.join(", ")));
        }
    }
    lines.push("+ tags: pushdeploy provenance (pushed tag, digest, pushed at, event id, previous revision)".into());
    lines
}

/// The lines of one planned container: new, its image changed (both values: an image is no
/// secret), other fields named without values; `None` when it is unchanged.
fn container_lines(
    current: &TaskDefinition,
    new: &ContainerDefinition,
    found: &[Difference],
) -> Option<Vec<String>> {
    let name = new.name().unwrap_or("?");
    if found.contains(&Difference::ContainerMissing(name.to_string())) {
        return Some(vec![format!("+ container {name} (new)")]);
    }
    let fields: Vec<&str> = found
        .iter()
        .filter_map(|d| match d {
            Difference::ContainerField { container, field } if container == name => Some(*field),
            _ => None,
        })
        .collect();
    if fields.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    if fields.contains(&"image") {
        let old = current
            .container_definitions()
            .iter()
            .find(|c| c.name() == Some(name))
            .and_then(|c| c.image());
        lines.push(format!("  container {name}:"));
        lines.push(format!("-   image: {}", old.unwrap_or("")));
        lines.push(format!("+   image: {}", new.image().unwrap_or("")));
    }
    let others: Vec<&str> = fields.into_iter().filter(|f| *f != "image").collect();
    if !others.is_empty() {
        lines.push(format!(
            "! container {name}: {} differ (values not shown: they may hold secrets)",
            others.join(", ")
        ));
    }
    Some(lines)
}

/// The lines of what differs beyond the planned containers (dropped containers, their order,
/// task-level fields), appended to `lines`; whether any task-level field differs.
fn task_lines(found: &[Difference], lines: &mut Vec<String>) -> bool {
    let mut differing = Vec::new();
    for difference in found {
        match difference {
            Difference::ContainerExtra(name) => lines.push(format!("- container {name} (dropped)")),
            Difference::ContainerList => {
                lines.push("! container definitions: order or count differs".into())
            }
            Difference::TaskField(field) => differing.push(*field),
            _ => {}
        }
    }
    for field in &differing {
        lines.push(format!("! task definition {field} differs"));
    }
    !differing.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision::{revision_request, Provenance};
    use aws_sdk_ecs::types::*;

    fn container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition::builder()
            .name(name)
            .image(image)
            .environment(
                aws_sdk_ecs::types::KeyValuePair::builder()
                    .name("DB_PASSWORD")
                    .value("hunter2")
                    .build(),
            )
            .build()
    }

    #[test]
    fn the_diff_of_a_planned_revision_is_the_image_only() {
        let current = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3")
            .family("web")
            .cpu("256")
            .container_definitions(container("app", "r/web:latest"))
            .container_definitions(container("log-router", "fluent-bit:stable"))
            .build();
        let sdk = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_ecs::Client::from_conf(sdk);
        let provenance = Provenance {
            pushed_tag: "latest".into(),
            digest: "sha256:b".into(),
            pushed_at: "t".into(),
            event_id: "e".into(),
            previous_task_definition: "p".into(),
        };
        let request = revision_request(
            client.register_task_definition(),
            &current,
            &[],
            "app",
            "r/web@sha256:b",
            &provenance,
        )
        .unwrap();
        let diff = planned_diff(&current, &request);
        assert_eq!(
            diff[..5],
            [
                "--- arn:aws:ecs:us-east-1:123456789012:task-definition/web:3 (running)",
                "+++ web:<next revision> (planned)",
                "  container app:",
                "-   image: r/web:latest",
                "+   image: r/web@sha256:b",
            ]
        );
        assert!(diff[5].starts_with("= unchanged: container log-router, task settings"));
        assert!(!diff.iter().any(|l| l.starts_with('!')), "{diff:#?}");
        assert!(!diff.join("\n").contains("hunter2"));

        // A request that changed more than the image says so, without the values.
        let mut other = container("app", "r/web@sha256:b");
        other.environment = None;
        let tampered = request.clone().container_definitions(other).cpu("512");
        let diff = planned_diff(&current, &tampered);
        assert!(
            diff.iter().any(|l| l == "! task definition cpu differs"),
            "{diff:#?}"
        );
    }

    const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn client() -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::Config::builder()
                .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
                .build(),
        )
    }

    /// A running revision with most of what a task definition can say.
    fn running() -> (TaskDefinition, Vec<Tag>) {
        let app = ContainerDefinition::builder()
            .name("app")
            .image(format!("{REGISTRY}/web:latest"))
            .cpu(256)
            .memory(512)
            .essential(true)
            .port_mappings(PortMapping::builder().container_port(8080).build())
            .environment(
                KeyValuePair::builder()
                    .name("DB_PASSWORD")
                    .value("hunter2")
                    .build(),
            )
            .secrets(
                Secret::builder()
                    .name("API_KEY")
                    .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:api")
                    .build()
                    .unwrap(),
            )
            .build();
        let router = ContainerDefinition::builder()
            .name("log-router")
            .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable")
            .essential(false)
            .build();
        let definition = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3")
            .revision(3)
            .status(TaskDefinitionStatus::Active)
            .family("web")
            .task_role_arn("arn:aws:iam::123456789012:role/web-task")
            .execution_role_arn("arn:aws:iam::123456789012:role/web-exec")
            .network_mode(NetworkMode::Awsvpc)
            .container_definitions(app)
            .container_definitions(router)
            .volumes(Volume::builder().name("data").build())
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::Arm64)
                    .build(),
            )
            .build();
        let tags = vec![Tag::builder().key("team").value("web").build()];
        (definition, tags)
    }

    fn plan(current: &TaskDefinition, tags: &[Tag]) -> RegisterTaskDefinitionFluentBuilder {
        let provenance = Provenance {
            pushed_tag: "latest".into(),
            digest: format!("sha256:{}", "b".repeat(64)),
            pushed_at: "2026-11-26T12:00:00Z".into(),
            event_id: "reconcile-bbbb".into(),
            previous_task_definition: current.task_definition_arn().unwrap().into(),
        };
        let image = format!("{REGISTRY}/web@sha256:{}", "b".repeat(64));
        revision_request(
            client().register_task_definition(),
            current,
            tags,
            "app",
            &image,
            &provenance,
        )
        .unwrap()
    }

    /// The revision `planned` registers, as DescribeTaskDefinition (with tags) returns it.
    #[allow(deprecated)]
    fn registered(planned: &RegisterTaskDefinitionFluentBuilder) -> (TaskDefinition, Vec<Tag>) {
        let definition = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/web:4")
            .revision(4)
            .status(TaskDefinitionStatus::Active)
            .registered_by("arn:aws:iam::123456789012:role/pushdeploy-deploy")
            .compatibilities(Compatibility::Ec2)
            .compatibilities(Compatibility::Fargate)
            .set_family(planned.get_family().clone())
            .set_task_role_arn(planned.get_task_role_arn().clone())
            .set_execution_role_arn(planned.get_execution_role_arn().clone())
            .set_network_mode(planned.get_network_mode().clone())
            .set_container_definitions(planned.get_container_definitions().clone())
            .set_volumes(planned.get_volumes().clone())
            .set_placement_constraints(planned.get_placement_constraints().clone())
            .set_requires_compatibilities(planned.get_requires_compatibilities().clone())
            .set_cpu(planned.get_cpu().clone())
            .set_memory(planned.get_memory().clone())
            .set_pid_mode(planned.get_pid_mode().clone())
            .set_ipc_mode(planned.get_ipc_mode().clone())
            .set_proxy_configuration(planned.get_proxy_configuration().clone())
            .set_inference_accelerators(planned.get_inference_accelerators().clone())
            .set_ephemeral_storage(planned.get_ephemeral_storage().clone())
            .set_runtime_platform(planned.get_runtime_platform().clone())
            .set_enable_fault_injection(*planned.get_enable_fault_injection())
            .build();
        // ECS lists tags in an order of its own.
        let mut tags = planned.get_tags().clone().unwrap_or_default();
        tags.reverse();
        (definition, tags)
    }

    fn app(definition: &mut TaskDefinition) -> &mut ContainerDefinition {
        definition
            .container_definitions
            .as_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c.name.as_deref() == Some("app"))
            .unwrap()
    }

    fn field(container: &str, field: &'static str) -> Difference {
        Difference::ContainerField {
            container: container.into(),
            field,
        }
    }

    #[test]
    fn the_revision_the_request_registers_is_unlike_it_in_nothing() {
        let (current, tags) = running();
        let planned = plan(&current, &tags);
        let (described, described_tags) = registered(&planned);
        assert_eq!(unlike_planned(&described, &described_tags, &planned), []);
        // Tags ECS keeps for itself are not the request's to set, nor compared.
        let mut with_aws = described_tags.clone();
        with_aws.push(Tag::builder().key("aws:ecs:clusterName").value("x").build());
        assert_eq!(unlike_planned(&described, &with_aws, &planned), []);
        // The running revision differs in the image and the provenance tags, nothing else.
        assert_eq!(
            unlike_planned(&current, &tags, &planned)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "container app: image",
                "tag pushdeploy:digest",
                "tag pushdeploy:event-id",
                "tag pushdeploy:previous-task-definition",
                "tag pushdeploy:pushed-at",
                "tag pushdeploy:pushed-tag",
            ]
        );
    }

    #[test]
    fn a_revision_that_differs_in_any_field_is_unlike_the_request_and_says_which() {
        type Change = fn(&mut TaskDefinition, &mut Vec<Tag>);
        let table: Vec<(&str, Change, Vec<Difference>)> = vec![
            (
                "an extra environment variable",
                |d, _| {
                    app(d).environment.as_mut().unwrap().push(
                        KeyValuePair::builder()
                            .name("LD_PRELOAD")
                            .value("/tmp/evil.so")
                            .build(),
                    )
                },
                vec![field("app", "environment")],
            ),
            (
                "another secret",
                |d, _| {
                    app(d).secrets.as_mut().unwrap()[0].value_from =
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:other".into()
                },
                vec![field("app", "secrets")],
            ),
            (
                "the image by tag",
                |d, _| app(d).image = Some(format!("{REGISTRY}/web:latest")),
                vec![field("app", "image")],
            ),
            (
                "privileged, and another command",
                |d, _| {
                    app(d).privileged = Some(true);
                    app(d).command = Some(vec!["sh".into()]);
                },
                vec![field("app", "command"), field("app", "privileged")],
            ),
            (
                "registry credentials",
                |d, _| {
                    app(d).repository_credentials = Some(
                        RepositoryCredentials::builder()
                            .credentials_parameter("arn:aws:secretsmanager:us-east-1:1:secret:x")
                            .build()
                            .unwrap(),
                    )
                },
                vec![field("app", "repository_credentials")],
            ),
            (
                "another task role",
                |d, _| d.task_role_arn = Some("arn:aws:iam::123456789012:role/admin".into()),
                vec![Difference::TaskField("task_role_arn")],
            ),
            (
                "no execution role",
                |d, _| d.execution_role_arn = None,
                vec![Difference::TaskField("execution_role_arn")],
            ),
            (
                "an added container",
                |d, _| {
                    d.container_definitions.as_mut().unwrap().push(
                        ContainerDefinition::builder()
                            .name("miner")
                            .image("docker.io/evil/miner")
                            .build(),
                    )
                },
                vec![Difference::ContainerExtra("miner".into())],
            ),
            (
                "a container left out",
                |d, _| d.container_definitions.as_mut().unwrap().truncate(1),
                vec![Difference::ContainerMissing("log-router".into())],
            ),
            (
                "the containers in another order",
                |d, _| d.container_definitions.as_mut().unwrap().reverse(),
                vec![Difference::ContainerList],
            ),
            (
                "a container listed twice",
                |d, _| {
                    let again = d.container_definitions.as_ref().unwrap()[1].clone();
                    d.container_definitions.as_mut().unwrap().push(again)
                },
                vec![Difference::ContainerList],
            ),
            (
                "task-level settings",
                |d, _| {
                    d.network_mode = Some(NetworkMode::Host);
                    d.cpu = Some("4096".into());
                    d.volumes = Some(vec![Volume::builder()
                        .name("data")
                        .host(HostVolumeProperties::builder().source_path("/").build())
                        .build()]);
                    d.pid_mode = Some(PidMode::Host);
                    d.runtime_platform = None;
                    d.placement_constraints = Some(vec![]);
                },
                vec![
                    Difference::TaskField("network_mode"),
                    Difference::TaskField("volumes"),
                    Difference::TaskField("placement_constraints"),
                    Difference::TaskField("cpu"),
                    Difference::TaskField("pid_mode"),
                    Difference::TaskField("runtime_platform"),
                ],
            ),
            (
                "another family",
                |d, _| d.family = Some("web-evil".into()),
                vec![Difference::TaskField("family")],
            ),
            (
                "another event id",
                |_, t| {
                    t.retain(|t| t.key() != Some("pushdeploy:event-id"));
                    t.push(
                        Tag::builder()
                            .key("pushdeploy:event-id")
                            .value("ev-2")
                            .build(),
                    );
                },
                vec![Difference::Tag("pushdeploy:event-id".into())],
            ),
            (
                "a tag left out, another added",
                |_, t| {
                    t.retain(|t| t.key() != Some("team"));
                    t.push(Tag::builder().key("owner").value("mallory").build());
                },
                vec![
                    Difference::Tag("owner".into()),
                    Difference::Tag("team".into()),
                ],
            ),
            (
                "only what ECS computes",
                |d, _| {
                    d.revision = 99;
                    d.registered_by = Some("arn:aws:iam::123456789012:user/mallory".into());
                    d.requires_attributes = Some(vec![]);
                },
                vec![],
            ),
        ];
        let (current, tags) = running();
        let planned = plan(&current, &tags);
        for (what, change, expected) in table {
            let (mut described, mut described_tags) = registered(&planned);
            change(&mut described, &mut described_tags);
            let found = unlike_planned(&described, &described_tags, &planned);
            assert_eq!(found, expected, "{what}");
            let said = found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            for secret in [
                "hunter2",
                "/tmp/evil.so",
                "mallory",
                "secret:other",
                "role/admin",
            ] {
                assert!(!said.contains(secret), "{what}: {said}");
            }
        }
    }

    /// The top-level field names of a derived `Debug` rendering `Type { name: value, .. }`.
    fn debug_names(rendered: &str) -> Vec<String> {
        let body = &rendered[rendered.find('{').unwrap() + 1..rendered.rfind('}').unwrap()];
        let (mut names, mut depth, mut in_string, mut at_name) = (Vec::new(), 0, false, true);
        let mut name = String::new();
        for c in body.chars() {
            match c {
                '"' => in_string = !in_string,
                '{' | '[' | '(' if !in_string => depth += 1,
                '}' | ']' | ')' if !in_string => depth -= 1,
                ',' if !in_string && depth == 0 => at_name = true,
                ':' if at_name && depth == 0 => {
                    names.push(std::mem::take(&mut name).trim().to_string());
                    at_name = false;
                }
                _ if at_name => name.push(c),
                _ => {}
            }
        }
        names
    }

    #[test]
    fn every_field_the_sdk_knows_is_compared() {
        let mut container = debug_names(&format!("{:?}", ContainerDefinition::builder().build()));
        let mut listed: Vec<String> = CONTAINER_FIELDS.iter().map(|f| f.to_string()).collect();
        container.sort();
        listed.sort();
        assert_eq!(container, listed, "ContainerDefinition's fields");

        // Every field a request sets: the task-level ones, containers and tags.
        let request = client().register_task_definition();
        let mut input = debug_names(&format!("{:?}", request.as_input()));
        let mut compared: Vec<String> = TASK_FIELDS
            .iter()
            .chain(&["container_definitions", "tags"])
            .map(|f| f.to_string())
            .collect();
        input.sort();
        compared.sort();
        assert_eq!(input, compared, "RegisterTaskDefinition's fields");

        // And every field a described revision has is compared, or one ECS computes.
        let mut described = debug_names(&format!("{:?}", TaskDefinition::builder().build()));
        let mut known: Vec<String> = TASK_FIELDS
            .iter()
            .chain(&["container_definitions"])
            .chain(crate::revision::READ_ONLY_FIELDS.iter())
            .map(|f| f.to_string())
            .collect();
        described.sort();
        known.sort();
        assert_eq!(described, known, "TaskDefinition's fields");
    }
}
