//! What ECS's service deployment shows of a BLUE_GREEN, LINEAR or CANARY deployment, over
//! plain data. These strategies are followed by their service deployment's `status`, never by
//! the rolling `rolloutState`: "The rolloutState of a service is only returned for services
//! that use the rolling update (ECS) deployment type" (API `Deployment`).

use aws_sdk_ecs::types::{ServiceDeployment, ServiceDeploymentBrief, ServiceDeploymentStatus};

/// Where a service deployment stands, as pushdeploy acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Followed {
    /// PENDING or IN_PROGRESS: still moving; the lifecycle stage, when ECS names it.
    InFlight(Option<String>),
    /// STOP_REQUESTED: ECS is stopping it (a newer deployment started, or someone stopped it).
    Stopping,
    /// ROLLBACK_REQUESTED or ROLLBACK_IN_PROGRESS: ECS is rolling it back; why, in its words.
    RollingBack(String),
    /// SUCCESSFUL: the revision is the service's last known good.
    Completed,
    /// ROLLBACK_SUCCESSFUL: it failed and ECS put the service back; why, in its words.
    RolledBack(String),
    /// ROLLBACK_FAILED: it failed and so did ECS's rollback: a person must look.
    RollbackFailed(String),
    /// STOPPED because a newer deployment replaced it: never a failure of its digest.
    Superseded(String),
    /// STOPPED with no rollback and no newer deployment: it failed (or someone stopped it) and
    /// nothing put the service back.
    StoppedWithoutRollback(String),
}

/// What `deployment` shows, with `listed` (the service's deployments from ListServiceDeployments,
/// any order) to tell a replaced one from a stopped one.
///
/// - "Completed: A service deployment has finished (successfully or unsuccessfully):
///   SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED"; "Ongoing: IN_PROGRESS,
///   STOP_REQUESTED, ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS" (Developer Guide, "View service
///   history using Amazon ECS service deployments").
/// - "STOP_REQUESTED - The service deployment state moves to STOP_REQUESTED when any of the
///   following happen: A user starts a new service deployment. The rollback option is not in
///   use for the failure detection mechanism [...] The state moves to STOPPED" (same page).
///   ECS writes no reason that says which, so a STOPPED deployment without a `rollback` is
///   replaced when another was created after it and no later than it finished (kayac/ecspresso
///   issue #899 shows the new one created 0.3 s before the old one's `finishedAt`).
pub(crate) fn followed(
    deployment: &ServiceDeployment,
    listed: &[ServiceDeploymentBrief],
) -> Followed {
    let reason = || {
        deployment
            .status_reason()
            .or_else(|| deployment.rollback().and_then(|r| r.reason()))
            .unwrap_or("ECS gave no reason")
            .to_string()
    };
    let stage = || deployment.lifecycle_stage().map(|s| s.as_str().to_string());
    match deployment.status() {
        Some(ServiceDeploymentStatus::Successful) => Followed::Completed,
        Some(ServiceDeploymentStatus::RollbackSuccessful) => Followed::RolledBack(reason()),
        Some(ServiceDeploymentStatus::RollbackFailed) => Followed::RollbackFailed(reason()),
        Some(
            ServiceDeploymentStatus::RollbackRequested
            | ServiceDeploymentStatus::RollbackInProgress,
        ) => Followed::RollingBack(reason()),
        Some(ServiceDeploymentStatus::StopRequested) => Followed::Stopping,
        Some(ServiceDeploymentStatus::Stopped) => stopped(deployment, listed, reason()),
        // PENDING, IN_PROGRESS, and any status newer than this build: not settled.
        _ => Followed::InFlight(stage()),
    }
}

/// A STOPPED deployment: replaced by a newer one, or stopped with nothing put back.
fn stopped(
    deployment: &ServiceDeployment,
    listed: &[ServiceDeploymentBrief],
    reason: String,
) -> Followed {
    if deployment.rollback().is_some() {
        // Stopped during its own rollback: ECS did not finish putting the service back.
        return Followed::RollbackFailed(reason);
    }
    let own = deployment.service_deployment_arn();
    let (created, finished) = (deployment.created_at(), deployment.finished_at());
    let newer = listed.iter().find(|other| {
        other.service_deployment_arn() != own
            && match (created, other.created_at(), finished) {
                (Some(created), Some(theirs), Some(finished)) => {
                    theirs.as_nanos() > created.as_nanos()
                        && theirs.as_nanos() <= finished.as_nanos()
                }
                _ => false,
            }
    });
    match newer {
        Some(other) => Followed::Superseded(format!(
            "ECS stopped service deployment {} when {} started",
            own.unwrap_or("?"),
            other.service_deployment_arn().unwrap_or("a newer one")
        )),
        None => Followed::StoppedWithoutRollback(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Rollback, ServiceDeploymentLifecycleStage};
    use aws_smithy_types::DateTime;

    const OURS: &str = "arn:aws:ecs:eu-west-1:1:service-deployment/c/web/1";
    const NEWER: &str = "arn:aws:ecs:eu-west-1:1:service-deployment/c/web/2";

    fn deployment(
        status: ServiceDeploymentStatus,
    ) -> aws_sdk_ecs::types::builders::ServiceDeploymentBuilder {
        ServiceDeployment::builder()
            .service_deployment_arn(OURS)
            .status(status)
            .created_at(DateTime::from_secs(1_000))
    }

    fn brief(arn: &str, created: i64) -> ServiceDeploymentBrief {
        ServiceDeploymentBrief::builder()
            .service_deployment_arn(arn)
            .created_at(DateTime::from_secs(created))
            .build()
    }

    fn rollback() -> Rollback {
        Rollback::builder().reason("hook FAILED").build()
    }

    /// The whole map, one row per status (and per kind of STOPPED).
    #[test]
    fn every_status_has_one_meaning() {
        use ServiceDeploymentStatus as S;
        let finished = |b: aws_sdk_ecs::types::builders::ServiceDeploymentBuilder| {
            b.finished_at(DateTime::from_secs(1_300)).build()
        };
        let listed = [brief(OURS, 1_000), brief(NEWER, 1_299)];
        let rows: Vec<(ServiceDeployment, &[ServiceDeploymentBrief], Followed)> = vec![
            (
                deployment(S::Pending).build(),
                &[],
                Followed::InFlight(None),
            ),
            (
                deployment(S::InProgress)
                    .lifecycle_stage(ServiceDeploymentLifecycleStage::BakeTime)
                    .build(),
                &[],
                Followed::InFlight(Some("BAKE_TIME".into())),
            ),
            (
                deployment(S::StopRequested).build(),
                &[],
                Followed::Stopping,
            ),
            (
                deployment(S::RollbackRequested)
                    .rollback(rollback())
                    .build(),
                &[],
                Followed::RollingBack("hook FAILED".into()),
            ),
            (
                deployment(S::RollbackInProgress)
                    .status_reason("circuit breaker")
                    .build(),
                &[],
                Followed::RollingBack("circuit breaker".into()),
            ),
            (
                finished(deployment(S::Successful)),
                &[],
                Followed::Completed,
            ),
            (
                finished(deployment(S::RollbackSuccessful).rollback(rollback())),
                &[],
                Followed::RolledBack("hook FAILED".into()),
            ),
            (
                finished(deployment(S::RollbackFailed).status_reason("rollback failed")),
                &[],
                Followed::RollbackFailed("rollback failed".into()),
            ),
            (
                finished(deployment(S::Stopped)),
                &listed,
                Followed::Superseded(format!(
                    "ECS stopped service deployment {OURS} when {NEWER} started"
                )),
            ),
            (
                finished(deployment(S::Stopped).status_reason("circuit breaker")),
                &listed[..1],
                Followed::StoppedWithoutRollback("circuit breaker".into()),
            ),
            (
                finished(deployment(S::Stopped).rollback(rollback())),
                &listed,
                Followed::RollbackFailed("hook FAILED".into()),
            ),
            (
                deployment(S::from("SOMETHING_NEW")).build(),
                &[],
                Followed::InFlight(None),
            ),
        ];
        for (deployment, listed, expected) in rows {
            assert_eq!(
                followed(&deployment, listed),
                expected,
                "{:?}",
                deployment.status()
            );
        }
    }

    /// Replaced means created after ours and no later than ours finished: one created after it
    /// finished (a later push) does not make a stopped deployment superseded, nor does an older
    /// one.
    #[test]
    fn only_a_deployment_started_while_it_ran_replaces_it() {
        let stopped = deployment(ServiceDeploymentStatus::Stopped)
            .finished_at(DateTime::from_secs(1_300))
            .build();
        for (created, superseded) in [
            (999, false),
            (1_000, false),
            (1_001, true),
            (1_300, true),
            (1_301, false),
        ] {
            let listed = [brief(OURS, 1_000), brief(NEWER, created)];
            assert_eq!(
                matches!(followed(&stopped, &listed), Followed::Superseded(_)),
                superseded,
                "newer created at {created}"
            );
        }
    }
}
