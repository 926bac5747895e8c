//! Deployments of CODE_DEPLOY-controlled services, followed by their CodeDeploy deployment
//! (GetDeployment) at every sweep: CodeDeploy, not pushdeploy, rolls them back; pushdeploy
//! records how they ended and quarantines the digest of one that failed.

use super::{dry_run_outcome, key_of, RollbackHandler};
use crate::clock::now_text;
use crate::codedeploy::{codedeploy_shows, CodeDeployShows};
use crate::ledger::DeploymentRecord;
use crate::outcome::Outcome;
use crate::tags::{flag, TAG_DRY_RUN};

impl RollbackHandler {
    /// The record settled from what CodeDeploy shows of its deployment; `None` while that
    /// deployment has not ended and the record is younger than the deploy timeout (`young`).
    pub(super) async fn settle_codedeploy(
        &self,
        record: DeploymentRecord,
        id: &str,
        young: bool,
    ) -> Option<Outcome> {
        let key = key_of(&record);
        let found = match self.aws.codedeploy_deployment(id).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                let why = format!("CodeDeploy does not know deployment {id}");
                return Some(Outcome::failed(&key, why, false));
            }
            Err(e) => {
                let why = format!("cannot follow CodeDeploy deployment {id}: {e}");
                return Some(Outcome::failed(&key, why, e.retryable));
            }
        };
        let shows = codedeploy_shows(&found);
        if let CodeDeployShows::InFlight(status) = &shows {
            let waiting = format!("CodeDeploy shows deployment {id} {status}; its own time limits end it, and pushdeploy records how");
            return (!young).then(|| Outcome::recorded(&record, waiting));
        }
        if self.config.dry_run || self.dry_run_tagged(&record).await {
            return Some(dry_run_outcome(
                &key,
                format!("would record what CodeDeploy shows: {shows:?}"),
            ));
        }
        Some(self.record_codedeploy_end(record, id, shows).await)
    }

    async fn dry_run_tagged(&self, record: &DeploymentRecord) -> bool {
        matches!(self.describe(&key_of(record)).await, Ok(Some(service)) if flag(&service, TAG_DRY_RUN))
    }

    async fn record_codedeploy_end(
        &self,
        record: DeploymentRecord,
        id: &str,
        shows: CodeDeployShows,
    ) -> Outcome {
        let now = now_text();
        match shows {
            CodeDeployShows::InFlight(status) => Outcome::recorded(
                &record,
                format!("CodeDeploy shows deployment {id} {status}"),
            ),
            CodeDeployShows::Succeeded => {
                let shows = format!("CodeDeploy shows deployment {id} Succeeded");
                self.completed_as_shown(&record, &shows).await
            }
            CodeDeployShows::RolledBack(why) => {
                let reason = format!("CodeDeploy deployment {id} failed ({why})");
                let what_next = "CodeDeploy rolls the service back; pushdeploy sent nothing";
                self.fail_and_quarantine(record, &reason, what_next, &now)
                    .await
            }
            CodeDeployShows::EndedWithoutRollback(why) => {
                let reason = format!("CodeDeploy deployment {id} {why}");
                let why_not = "CodeDeploy rolls these services back, and it started no rollback";
                self.no_safe_target(record, &reason, why_not, &now).await
            }
        }
    }
}
