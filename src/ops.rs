//! What the `pushdeploy` CLI does for people: the deployment history of a service, what is in
//! flight, and the pause switch. Plain functions over the ledger and ECS; the binary only parses
//! arguments and prints.

use crate::aws::AwsError;
use crate::ledger::{DeploymentRecord, Kind, Ledger, LedgerError};
use crate::tags::TAG_PAUSED;

/// Why a CLI command could not answer.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An ECS call failed: DescribeServices, TagResource or UntagResource.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// [`history`] found no ledger record of a service by that name (in that cluster, when one
    /// is given).
    #[error("the ledger has no service named {service:?}{}; pushdeploy has never deployed it", cluster.as_deref().map(|c| format!(" in cluster {c:?}")).unwrap_or_default())]
    UnknownService {
        /// The service name asked about.
        service: String,
        /// The cluster asked about, if any.
        cluster: Option<String>,
    },
    /// [`set_paused`] found no such service in the cluster, or only a deleted (INACTIVE) one.
    #[error("ECS has no service {service:?} in cluster {cluster:?}")]
    NoSuchService {
        /// The cluster, as given.
        cluster: String,
        /// The service, as given.
        service: String,
    },
}

/// The service's deployments and rollbacks, newest first (at most `limit` per service). The
/// service is a name (any cluster, or the one given) or an ARN.
pub async fn history(
    ledger: &Ledger,
    service: &str,
    cluster: Option<&str>,
    limit: i32,
) -> Result<Vec<DeploymentRecord>, OpsError> {
    let arns = if service.starts_with("arn:") {
        vec![service.to_string()]
    } else {
        ledger
            .services_named(service)
            .await?
            .into_iter()
            .filter(|arn| cluster.is_none_or(|c| arn.ends_with(&format!("/{c}/{service}"))))
            .collect()
    };
    if arns.is_empty() {
        return Err(OpsError::UnknownService {
            service: service.to_string(),
            cluster: cluster.map(str::to_string),
        });
    }
    let mut records = Vec::new();
    for arn in arns {
        records.extend(ledger.latest(&arn, limit).await?);
    }
    records.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.order_key.cmp(&a.order_key))
    });
    Ok(records)
}

/// `family:revision` of a task definition ARN.
fn revision(arn: Option<&str>) -> &str {
    arn.map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("-")
}

/// `sha256:` and the first 12 hex digits: enough to tell pushes apart, short enough to read.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None if digest.is_empty() => "-".into(),
        None => digest.to_string(),
    }
}

/// The table's columns, in order.
const COLUMNS: [&str; 7] = [
    "WHEN", "SERVICE", "WHAT", "OUTCOME", "TAG", "DIGEST", "REVISION",
];

/// A fixed-width table: one line per record, the columns people ask about first.
pub fn table(records: &[DeploymentRecord]) -> String {
    let header = COLUMNS.map(str::to_string);
    let rows: Vec<[String; 7]> = std::iter::once(header)
        .chain(records.iter().map(row))
        .collect();
    aligned(&rows)
}

/// One record's cells; `-` where a record has nothing to show, so columns never look shifted.
fn row(r: &DeploymentRecord) -> [String; 7] {
    [
        r.created_at.clone(),
        format!("{}/{}", r.cluster, r.service),
        match r.kind {
            Kind::Deploy => "deploy".into(),
            Kind::Rollback => "rollback".into(),
        },
        r.status.as_str().into(),
        if r.tag.is_empty() {
            "-".into()
        } else {
            r.tag.clone()
        },
        short_digest(&r.digest),
        format!(
            "{} -> {}",
            revision(
                Some(&r.previous_task_definition)
                    .filter(|p| !p.is_empty())
                    .map(|s| s.as_str())
            ),
            revision(r.new_task_definition.as_deref())
        ),
    ]
}

/// Each column as wide as its widest cell, two spaces apart; no trailing spaces.
fn aligned(rows: &[[String; 7]]) -> String {
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The record as one JSON object, for scripts (`--json`).
pub fn json(record: &DeploymentRecord) -> serde_json::Value {
    serde_json::json!({
        "when": record.created_at,
        "updated_at": record.updated_at,
        "cluster": record.cluster,
        "service": record.service,
        "kind": record.kind.as_str(),
        "outcome": record.status.as_str(),
        "repository": record.repository,
        "tag": record.tag,
        "digest": record.digest,
        "task_definition": record.new_task_definition,
        "previous_task_definition": record.previous_task_definition,
        "deployment_id": record.deployment_id,
        "service_deployment_arn": record.service_deployment_arn,
        "codedeploy_deployment_id": record.codedeploy_deployment_id,
        "reason": record.reason,
        "event_id": record.event_id,
    })
}

/// Sets (`paused`) or removes the service's `pushdeploy:paused` tag; returns the service ARN.
pub async fn set_paused(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    paused: bool,
) -> Result<String, OpsError> {
    let described = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:DescribeServices", e))?;
    let arn = described
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .and_then(|s| s.service_arn())
        .ok_or_else(|| OpsError::NoSuchService {
            cluster: cluster.to_string(),
            service: service.to_string(),
        })?
        .to_string();
    if paused {
        ecs.tag_resource()
            .resource_arn(&arn)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(TAG_PAUSED)
                    .value("true")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
    } else {
        ecs.untag_resource()
            .resource_arn(&arn)
            .tag_keys(TAG_PAUSED)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:UntagResource", e))?;
    }
    Ok(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_revisions_are_shortened_for_people() {
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
        assert_eq!(short_digest(""), "-");
        assert_eq!(
            revision(Some("arn:aws:ecs:us-east-1:1:task-definition/web:7")),
            "web:7"
        );
        assert_eq!(revision(None), "-");
    }
}
