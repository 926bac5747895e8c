//! `aws-smithy-mocks` stand-ins for ECS and the tagging API, for the tests where moto is
//! silent or wrong. The ledger stays real (DynamoDB on moto).

use super::{TestBed, REGISTRY};
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{
    ContainerDefinition, Deployment, DeploymentConfiguration, Service, TaskDefinition,
};
use aws_sdk_resourcegroupstagging::operation::get_resources::GetResourcesOutput;
use aws_sdk_resourcegroupstagging::types::{ResourceTagMapping, Tag as ResourceTag};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::retry::RetryConfig;
use pushdeploy::aws::Aws;
use pushdeploy::deploy::Deployer;
use std::time::Duration;

pub const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
pub const V1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";
pub const V2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2";

pub fn service_arn(name: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:service/prod/{name}")
}

/// SDK retries as deployed (3 attempts, standard mode), minus the wait between them.
pub fn quick_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
}

pub fn wire_error(code: &str) -> String {
    format!(r#"{{"__type":"{code}","message":"{code} from the mock"}}"#)
}

pub fn tagged(names: &[&str]) -> GetResourcesOutput {
    let mut out = GetResourcesOutput::builder();
    for name in names {
        out = out.resource_tag_mapping_list(
            ResourceTagMapping::builder()
                .resource_arn(service_arn(name))
                .tags(
                    ResourceTag::builder()
                        .key("pushdeploy:repository")
                        .value("web")
                        .build()
                        .unwrap(),
                )
                .build(),
        );
    }
    out.build()
}

pub fn discovery(names: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_resourcegroupstagging::Client::get_resources).then_output(move || tagged(names))
}

pub fn described_services() -> Rule {
    described_services_with(None, V1)
}

/// Services of `prod` that run `running`, with `config` (which moto would drop).
pub fn described_services_with(
    config: Option<DeploymentConfiguration>,
    running: &'static str,
) -> Rule {
    mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(move |input| {
        let services = input.services().iter().map(|name| {
            Service::builder()
                .service_arn(service_arn(name))
                .service_name(name)
                .cluster_arn(CLUSTER_ARN)
                .status("ACTIVE")
                .task_definition(running)
                .set_deployment_configuration(config.clone())
                .build()
        });
        DescribeServicesOutput::builder()
            .set_services(Some(services.collect()))
            .build()
    })
}

pub fn described_definition() -> Rule {
    mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .task_definition_arn(V1)
                    .family("web")
                    .container_definitions(
                        ContainerDefinition::builder()
                            .name("app")
                            .image(format!("{REGISTRY}/web:latest"))
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

pub fn registered(arn: &'static str) -> Rule {
    mock!(aws_sdk_ecs::Client::register_task_definition).then_output(move || {
        RegisterTaskDefinitionOutput::builder()
            .task_definition(TaskDefinition::builder().task_definition_arn(arn).build())
            .build()
    })
}

pub fn updated_output(input_definition: &str) -> UpdateServiceOutput {
    UpdateServiceOutput::builder()
        .service(
            Service::builder()
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/1111111111111111111")
                        .status("PRIMARY")
                        .task_definition(input_definition)
                        .build(),
                )
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/0000000000000000000")
                        .status("ACTIVE")
                        .task_definition(V1)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// The AWS layer with mocked ECS and tagging clients and the bed's real DynamoDB.
pub fn aws(bed: &TestBed, tagging_rules: &[&Rule], ecs_rules: &[&Rule]) -> Aws {
    let tagging = mock_client!(
        aws_sdk_resourcegroupstagging,
        RuleMode::MatchAny,
        tagging_rules,
        |c| c.retry_config(quick_retries())
    );
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules, |c| c
        .retry_config(quick_retries()));
    Aws::from_clients(
        ecs,
        tagging,
        aws_sdk_dynamodb::Client::new(&bed.sdk),
        aws_sdk_sns::Client::new(&bed.sdk),
        aws_sdk_ecr::Client::new(&bed.sdk),
        aws_sdk_codedeploy::Client::new(&bed.sdk),
    )
}

pub async fn deployer(bed: &TestBed, tagging_rules: &[&Rule], ecs_rules: &[&Rule]) -> Deployer {
    Deployer::with_aws(aws(bed, tagging_rules, ecs_rules), bed.config())
}
