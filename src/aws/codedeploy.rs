//! The CodeDeploy calls: find the deployment group that deploys a service, start a deployment
//! at most once, read one back.

use super::{write_at_most_once, Aws, AwsError};
use crate::codedeploy::{appspec_task_definition, group_deploys, CodeDeployDeployment, GroupRef};
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentStatus, RevisionLocation, RevisionLocationType,
};

/// The statuses of a deployment that has not ended (API DeploymentStatus).
const NOT_ENDED: [DeploymentStatus; 5] = [
    DeploymentStatus::Created,
    DeploymentStatus::Queued,
    DeploymentStatus::InProgress,
    DeploymentStatus::Baking,
    DeploymentStatus::Ready,
];

/// Every status a deployment can have (API DeploymentStatus).
const ANY: [DeploymentStatus; 8] = [
    DeploymentStatus::Created,
    DeploymentStatus::Queued,
    DeploymentStatus::InProgress,
    DeploymentStatus::Baking,
    DeploymentStatus::Ready,
    DeploymentStatus::Succeeded,
    DeploymentStatus::Failed,
    DeploymentStatus::Stopped,
];

impl Aws {
    /// Every deployment group whose ECS services include `service` of `cluster`. CodeDeploy has
    /// no lookup by service, so this reads each application's groups (ListApplications,
    /// ListDeploymentGroups, GetDeploymentGroup): the service tags that name a group spare it.
    pub(crate) async fn groups_deploying(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<GroupRef>, AwsError> {
        let mut found = Vec::new();
        for application in self.codedeploy_applications().await? {
            for group in self.codedeploy_groups(&application).await? {
                let group = GroupRef {
                    application: application.clone(),
                    group,
                };
                if group_deploys(&self.group_targets(&group).await?, cluster, service) {
                    found.push(group);
                }
            }
        }
        Ok(found)
    }

    async fn codedeploy_applications(&self) -> Result<Vec<String>, AwsError> {
        self.codedeploy
            .list_applications()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("codedeploy:ListApplications", e))
    }

    async fn codedeploy_groups(&self, application: &str) -> Result<Vec<String>, AwsError> {
        self.codedeploy
            .list_deployment_groups()
            .application_name(application)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("codedeploy:ListDeploymentGroups", e))
    }

    /// The (cluster name, service name) of each ECS service `group` deploys.
    pub(crate) async fn group_targets(
        &self,
        group: &GroupRef,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let out = self
            .codedeploy
            .get_deployment_group()
            .application_name(&group.application)
            .deployment_group_name(&group.group)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("codedeploy:GetDeploymentGroup", e))?;
        Ok(out
            .deployment_group_info()
            .map(|info| info.ecs_services())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| Some((s.cluster_name()?.to_string(), s.service_name()?.to_string())))
            .collect())
    }

    /// A CodeDeploy deployment of `group` with `appspec`, at most once: CreateDeployment takes
    /// no idempotency token, so a deployment of the group that has not ended and deploys the
    /// same task definition (an earlier attempt's, whose answer was lost) is adopted instead.
    pub(crate) async fn deploy_with_codedeploy(
        &self,
        group: &GroupRef,
        appspec: &str,
        description: &str,
    ) -> Result<String, AwsError> {
        let task_definition = appspec_task_definition(appspec);
        let landed = || async {
            self.deployment_of(group, task_definition.as_deref(), &NOT_ENDED)
                .await
                .ok()
                .flatten()
        };
        if let Some(id) = landed().await {
            return Ok(id);
        }
        write_at_most_once(
            || self.create_codedeploy_deployment(group, appspec, description),
            landed,
        )
        .await
    }

    async fn create_codedeploy_deployment(
        &self,
        group: &GroupRef,
        appspec: &str,
        description: &str,
    ) -> Result<String, AwsError> {
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(AppSpecContent::builder().content(appspec).build())
            .build();
        let out = self
            .codedeploy
            .create_deployment()
            .application_name(&group.application)
            .deployment_group_name(&group.group)
            .revision(revision)
            .description(description)
            .customize()
            .config_override(
                aws_sdk_codedeploy::config::Builder::default()
                    .retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("codedeploy:CreateDeployment", e))?;
        out.deployment_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AwsError {
                operation: "codedeploy:CreateDeployment",
                code: None,
                message: "CodeDeploy returned no deployment id".into(),
                retryable: false,
                maybe_applied: true,
                problem: None,
            })
    }

    /// The id of the deployment of `group`, ended or not, that deployed `task_definition` (each
    /// revision pushdeploy registers is deployed once).
    pub(crate) async fn codedeploy_deployment_onto(
        &self,
        group: &GroupRef,
        task_definition: &str,
    ) -> Result<Option<String>, AwsError> {
        self.deployment_of(group, Some(task_definition), &ANY).await
    }

    /// The id of a deployment of `group` in one of `statuses` that deploys `task_definition`.
    async fn deployment_of(
        &self,
        group: &GroupRef,
        task_definition: Option<&str>,
        statuses: &[DeploymentStatus],
    ) -> Result<Option<String>, AwsError> {
        let Some(task_definition) = task_definition else {
            return Ok(None);
        };
        let out = self
            .codedeploy
            .list_deployments()
            .application_name(&group.application)
            .deployment_group_name(&group.group)
            .set_include_only_statuses(Some(statuses.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("codedeploy:ListDeployments", e))?;
        for id in out.deployments() {
            let found = self.codedeploy_deployment(id).await?;
            if found.and_then(|d| d.task_definition).as_deref() == Some(task_definition) {
                return Ok(Some(id.clone()));
            }
        }
        Ok(None)
    }

    /// The deployment `id` as CodeDeploy describes it; `None` when CodeDeploy does not know it.
    pub(crate) async fn codedeploy_deployment(
        &self,
        id: &str,
    ) -> Result<Option<CodeDeployDeployment>, AwsError> {
        let out = match self
            .codedeploy
            .get_deployment()
            .deployment_id(id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let error = AwsError::from_sdk("codedeploy:GetDeployment", e);
                if error.code.as_deref() == Some("DeploymentDoesNotExistException") {
                    return Ok(None);
                }
                return Err(error);
            }
        };
        Ok(out.deployment_info.map(|info| CodeDeployDeployment {
            id: id.to_string(),
            status: info
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            error: info.error_information().map(|e| {
                let code = e.code().map(|c| c.as_str()).unwrap_or("error");
                format!("{code}: {}", e.message().unwrap_or("no message"))
            }),
            rolled_back_by: info.rollback_info().and_then(|r| {
                let by = r.rollback_deployment_id()?;
                Some(match r.rollback_message() {
                    Some(message) => format!("rolled back by {by}: {message}"),
                    None => format!("rolled back by {by}"),
                })
            }),
            task_definition: info
                .revision()
                .and_then(|r| r.app_spec_content())
                .and_then(|a| a.content())
                .and_then(appspec_task_definition),
        }))
    }
}
