//! A person as a gate: `pushdeploy approve` and `pushdeploy reject` answer a BLUE_GREEN, LINEAR
//! or CANARY deployment paused at a pause hook ("Pauses the deployment at the specified
//! lifecycle stage until you call ContinueServiceDeployment", API `DeploymentLifecycleHook`),
//! and the ledger records who answered and when.

use crate::aws::{Aws, AwsError};
use crate::clock::now_text;
use crate::ledger::{Ledger, LedgerError};
use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, DeploymentLifecycleHookStatus,
    DeploymentLifecycleHookTargetType, ServiceDeployment,
};

/// A person's answer to a paused deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Continue: "If no value is specified, the default action is CONTINUE."
    Approve,
    /// Roll back to the revision that ran before.
    Reject,
}

impl Answer {
    /// The word the ledger and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Approve => "approved",
            Answer::Reject => "rejected",
        }
    }

    fn action(self) -> DeploymentLifecycleHookAction {
        match self {
            Answer::Approve => DeploymentLifecycleHookAction::Continue,
            Answer::Reject => DeploymentLifecycleHookAction::Rollback,
        }
    }
}

/// What was answered, for the CLI to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The service's ARN.
    pub service_arn: String,
    /// The paused service deployment.
    pub service_deployment_arn: String,
    /// The pause hook answered.
    pub hook_id: String,
    /// The stage it paused at, when ECS names it.
    pub stage: Option<String>,
    /// Who answered: the caller's ARN, as STS tells it.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// The ledger could not record it (the answer reached ECS all the same).
    pub unrecorded: Option<String>,
}

/// Why a paused deployment could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// An AWS call failed: DescribeServices, DescribeServiceDeployments,
    /// ContinueServiceDeployment or GetCallerIdentity.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Nothing of the service is paused at a pause hook.
    #[error("no deployment of {cluster}/{service} is paused at a pause hook: {shows}")]
    NotPaused {
        /// The cluster, as given.
        cluster: String,
        /// The service, as given.
        service: String,
        /// What ECS shows instead.
        shows: String,
    },
}

/// Answers the pause hook `service`'s current service deployment awaits, then records who
/// answered. Nothing is sent unless ECS shows a pause hook AWAITING_ACTION ("The pause hook
/// must be in AWAITING_ACTION status", Developer Guide, "Continuing service deployments").
pub async fn answer_paused(
    aws: &Aws,
    sts: &aws_sdk_sts::Client,
    ledger: &Ledger,
    cluster: &str,
    service: &str,
    answer: Answer,
) -> Result<Answered, AnswerError> {
    let not_paused = |shows: String| AnswerError::NotPaused {
        cluster: cluster.to_string(),
        service: service.to_string(),
        shows,
    };
    let (service_arn, deployment_arn) = current_deployment(aws, cluster, service)
        .await?
        .ok_or_else(|| not_paused("ECS shows no current service deployment".into()))?;
    let deployment = aws
        .describe_service_deployment(&deployment_arn)
        .await?
        .ok_or_else(|| not_paused(format!("ECS does not know {deployment_arn}")))?;
    let hook_id = awaiting_pause(&deployment).ok_or_else(|| {
        not_paused(format!(
            "{deployment_arn} is {} at {}",
            deployment.status().map(|s| s.as_str()).unwrap_or("?"),
            deployment
                .lifecycle_stage()
                .map(|s| s.as_str())
                .unwrap_or("no stage")
        ))
    })?;
    aws.continue_paused(&deployment_arn, &hook_id, answer.action())
        .await?;
    let by = caller(sts).await?;
    let at = now_text();
    let stage = deployment.lifecycle_stage().map(|s| s.as_str().to_string());
    let recorded = ledger
        .record_hook_answer(
            &service_arn,
            &deployment_arn,
            &hook_id,
            answer.as_str(),
            &by,
            &at,
        )
        .await;
    Ok(Answered {
        service_arn,
        service_deployment_arn: deployment_arn,
        hook_id,
        stage,
        by,
        at,
        unrecorded: recorded.err().map(|e: LedgerError| e.to_string()),
    })
}

/// A person lifts a digest's quarantine for a service (`pushdeploy unquarantine`): a push of
/// it deploys again. The ledger keeps who lifted it, when and the reason it had. `Ok(None)`
/// when ECS has no such service; `Ok(Some((service ARN, None)))` when the digest was not
/// quarantined there.
pub async fn lift_quarantine(
    aws: &Aws,
    sts: &aws_sdk_sts::Client,
    ledger: &Ledger,
    cluster: &str,
    service: &str,
    digest: &str,
) -> Result<Option<(String, Option<String>)>, LiftError> {
    let described = aws
        .describe_services(cluster, &[service.to_string()])
        .await?;
    let Some(arn) = described
        .services
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .and_then(|s| s.service_arn())
    else {
        return Ok(None);
    };
    let by = caller(sts).await?;
    let reason = ledger
        .lift_quarantine(arn, digest, &by, &now_text())
        .await?;
    Ok(Some((arn.to_string(), reason)))
}

/// Why a quarantine could not be lifted.
#[derive(Debug, thiserror::Error)]
pub enum LiftError {
    /// DescribeServices or GetCallerIdentity failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The service's ARN and its current service deployment's, when it has one.
async fn current_deployment(
    aws: &Aws,
    cluster: &str,
    service: &str,
) -> Result<Option<(String, String)>, AwsError> {
    let described = aws
        .describe_services(cluster, &[service.to_string()])
        .await?;
    Ok(described
        .services
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .and_then(|s| {
            Some((
                s.service_arn()?.to_string(),
                s.current_service_deployment()?.to_string(),
            ))
        }))
}

/// The id of the pause hook the deployment awaits, if it awaits one.
pub(crate) fn awaiting_pause(deployment: &ServiceDeployment) -> Option<String> {
    deployment
        .lifecycle_hook_details()
        .iter()
        .find(|h| {
            h.target_type() == Some(&DeploymentLifecycleHookTargetType::Pause)
                && h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction)
        })
        .and_then(|h| h.hook_id().map(str::to_string))
}

/// Who is calling: the caller's ARN, as STS tells it.
pub(crate) async fn caller(sts: &aws_sdk_sts::Client) -> Result<String, AwsError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
    Ok(out.arn().unwrap_or("an unnamed caller").to_string())
}
