//! Services under the CODE_DEPLOY deployment controller, over plain data: which deployment group
//! deploys the service, the AppSpec content that moves it onto a revision, and what a CodeDeploy
//! deployment's status means to pushdeploy. The calls live in `crate::aws` (codedeploy.rs).
//!
//! ECS refuses a new task definition through UpdateService on these services ("If the network
//! configuration, platform version, task definition, or load balancer need to be updated,
//! create a new CodeDeploy deployment", API UpdateService), so pushdeploy starts a CodeDeploy
//! deployment with the revision it registered, and leaves the rollback to CodeDeploy.

use aws_sdk_ecs::types::Service;

/// Service tag: the CodeDeploy application whose deployment group deploys the service; with
/// [`TAG_CODEDEPLOY_GROUP`], it spares the search through every application.
pub const TAG_CODEDEPLOY_APPLICATION: &str = "pushdeploy:codedeploy-application";
/// Service tag: that deployment group.
pub const TAG_CODEDEPLOY_GROUP: &str = "pushdeploy:codedeploy-group";

/// Whether the service is under the CODE_DEPLOY deployment controller.
pub(crate) fn is_code_deploy(service: &Service) -> bool {
    matches!(
        service.deployment_controller().map(|c| c.r#type()),
        Some(aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy)
    )
}

/// One CodeDeploy deployment group, by its application's name and its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRef {
    pub(crate) application: String,
    pub(crate) group: String,
}

impl std::fmt::Display for GroupRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.application, self.group)
    }
}

/// The deployment group the service's tags name: `Ok(None)` when they name none, `Err` when
/// they name half of one.
pub(crate) fn group_named_by_tags(service: &Service) -> Result<Option<GroupRef>, String> {
    let tag = |key: &str| {
        service
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (tag(TAG_CODEDEPLOY_APPLICATION), tag(TAG_CODEDEPLOY_GROUP)) {
        (Some(application), Some(group)) => Ok(Some(GroupRef { application, group })),
        (None, None) => Ok(None),
        _ => Err(format!(
            "the service's tags name half a CodeDeploy deployment group: set both {TAG_CODEDEPLOY_APPLICATION} and {TAG_CODEDEPLOY_GROUP}, or neither"
        )),
    }
}

/// Whether a deployment group whose `ecsServices` are `targets` ((cluster name, service name),
/// as CodeDeploy's ECSService names them) deploys `service` of `cluster` (names or ARNs).
pub(crate) fn group_deploys(targets: &[(String, String)], cluster: &str, service: &str) -> bool {
    let name = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let (cluster, service) = (name(cluster), name(service));
    targets
        .iter()
        .any(|(c, s)| name(c) == cluster && name(s) == service)
}

/// The one group among `found` that deploys the service, or why there is not exactly one.
pub(crate) fn the_one_group(
    found: Vec<GroupRef>,
    cluster: &str,
    service: &str,
) -> Result<GroupRef, String> {
    let how = format!(
        "name one with the service tags {TAG_CODEDEPLOY_APPLICATION} and {TAG_CODEDEPLOY_GROUP}"
    );
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one group")),
        0 => Err(format!(
            "no CodeDeploy deployment group lists service {service} of cluster {cluster} among its ECS services; {how}"
        )),
        _ => Err(format!(
            "{} CodeDeploy deployment groups list service {service} of cluster {cluster} ({}); {how}",
            found.len(),
            found.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The container and port CodeDeploy shifts traffic to: the service's load balancer's.
/// CodeDeploy's ECS deployments need one ("If the service is using the CODE_DEPLOY deployment
/// controller, the service is required to use either an Application Load Balancer or Network
/// Load Balancer", AWS::ECS::Service LoadBalancer).
pub(crate) fn traffic_target(service: &Service) -> Result<(String, i32), String> {
    service
        .load_balancers()
        .iter()
        .find_map(|lb| Some((lb.container_name()?.to_string(), lb.container_port()?)))
        .ok_or_else(|| {
            "the service names no load balancer container and port, which CodeDeploy needs to shift its traffic".to_string()
        })
}

/// The AppSpec content of a deployment onto `task_definition`, in the shape of the CodeDeploy
/// User Guide's ECS example ("Step 2: Create the AppSpec file"): JSON, which `AppSpecContent`
/// takes as well as YAML ("The YAML-formatted or JSON-formatted revision string").
pub(crate) fn appspec(task_definition: &str, container: &str, port: i32) -> String {
    serde_json::json!({
        "version": 0.0,
        "Resources": [{
            "TargetService": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "TaskDefinition": task_definition,
                    "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port}
                }
            }
        }]
    })
    .to_string()
}

/// The task definition an AppSpec content (JSON) deploys, if it reads.
pub(crate) fn appspec_task_definition(content: &str) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_str(content).ok()?;
    spec["Resources"]
        .as_array()?
        .iter()
        .find_map(|r| r["TargetService"]["Properties"]["TaskDefinition"].as_str())
        .map(str::to_string)
}

/// A CodeDeploy deployment as GetDeployment describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CodeDeployDeployment {
    pub(crate) id: String,
    /// `Created | Queued | InProgress | Baking | Succeeded | Failed | Stopped | Ready`
    /// (API DeploymentStatus).
    pub(crate) status: String,
    /// `errorInformation`: "Information about any error associated with this deployment", as
    /// "code: message".
    pub(crate) error: Option<String>,
    /// `rollbackInfo`: the deployment CodeDeploy started to roll this one back, and why.
    pub(crate) rolled_back_by: Option<String>,
    /// The task definition its AppSpec content deploys.
    pub(crate) task_definition: Option<String>,
}

/// What a CodeDeploy deployment's status means to pushdeploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodeDeployShows {
    /// Not ended: Created, Queued, InProgress, Baking (the original task set kept for the
    /// termination wait), Ready (waiting for someone to reroute traffic).
    InFlight(String),
    Succeeded,
    /// Failed, and CodeDeploy started its rollback (the deployment group's automatic rollback).
    RolledBack(String),
    /// Failed without a rollback, or stopped: where the service stands is CodeDeploy's
    /// configuration's doing, and a person must look.
    EndedWithoutRollback(String),
}

pub(crate) fn codedeploy_shows(d: &CodeDeployDeployment) -> CodeDeployShows {
    let why = || {
        d.error
            .clone()
            .unwrap_or_else(|| "CodeDeploy gave no reason".into())
    };
    match d.status.as_str() {
        "Succeeded" => CodeDeployShows::Succeeded,
        "Failed" => match &d.rolled_back_by {
            Some(rollback) => CodeDeployShows::RolledBack(format!("{}; {rollback}", why())),
            None => CodeDeployShows::EndedWithoutRollback(format!(
                "failed without an automatic rollback: {}",
                why()
            )),
        },
        "Stopped" => CodeDeployShows::EndedWithoutRollback(format!("stopped: {}", why())),
        other => CodeDeployShows::InFlight(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{LoadBalancer, Tag};

    fn service(tags: &[(&str, &str)], lbs: Vec<LoadBalancer>) -> Service {
        Service::builder()
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .set_load_balancers(Some(lbs))
            .build()
    }

    #[test]
    fn tags_name_a_whole_group_or_none() {
        let both = service(
            &[
                (TAG_CODEDEPLOY_APPLICATION, "app"),
                (TAG_CODEDEPLOY_GROUP, "dg"),
            ],
            vec![],
        );
        assert_eq!(
            group_named_by_tags(&both),
            Ok(Some(GroupRef {
                application: "app".into(),
                group: "dg".into()
            }))
        );
        assert_eq!(group_named_by_tags(&service(&[], vec![])), Ok(None));
        let half = service(&[(TAG_CODEDEPLOY_GROUP, "dg")], vec![]);
        assert!(group_named_by_tags(&half).unwrap_err().contains("both"));
    }

    #[test]
    fn a_group_deploys_the_service_it_lists_by_name_or_arn() {
        let targets = vec![("prod".to_string(), "web".to_string())];
        assert!(group_deploys(&targets, "prod", "web"));
        assert!(group_deploys(
            &targets,
            "arn:aws:ecs:eu-west-1:1:cluster/prod",
            "arn:aws:ecs:eu-west-1:1:service/prod/web"
        ));
        assert!(!group_deploys(&targets, "staging", "web"));
        assert!(!group_deploys(&targets, "prod", "api"));
    }

    #[test]
    fn exactly_one_group_or_a_reason() {
        let g = |a: &str| GroupRef {
            application: a.into(),
            group: "dg".into(),
        };
        assert_eq!(the_one_group(vec![g("a")], "prod", "web"), Ok(g("a")));
        let none = the_one_group(vec![], "prod", "web").unwrap_err();
        assert!(
            none.contains("no CodeDeploy deployment group") && none.contains(TAG_CODEDEPLOY_GROUP)
        );
        let two = the_one_group(vec![g("a"), g("b")], "prod", "web").unwrap_err();
        assert!(two.contains("a/dg, b/dg"), "{two}");
    }

    #[test]
    fn the_appspec_names_the_revision_and_the_load_balancers_container() {
        let lb = LoadBalancer::builder()
            .container_name("web")
            .container_port(8080)
            .build();
        let (container, port) = traffic_target(&service(&[], vec![lb])).unwrap();
        let spec = appspec("arn:aws:ecs:r:1:task-definition/web:7", &container, port);
        let read: serde_json::Value = serde_json::from_str(&spec).unwrap();
        let props = &read["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(
            read["Resources"][0]["TargetService"]["Type"],
            "AWS::ECS::Service"
        );
        assert_eq!(props["LoadBalancerInfo"]["ContainerName"], "web");
        assert_eq!(props["LoadBalancerInfo"]["ContainerPort"], 8080);
        assert_eq!(
            appspec_task_definition(&spec).as_deref(),
            Some("arn:aws:ecs:r:1:task-definition/web:7")
        );
        assert!(traffic_target(&service(&[], vec![])).is_err());
    }

    #[test]
    fn each_status_means_one_thing() {
        let d = |status: &str, rolled_back: bool| CodeDeployDeployment {
            id: "d-1".into(),
            status: status.into(),
            error: Some("HEALTH_CONSTRAINTS: tasks failed".into()),
            rolled_back_by: rolled_back.then(|| "rolled back by d-2".into()),
            task_definition: None,
        };
        for status in ["Created", "Queued", "InProgress", "Baking", "Ready"] {
            assert_eq!(
                codedeploy_shows(&d(status, false)),
                CodeDeployShows::InFlight(status.into())
            );
        }
        assert_eq!(
            codedeploy_shows(&d("Succeeded", false)),
            CodeDeployShows::Succeeded
        );
        assert!(matches!(
            codedeploy_shows(&d("Failed", true)),
            CodeDeployShows::RolledBack(why) if why.contains("tasks failed") && why.contains("d-2")
        ));
        assert!(matches!(
            codedeploy_shows(&d("Failed", false)),
            CodeDeployShows::EndedWithoutRollback(why) if why.contains("without an automatic rollback")
        ));
        assert!(matches!(
            codedeploy_shows(&d("Stopped", true)),
            CodeDeployShows::EndedWithoutRollback(why) if why.starts_with("stopped")
        ));
    }
}
