//! Reads for people (the `pushdeploy` CLI): which services the ledger knows by name, and what
//! ECS is rolling out now.

use super::record::{s, text, INFLIGHT, INFLIGHT_ECS_ROLLBACK, INFLIGHT_YES};
use super::{DeploymentRecord, Ledger, LedgerError, HEAD_SK, IN_FLIGHT_INDEX};

impl Ledger {
    /// The ARNs of every service named `service` (in any cluster) that pushdeploy ever claimed.
    /// A Scan that returns only head items: fine for an operator's question, never used by the
    /// functions.
    pub(crate) async fn services_named(&self, service: &str) -> Result<Vec<String>, LedgerError> {
        let suffix = format!("/{service}");
        let pages: Vec<_> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :head AND contains(pk, :suffix)")
            .expression_attribute_values(":head", s(HEAD_SK))
            .expression_attribute_values(":suffix", s(&suffix))
            .projection_expression("pk")
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.failed("dynamodb:Scan", e))?;
        let mut arns: Vec<String> = pages
            .iter()
            .flat_map(|page| page.items())
            .filter_map(|item| text(item, "pk"))
            .filter(|arn| arn.ends_with(&suffix))
            .collect();
        arns.sort();
        arns.dedup();
        Ok(arns)
    }

    /// Every deployment ECS is still rolling out (UpdateService accepted, no COMPLETED or FAILED
    /// yet), oldest first, read from the in-flight index.
    pub async fn in_flight(&self) -> Result<Vec<DeploymentRecord>, LedgerError> {
        self.in_flight_query(None).await
    }

    /// Failed deployments whose rollback ECS was expected to make (their own partition of the
    /// in-flight index), for the sweep to confirm.
    pub(crate) async fn awaiting_ecs_rollback(&self) -> Result<Vec<DeploymentRecord>, LedgerError> {
        self.in_flight_partition(INFLIGHT_ECS_ROLLBACK, None).await
    }

    /// The sparse in-flight index, all of it or only what was last updated before `cutoff`.
    pub(super) async fn in_flight_query(
        &self,
        cutoff: Option<&str>,
    ) -> Result<Vec<DeploymentRecord>, LedgerError> {
        self.in_flight_partition(INFLIGHT_YES, cutoff).await
    }

    async fn in_flight_partition(
        &self,
        partition: &str,
        cutoff: Option<&str>,
    ) -> Result<Vec<DeploymentRecord>, LedgerError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(IN_FLIGHT_INDEX)
            .expression_attribute_names("#inflight", INFLIGHT)
            .expression_attribute_values(":yes", s(partition));
        let query = match cutoff {
            Some(cutoff) => query
                .key_condition_expression("#inflight = :yes AND updated_at < :cutoff")
                .expression_attribute_values(":cutoff", s(cutoff)),
            None => query.key_condition_expression("#inflight = :yes"),
        };
        let pages: Vec<_> = query
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.failed("dynamodb:Query", e))?;
        pages
            .iter()
            .flat_map(|page| page.items())
            .map(DeploymentRecord::from_item)
            .collect()
    }
}
