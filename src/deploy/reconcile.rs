//! Missed pushes. ECR documents its push events as best effort, so on a schedule the deploy
//! function compares, for every followed repository and tag policy, the newest matching image
//! in ECR with what each service runs, and deploys the difference through the same path as a
//! push: the same claim, ordering, quarantine, pause, policy and dry-run rules.

use super::{Deployer, Invocation, Revisions, Shared};
use crate::aws::EcrImage;
use crate::aws::DESCRIBE_SERVICES_BATCH;
use crate::event::{Digest, Push};
use crate::follow::{followers, Follower, ServiceKey, TaggedService, TAG_REPOSITORY};
use crate::image::ImageRef;
use crate::media::not_an_image;
use crate::outcome::{Outcome, OutcomeKind, Report, RetryableFailure, SkipReason};
use crate::plan::running_tag;
use crate::policy::{TagPolicy, Version};
use crate::telemetry::{Run, Subject};
use aws_sdk_ecs::types::{Tag, TaskDefinition};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The event id a reconcile deploys an image under: the same for the same image in every run,
/// so that runs, and the image's own late push event, find each other's work.
fn reconcile_event_id(digest: &Digest) -> String {
    let hex = digest.as_str().trim_start_matches("sha256:");
    format!("reconcile-{}", &hex[..hex.len().min(48)])
}

/// The pushes a repository's images stand for: one per tag of each runnable image.
fn candidates(repository: &str, region: &str, images: &[EcrImage]) -> Vec<Push> {
    let mut pushes = Vec::new();
    for image in images {
        let (Ok(digest), Some(pushed_at)) = (Digest::parse(&image.digest), image.pushed_at) else {
            continue;
        };
        for tag in &image.tags {
            let runnable = not_an_image(
                tag,
                image.manifest_media_type.as_deref(),
                image.artifact_media_type.as_deref(),
            )
            .is_none();
            if runnable {
                pushes.push(Push {
                    event_id: reconcile_event_id(&digest),
                    account: image.registry_id.clone(),
                    region: region.to_string(),
                    repository: repository.to_string(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                    pushed_at,
                    manifest_media_type: image.manifest_media_type.clone(),
                    artifact_media_type: image.artifact_media_type.clone(),
                    replicated_from: None,
                });
            }
        }
    }
    pushes
}

/// Each following service, with the candidates it admits.
type Admitted = BTreeMap<ServiceKey, (Follower, Vec<usize>)>;

/// Each following service with the candidates it admits (indexes into `pushes`); and the
/// services whose follow configuration is wrong, once each.
fn admitted(
    pushes: &[Push],
    tagged: &[TaggedService],
    config: &crate::config::Config,
) -> (Admitted, Vec<Outcome>) {
    let mut admitted = Admitted::new();
    let mut problems: BTreeMap<ServiceKey, Outcome> = BTreeMap::new();
    for (index, push) in pushes.iter().enumerate() {
        for selection in followers(push, tagged, config) {
            match selection {
                Ok(follower) => admitted
                    .entry(follower.key.clone())
                    .or_insert_with(|| (follower, Vec::new()))
                    .1
                    .push(index),
                Err(excluded) if excluded.is_error => {
                    problems
                        .entry(excluded.key.clone())
                        .or_insert_with(|| Outcome::failed(&excluded.key, excluded.reason, false));
                }
                Err(excluded) => {
                    problems.entry(excluded.key.clone()).or_insert_with(|| {
                        Outcome::skipped(
                            &excluded.key,
                            SkipReason::ClusterNotAllowed,
                            excluded.reason,
                        )
                    });
                }
            }
        }
    }
    (admitted, problems.into_values().collect())
}

/// The image a service with `policy`, running `running`, should run among the candidates it
/// admits: for a semver policy the highest release the policy allows from what runs (none
/// when there is none), for the others the newest push.
fn choose(
    policy: &TagPolicy,
    running: Option<&str>,
    candidates: &[usize],
    pushes: &[Push],
) -> Option<usize> {
    match policy {
        TagPolicy::Semver(_) => candidates
            .iter()
            .copied()
            .filter(|i| policy.allows_move(running, &pushes[*i].tag).is_ok())
            .filter_map(|i| Some((i, Version::parse(&pushes[i].tag)?)))
            .max_by(|(_, a), (_, b)| a.cmp_precedence(b))
            .map(|(i, _)| i),
        _ => candidates
            .iter()
            .copied()
            .max_by_key(|i| pushes[*i].order_key()),
    }
}

/// The registries whose images the reconcile reads: those of the accounts whose pushes deploy
/// (PUSHDEPLOY_TRUSTED_ACCOUNTS, else the function's own). `None` is the caller's own registry,
/// for a run that does not know its account (a local run).
fn registries(
    trusted: Option<&BTreeSet<String>>,
    home_account: Option<&str>,
) -> Vec<Option<String>> {
    match (trusted, home_account) {
        (Some(trusted), _) => trusted.iter().cloned().map(Some).collect(),
        (None, Some(home)) => vec![Some(home.to_string())],
        (None, None) => vec![None],
    }
}

/// Whether a container of `definition` runs an image of the repository and registry of `push`.
fn runs_image_of(definition: &TaskDefinition, push: &Push) -> bool {
    definition.container_definitions().iter().any(|c| {
        c.image()
            .and_then(ImageRef::parse)
            .is_some_and(|image| image.is_from(push))
    })
}

/// What the reconcile of one repository in one registry found.
#[derive(Default)]
struct Reconciled {
    outcomes: Vec<Outcome>,
    /// Services that follow it.
    followed: usize,
    /// Of those, services whose policy admits nothing newer than what they run.
    nothing_newer: usize,
}

/// Outcomes that only say "this service is already where it should be": counted, not logged
/// one by one, since the reconcile runs every few minutes over every service.
fn in_step(outcome: &Outcome) -> bool {
    outcome.outcome == OutcomeKind::Skipped
        && matches!(
            outcome.skip_reason,
            Some(
                SkipReason::AlreadyRunning
                    | SkipReason::Stale
                    | SkipReason::NotNewer
                    | SkipReason::AlreadyHandled
                    | SkipReason::ClusterNotAllowed
            )
        )
}

impl Deployer {
    /// The task definition (with its tags) each of `following` runs; a service that cannot be
    /// read is left out, and the deploy path reports it.
    async fn running_definitions(
        &self,
        following: &[&Follower],
    ) -> HashMap<ServiceKey, (TaskDefinition, Vec<Tag>)> {
        let mut by_cluster: BTreeMap<&str, Vec<&Follower>> = BTreeMap::new();
        for f in following {
            by_cluster
                .entry(f.key.cluster.as_str())
                .or_default()
                .push(f);
        }
        let mut running = HashMap::new();
        for (cluster, fs) in by_cluster {
            for batch in fs.chunks(DESCRIBE_SERVICES_BATCH) {
                let names: Vec<String> = batch.iter().map(|f| f.key.service.clone()).collect();
                let Ok(found) = self.aws.describe_services(cluster, &names).await else {
                    continue;
                };
                for f in batch {
                    let Some(arn) = found
                        .services
                        .iter()
                        .find(|s| s.service_name() == Some(f.key.service.as_str()))
                        .and_then(|s| s.task_definition())
                    else {
                        continue;
                    };
                    if let Ok(definition) = self.aws.describe_task_definition(arn).await {
                        running.insert(f.key.clone(), definition);
                    }
                }
            }
        }
        running
    }

    /// Deploys, to each service that follows `repository`, the newest of `images` its policy
    /// admits, through the push path.
    async fn reconcile_images(
        &self,
        repository: &str,
        region: &str,
        images: &[EcrImage],
        tagged: &[TaggedService],
        lease: &super::Lease,
        several_registries: bool,
    ) -> Reconciled {
        let mut done = Reconciled::default();
        let pushes = candidates(repository, region, images);
        let (mut admitted, problems) = admitted(&pushes, tagged, &self.config);
        done.outcomes.extend(problems);
        let Some(any_push) = pushes.first() else {
            return done;
        };
        // Semver services choose by the version they run: read it first. With several
        // registries, read every follower: a repository of the same name in another trusted
        // registry is not this one, and only the services that run this registry's image
        // follow it here (the others would fail to find their container on every run).
        let is_semver = |f: &Follower| matches!(f.policy, TagPolicy::Semver(_));
        let to_read: Vec<&Follower> = admitted
            .values()
            .map(|(f, _)| f)
            .filter(|f| several_registries || is_semver(f))
            .collect();
        let definitions = self.running_definitions(&to_read).await;
        if several_registries {
            admitted.retain(|key, _| {
                definitions
                    .get(key)
                    .is_none_or(|(definition, _)| runs_image_of(definition, any_push))
            });
        }
        let running: HashMap<&ServiceKey, Option<String>> = admitted
            .iter()
            .filter(|(_, (f, _))| is_semver(f))
            .filter_map(|(key, (f, _))| {
                let (definition, tags) = definitions.get(key)?;
                let tag = running_tag(any_push, f.container.as_deref(), definition, tags);
                Some((key, tag))
            })
            .collect();
        let mut by_image: BTreeMap<usize, Vec<Follower>> = BTreeMap::new();
        done.followed = admitted.len();
        for (key, (follower, candidates)) in &admitted {
            let running = running.get(key).cloned().flatten();
            match choose(&follower.policy, running.as_deref(), candidates, &pushes) {
                Some(index) => by_image.entry(index).or_default().push(follower.clone()),
                None => done.nothing_newer += 1,
            }
        }
        for (index, following) in by_image {
            let push = &pushes[index];
            let shared = Shared {
                lease,
                revisions: Revisions::default(),
            };
            for mut outcome in self.deploy_all(push, following, &shared).await {
                outcome.repository = Some(push.repository.clone());
                outcome.tag = Some(push.tag.clone());
                outcome.digest = Some(push.digest.to_string());
                done.outcomes.push(outcome);
            }
        }
        done
    }

    pub(super) async fn reconcile(
        &self,
        event_id: Option<String>,
        at: DateTime<Utc>,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        let started = std::time::Instant::now();
        let request_id = invocation.request_id.as_deref();
        let region = invocation
            .home()
            .1
            .or(self.aws.region())
            .unwrap_or_default()
            .to_string();
        let tagged = match self.aws.all_tagged_services().await {
            Ok(tagged) => tagged,
            Err(e) => {
                let reason = format!(
                    "the reconcile could not list the services that follow a repository: {e}"
                );
                tracing::error!(
                    request_id,
                    event_id = event_id.as_deref(),
                    outcome = "failed",
                    reason = reason.as_str(),
                    "reconcile failed"
                );
                // The next scheduled run is the retry.
                return Ok(Report {
                    event_id,
                    outcomes: vec![],
                    reason: Some(reason),
                    aws_calls: self.aws.calls.take(),
                });
            }
        };
        let repositories: BTreeSet<String> = tagged
            .iter()
            .filter_map(|t| t.tags.get(TAG_REPOSITORY).cloned())
            .chain(self.config.rules.iter().map(|r| r.repository.clone()))
            .collect();

        let mut outcomes = Vec::new();
        let (mut followed, mut nothing_newer) = (0, 0);
        let mut unreadable = Vec::new();
        let lease = invocation.lease();
        let registries = registries(self.config.trusted_accounts.as_ref(), invocation.home().0);
        for repository in &repositories {
            for registry in &registries {
                let images = match self.aws.images(registry.as_deref(), repository).await {
                    Ok(images) => images,
                    // With several registries, a repository lives in some of them only.
                    Err(e)
                        if registries.len() > 1
                            && e.code.as_deref() == Some("RepositoryNotFoundException") =>
                    {
                        continue
                    }
                    Err(e) => {
                        let registry = registry.as_deref().unwrap_or("this account");
                        unreadable.push(format!("{repository} in {registry}'s registry ({e})"));
                        continue;
                    }
                };
                let done = self
                    .reconcile_images(
                        repository,
                        &region,
                        &images,
                        &tagged,
                        &lease,
                        registries.len() > 1,
                    )
                    .await;
                outcomes.extend(done.outcomes);
                followed += done.followed;
                nothing_newer += done.nothing_newer;
            }
        }
        let considered = outcomes.len();
        outcomes.retain(|o| !in_step(o));
        let in_step_count = nothing_newer + considered - outcomes.len();
        outcomes.sort_by(|a, b| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)));
        let subject = Subject::event(event_id.as_deref().unwrap_or("reconcile"));
        let run = Run::new(subject, request_id, started, &self.config);
        run.announce(&mut outcomes, &self.notifier).await;
        let mut reason = format!(
            "reconcile at {}: {} repositories, {} services follow them, {} already run the newest image they follow",
            crate::event::timestamp_text(&at),
            repositories.len(),
            followed,
            in_step_count
        );
        if !unreadable.is_empty() {
            reason.push_str(&format!(
                "; could not read {} (the next run tries again)",
                unreadable.join(", ")
            ));
        }
        let report = Report {
            event_id: event_id.clone(),
            outcomes,
            reason: Some(reason),
            aws_calls: self.aws.calls.take(),
        };
        run.summary(&report);
        report.into_result("the reconcile")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(digest: char, tags: &[&str], minute: u32) -> EcrImage {
        EcrImage {
            registry_id: "123456789012".into(),
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: DateTime::from_timestamp(1_790_000_000 + i64::from(minute) * 60, 0),
            manifest_media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            artifact_media_type: Some("application/vnd.oci.image.config.v1+json".into()),
        }
    }

    #[test]
    fn the_best_image_by_policy() {
        let images = [
            image('a', &["1.4.2"], 1),
            image('b', &["1.10.0", "stable"], 2),
            image('c', &["1.9.0", "latest"], 3),
            image('d', &["2.0.0-rc.1"], 4),
        ];
        let pushes = candidates("web", "us-east-1", &images);
        let pick = |policy: &str, running: Option<&str>| {
            let policy = TagPolicy::parse(policy).unwrap();
            let admitted: Vec<usize> = (0..pushes.len())
                .filter(|i| policy.admits(&pushes[*i].tag))
                .collect();
            choose(&policy, running, &admitted, &pushes)
                .map(|i| pushes[i].tag.clone())
                .unwrap_or_else(|| "none".into())
        };
        assert_eq!(
            pick("semver:major", None),
            "1.10.0",
            "numbers, not push order; no pre-release"
        );
        assert_eq!(pick("semver:minor", Some("1.4.2")), "1.10.0");
        assert_eq!(pick("semver:patch", Some("1.4.0")), "1.4.2");
        assert_eq!(
            pick("semver:patch", Some("1.4.2")),
            "none",
            "nothing newer within the policy"
        );
        assert_eq!(
            pick("semver:minor", Some("2.1.0")),
            "none",
            "never a step back"
        );
        assert_eq!(pick("any", None), "2.0.0-rc.1", "the newest push");
        assert_eq!(pick("latest", None), "latest");
        assert_eq!(pushes[0].event_id, format!("reconcile-{}", "a".repeat(48)));
    }
}
