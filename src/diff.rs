//! The difference between the running revision and the one pushdeploy would register, for the
//! dry run. It is computed from the real request, field by field, not assumed: by construction
//! only one image changes, and the diff shows it (anything else would show up as a line naming
//! the field, without its value: values may be secrets).

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::TaskDefinition;

/// Unified-diff-like lines: `-`/`+` for what changes, `=` for what was compared and is equal.
pub fn planned_diff(
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
    let empty = Vec::new();
    let before = current.container_definitions();
    let after = planned
        .get_container_definitions()
        .as_ref()
        .unwrap_or(&empty);
    let mut same = Vec::new();
    for new in after {
        let name = new.name().unwrap_or("?");
        let Some(old) = before.iter().find(|c| c.name() == new.name()) else {
            lines.push(format!("+ container {name} (new)"));
            continue;
        };
        if old == new {
            same.push(format!("container {name}"));
            continue;
        }
        if old.image() != new.image() {
            lines.push(format!("  container {name}:"));
            lines.push(format!("-   image: {}", old.image().unwrap_or("")));
            lines.push(format!("+   image: {}", new.image().unwrap_or("")));
        }
        let mut with_new_image = old.clone();
        with_new_image.image = new.image.clone();
        if &with_new_image != new {
            lines.push(format!(
                "! container {name}: settings other than the image differ (not shown: they may hold secrets)"
            ));
        }
    }
    for old in before {
        if !after.iter().any(|c| c.name() == old.name()) {
            lines.push(format!(
                "- container {} (dropped)",
                old.name().unwrap_or("?")
            ));
        }
    }

    let mut differing = Vec::new();
    macro_rules! compare {
        ($($field:ident => $getter:ident),* $(,)?) => {$(
            if &current.$field != planned.$getter() {
                differing.push(stringify!($field));
            }
        )*};
    }
    #[allow(deprecated)]
    {
        compare!(
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
    }
    for field in &differing {
        lines.push(format!("! task definition {field} differs"));
    }
    same.push(
        "task settings (family, roles, network mode, cpu, memory, volumes, placement, platform)"
            .into(),
    );
    if differing.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision::{revision_request, Provenance};
    use aws_sdk_ecs::types::ContainerDefinition;

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
}
