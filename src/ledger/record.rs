//! One deployment record and its DynamoDB item form.

use super::LedgerError;
use crate::resolved::ResolvedImages;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The sort-key prefix of deployment records (`DEPLOY#<order key>`).
pub const DEPLOY_PREFIX: &str = "DEPLOY#";

/// Where a deployment record stands; a service's head holds the same values as its `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Claimed; UpdateService not yet confirmed.
    Deploying,
    /// UpdateService accepted the new revision; ECS is rolling it out.
    Deployed,
    /// ECS reported the deployment COMPLETED: its revision is known good.
    Succeeded,
    /// Gave up for a reason a retry cannot fix, or ECS reported it FAILED (or it never finished).
    Failed,
    /// A rollback that failed, or a failure with no safe revision to return to: a person has to
    /// look.
    NeedsHuman,
    /// ECS replaced the deployment with a newer one (pushdeploy's or a person's) before it
    /// completed. Neither failed nor succeeded: never quarantined, never rolled back.
    Superseded,
}

/// Every status, in the order of the life of a record.
pub const ALL_STATUSES: [Status; 6] = [
    Status::Deploying,
    Status::Deployed,
    Status::Succeeded,
    Status::Failed,
    Status::NeedsHuman,
    Status::Superseded,
];

/// Whether a record is a deployment of a push or pushdeploy's rollback of a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Puts a pushed image on the service.
    Deploy,
    /// Returns the service to an earlier revision after a deployment failed (see `reverts`).
    Rollback,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Deploy => "deploy",
            Kind::Rollback => "rollback",
        }
    }
}

impl Status {
    /// The status as the ledger stores it (a record's `status`, a head's `state`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deploying => "deploying",
            Status::Deployed => "deployed",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::NeedsHuman => "needs_human",
            Status::Superseded => "superseded",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Status> {
        ALL_STATUSES.into_iter().find(|v| v.as_str() == s)
    }
}

/// One deployment of one push to one service, or one rollback of such a deployment. A rollback's
/// image fields are those of the succeeded deployment it returns to; without one, the failed
/// deployment's, with `tag`, `digest` and `pushed_at` empty (`digest` set when the rollback
/// pins one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    /// A push's deployment, or a rollback.
    pub kind: Kind,
    /// For a rollback: the `sk` of the deployment it reverts.
    pub reverts: Option<String>,
    /// The service's ARN: the item's `pk`.
    pub service_arn: String,
    /// The name of the service's cluster.
    pub cluster: String,
    /// The service's name.
    pub service: String,
    /// The push's event id; a rollback's is the failed push's, which still holds the service.
    pub event_id: String,
    /// The push's order key (`<pushed-at>#<event-id>`), which names the record; a rollback's is
    /// the failed deployment's followed by `#rollback`, so it sorts right after it.
    pub order_key: String,
    /// The ECR repository of the deployed image.
    pub repository: String,
    /// The pushed tag.
    pub tag: String,
    /// The deployed image's digest.
    pub digest: String,
    /// When the image was pushed (RFC 3339, in seconds).
    pub pushed_at: String,
    /// The container whose image the deployment replaces: the one that runs the repository.
    pub container: String,
    /// The revision the service ran before this deployment, which a rollback of it returns to;
    /// empty when not known.
    pub previous_task_definition: String,
    /// The revision this deployment puts the service on, once registered (a rollback's: the
    /// one it returns to).
    pub new_task_definition: Option<String>,
    /// The ECS deployment that UpdateService started, once known (from its answer, or from
    /// ECS's IN_PROGRESS event).
    pub deployment_id: Option<String>,
    /// The service deployment (ECS's ARN for the whole move, stages and rollback included)
    /// that UpdateService started, once known: from UpdateService's answer
    /// (`currentServiceDeployment`), or found by the rollback function in
    /// ListServiceDeployments. BLUE_GREEN, LINEAR and CANARY deployments are followed by it.
    pub service_deployment_arn: Option<String>,
    /// The CodeDeploy deployment (`d-…`) that moves a CODE_DEPLOY-controlled service onto the
    /// new revision, once CreateDeployment answered: the rollback function follows it by
    /// GetDeployment, and CodeDeploy, not pushdeploy, rolls it back.
    pub codedeploy_deployment_id: Option<String>,
    /// The digests ECS recorded for the revision the service ran before this deployment
    /// (`previous_task_definition`), read when the deployment started; `None` when nobody read
    /// them (the followed container was already pinned by digest, or ECS listed no service
    /// revision). A rollback onto a revision that names an image by tag lands on these.
    pub previous_images: Option<ResolvedImages>,
    /// The deployment's running task count at the sweep's last look, if it looked: the next
    /// look compares against it to tell progress from a stall.
    pub running_at_last_sweep: Option<i32>,
    /// Failed where ECS was expected to roll the service back by itself (circuit breaker or
    /// alarm rollback): the next sweep confirms from ECS that it did, or acts.
    pub awaits_ecs_rollback: bool,
    /// Where the deployment stands.
    pub status: Status,
    /// Why it stands there, when that needs saying: why it failed, was superseded, or what a
    /// rollback rolls back.
    pub reason: Option<String>,
    /// When the record was first written (RFC 3339); a rollback's keeps its first attempt's.
    pub created_at: String,
    /// When the record last changed (RFC 3339): the in-flight index orders by it, and the
    /// sweep's deadline counts from it.
    pub updated_at: String,
}

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn text(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn number(item: &Item, key: &str) -> Option<u64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The sort key of the deployment record of `order_key`.
pub fn deploy_sk(order_key: &str) -> String {
    format!("{DEPLOY_PREFIX}{order_key}")
}

pub(super) const INFLIGHT: &str = "inflight";
const PREVIOUS_IMAGES: &str = "previous_images";
pub(super) const SWEEP_RUNNING: &str = "sweep_running";

/// The `previous_images` map (container -> digest), if the item has one.
fn previous_images(item: &Item) -> Result<Option<ResolvedImages>, String> {
    let Some(value) = item.get(PREVIOUS_IMAGES) else {
        return Ok(None);
    };
    let map = value
        .as_m()
        .map_err(|_| format!("{PREVIOUS_IMAGES} is not a map"))?;
    map.iter()
        .map(|(container, digest)| match digest.as_s() {
            Ok(digest) => Ok((container.clone(), digest.clone())),
            Err(_) => Err(format!("{PREVIOUS_IMAGES}.{container} is not a string")),
        })
        .collect::<Result<_, _>>()
        .map(|images| Some(ResolvedImages(images)))
}
pub(super) const INFLIGHT_YES: &str = "1";
pub(super) const INFLIGHT_ECS_ROLLBACK: &str = "ecs-rollback";
pub(super) const AWAITS_ECS_ROLLBACK: &str = "awaits_ecs_rollback";

impl DeploymentRecord {
    /// The record's sort key, which also names it in `reverts`.
    pub fn sk(&self) -> String {
        deploy_sk(&self.order_key)
    }

    pub(super) fn to_item(&self) -> Item {
        let mut item: Item = [
            ("pk", &self.service_arn),
            ("cluster", &self.cluster),
            ("service", &self.service),
            ("event_id", &self.event_id),
            ("order_key", &self.order_key),
            ("repository", &self.repository),
            ("tag", &self.tag),
            ("digest", &self.digest),
            ("pushed_at", &self.pushed_at),
            ("container", &self.container),
            ("previous_task_definition", &self.previous_task_definition),
            ("created_at", &self.created_at),
            ("updated_at", &self.updated_at),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), s(v)))
        .collect();
        item.insert("sk".into(), s(deploy_sk(&self.order_key)));
        item.insert(
            "service_digest".into(),
            s(format!("{}#{}", self.service_arn, self.digest)),
        );
        item.insert("status".into(), s(self.status.as_str()));
        if let Some(running) = self.running_at_last_sweep {
            item.insert(SWEEP_RUNNING.into(), AttributeValue::N(running.to_string()));
        }
        if let Some(images) = &self.previous_images {
            let map = images.0.iter().map(|(c, d)| (c.clone(), s(d))).collect();
            item.insert(PREVIOUS_IMAGES.into(), AttributeValue::M(map));
        }
        item.insert("kind".into(), s(self.kind.as_str()));
        // The sparse `in-flight` index holds exactly the deployments ECS is still rolling out,
        // for the sweep that catches the ones that never finish.
        if self.status == Status::Deployed {
            item.insert(INFLIGHT.into(), s(INFLIGHT_YES));
        }
        // The same index, its own partition: what the sweep must confirm ECS rolled back.
        if self.awaits_ecs_rollback && self.status == Status::Failed {
            item.insert(INFLIGHT.into(), s(INFLIGHT_ECS_ROLLBACK));
            item.insert(AWAITS_ECS_ROLLBACK.into(), s("1"));
        }
        for (k, v) in [
            ("new_task_definition", &self.new_task_definition),
            ("deployment_id", &self.deployment_id),
            ("service_deployment_arn", &self.service_deployment_arn),
            ("codedeploy_deployment_id", &self.codedeploy_deployment_id),
            ("reason", &self.reason),
            ("reverts", &self.reverts),
        ] {
            if let Some(v) = v {
                item.insert(k.into(), s(v));
            }
        }
        item
    }

    pub(super) fn from_item(item: &Item) -> Result<DeploymentRecord, LedgerError> {
        let malformed = |problem: String| LedgerError::Malformed {
            pk: text(item, "pk").unwrap_or_default(),
            sk: text(item, "sk").unwrap_or_default(),
            problem,
        };
        let get = |key: &str| text(item, key).ok_or_else(|| malformed(format!("no {key}")));
        let status = get("status")?;
        let kind = match text(item, "kind").as_deref() {
            None | Some("deploy") => Kind::Deploy,
            Some("rollback") => Kind::Rollback,
            Some(other) => return Err(malformed(format!("unknown kind {other:?}"))),
        };
        Ok(DeploymentRecord {
            kind,
            reverts: text(item, "reverts"),
            service_arn: get("pk")?,
            cluster: get("cluster")?,
            service: get("service")?,
            event_id: get("event_id")?,
            order_key: get("order_key")?,
            repository: get("repository")?,
            tag: get("tag")?,
            digest: get("digest")?,
            pushed_at: get("pushed_at")?,
            container: get("container")?,
            previous_task_definition: get("previous_task_definition")?,
            new_task_definition: text(item, "new_task_definition"),
            deployment_id: text(item, "deployment_id"),
            service_deployment_arn: text(item, "service_deployment_arn"),
            codedeploy_deployment_id: text(item, "codedeploy_deployment_id"),
            previous_images: previous_images(item).map_err(malformed)?,
            running_at_last_sweep: number(item, SWEEP_RUNNING).and_then(|n| i32::try_from(n).ok()),
            awaits_ecs_rollback: text(item, AWAITS_ECS_ROLLBACK).is_some(),
            status: Status::parse(&status)
                .ok_or_else(|| malformed(format!("unknown status {status:?}")))?,
            reason: text(item, "reason"),
            created_at: get("created_at")?,
            updated_at: get("updated_at")?,
        })
    }
}
