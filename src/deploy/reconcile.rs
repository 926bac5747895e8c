//! Missed pushes. ECR documents its push events as best effort, so on a schedule the deploy
//! function compares, for every followed repository and tag policy, the newest matching image
//! in ECR with what each service runs, and deploys the difference through the same path as a
//! push: the same claim, ordering, quarantine, pause, policy and dry-run rules.
//!
//! Its reads are bounded (issue 14, item 6): a run reads tagged images only, in pages of 1000,
//! at most [`MAX_PAGES`] pages and [`REPOSITORY_READ_TIME`] per repository, and starts no read
//! later than [`RESERVE`] before the invocation's deadline; it starts at a repository chosen from
//! its scheduled time ([`reading_order`]), and says in its reason what it did not reach or read
//! only partly.

use super::{Deployer, Revisions, Shared};
use crate::aws::{EcrImage, ImagesRead, ReadStop, IMAGES_PAGE_SIZE};
use crate::event::{is_valid_repository, Digest, Push};
use crate::follow::{followers, Follower, ServiceKey, TaggedService};
use crate::image::ImageRef;
use crate::invocation::Invocation;
use crate::media::not_an_image;
use crate::outcome::{Outcome, OutcomeKind, Report, RetryableFailure, SkipReason};
use crate::plan::running_tag;
use crate::policy::{TagPolicy, Version};
use crate::tags::TAG_REPOSITORY;
use crate::telemetry::{Run, Subject};
use aws_sdk_ecs::types::{Tag, TaskDefinition};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Pages one read of a repository may take: 100 pages of 1000 are 100,000 images, ECR's
/// default quota of images per repository ("Images per repository: 100,000", Amazon ECR service
/// quotas), so within that quota only the time limits below stop a read.
const MAX_PAGES: u32 = 100;

/// How long one read of a repository may take, so that one huge repository cannot take the
/// whole run from the others: a third of the function's 60 s timeout.
const REPOSITORY_READ_TIME: Duration = Duration::from_secs(20);

/// No read starts later than this before the invocation's deadline: what is left is for the
/// deploys of the last repository read, and the report.
const RESERVE: Duration = Duration::from_secs(15);

/// The time a run without a deadline (a local run, a replay) reads as if it had: the
/// template's `Timeout: 60`.
const DEFAULT_RUN_TIME: Duration = Duration::from_secs(60);

/// The order a run reads the repositories in: the sorted list, rotated to start at a place
/// chosen from the run's scheduled time, so that a run that stops early leaves different
/// repositories unread each time, and none is always last.
///
/// The place is Fibonacci hashing of the scheduled minute: the minute times 2^64/φ (modulo
/// 2^64), scaled to the list's length. Runs `P` minutes apart start `P·φ` (modulo 1) of the way
/// further round the list, an irrational step, so (three-distance theorem) the starting places
/// of successive runs spread evenly round the list whatever the schedule's rate: at the default
/// rate of 15 minutes each of `n` repositories comes first within `2n` consecutive runs, at any
/// rate from 1 to 60 minutes within `4n` (the tests check both for up to 40 repositories). A
/// plain `minute mod n` would not: every 15 minutes with 3, 5 or 15 repositories it would start
/// at the same one every run. It needs no state, nothing is written per run, and a retry of the
/// same scheduled event (same time) reads in the same order.
fn reading_order<T: Clone>(sorted: &[T], at: &DateTime<Utc>) -> Vec<T> {
    let mut order = sorted.to_vec();
    if order.is_empty() {
        return order;
    }
    let minute = at.timestamp().div_euclid(60) as u64;
    let turn = minute.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let start = ((u128::from(turn) * order.len() as u128) >> 64) as usize;
    order.rotate_left(start);
    order
}

/// When the run's reads must stop: [`RESERVE`] before the invocation's deadline (epoch ms; 0
/// when it has none, then [`DEFAULT_RUN_TIME`] after `started`), as an instant.
fn reads_until(deadline_ms: u64, now_ms: u64, now: Instant, started: Instant) -> Instant {
    let deadline = if deadline_ms == 0 {
        started + DEFAULT_RUN_TIME
    } else {
        now + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    deadline.checked_sub(RESERVE).unwrap_or(now)
}

/// The instant the read of the next repository must end, if one may start at `now`.
fn repository_until(now: Instant, reads_until: Instant) -> Option<Instant> {
    (now < reads_until).then(|| (now + REPOSITORY_READ_TIME).min(reads_until))
}

/// A repository, with its registry when the run reads several.
fn place(repository: &str, registry: Option<&str>, several_registries: bool) -> String {
    match registry {
        Some(registry) if several_registries => format!("{repository} in {registry}'s registry"),
        _ => repository.to_string(),
    }
}

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

/// The followers grouped by the image each moves to (indexes into `pushes`), and how many
/// admit nothing newer than what they run.
fn images_chosen(
    admitted: &Admitted,
    running: &HashMap<ServiceKey, Option<String>>,
    pushes: &[Push],
) -> (BTreeMap<usize, Vec<Follower>>, usize) {
    let mut by_image: BTreeMap<usize, Vec<Follower>> = BTreeMap::new();
    let mut nothing_newer = 0;
    for (key, (follower, candidates)) in admitted {
        let running = running.get(key).cloned().flatten();
        match choose(&follower.policy, running.as_deref(), candidates, pushes) {
            Some(index) => by_image.entry(index).or_default().push(follower.clone()),
            None => nothing_newer += 1,
        }
    }
    (by_image, nothing_newer)
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
        let mut running = HashMap::new();
        let batches =
            super::by_cluster_batches(following.iter().copied(), |f| f.key.cluster.as_str());
        for (cluster, batch) in batches {
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
        running
    }

    /// Deploys, to each service that follows `repository`, the newest of `read`'s images its
    /// policy admits, through the push path. From a read that stopped early, only services
    /// that follow an exact tag move, to the image that carries it: a tag names one image of a
    /// repository, so that image is the answer wherever the other pages are; the newest image or
    /// the highest version may be on a page not read, so the others wait for a whole read.
    async fn reconcile_images(
        &self,
        repository: &str,
        region: &str,
        read: &ImagesRead,
        tagged: &[TaggedService],
        lease: &super::Lease,
        several_registries: bool,
    ) -> Reconciled {
        let mut done = Reconciled::default();
        let pushes = candidates(repository, region, &read.images);
        let (mut admitted, problems) = admitted(&pushes, tagged, &self.config);
        done.outcomes.extend(problems);
        if read.stopped.is_some() {
            admitted.retain(|_, (f, _)| matches!(f.policy, TagPolicy::Exact(_)));
        }
        let Some(any_push) = pushes.first() else {
            return done;
        };
        let running = self
            .running_tags(&mut admitted, any_push, several_registries)
            .await;
        done.followed = admitted.len();
        let (by_image, nothing_newer) = images_chosen(&admitted, &running, &pushes);
        done.nothing_newer = nothing_newer;
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

    /// The tag each semver follower's container runs now (it chooses by that version), read
    /// from ECS. With several registries, every follower is read, and only those that run this
    /// registry's image stay admitted: a repository of the same name in another trusted
    /// registry is not this one (the others would fail to find their container on every run).
    async fn running_tags(
        &self,
        admitted: &mut Admitted,
        any_push: &Push,
        several_registries: bool,
    ) -> HashMap<ServiceKey, Option<String>> {
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
        admitted
            .iter()
            .filter(|(_, (f, _))| is_semver(f))
            .filter_map(|(key, (f, _))| {
                let (definition, tags) = definitions.get(key)?;
                let tag = running_tag(any_push, f.container.as_deref(), definition, tags);
                Some((key.clone(), tag))
            })
            .collect()
    }

    /// One scheduled run: every followed repository read (within bounds), every service moved
    /// to the newest image its policy admits, and one report that says what was and was not
    /// covered. A failure to list the services is answered, not retried: the next run is.
    pub(super) async fn reconcile(
        &self,
        event_id: Option<String>,
        at: DateTime<Utc>,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        let started = Instant::now();
        let request_id = invocation.request_id.as_deref();
        let tagged = match self.aws.all_tagged_services().await {
            Ok(tagged) => tagged,
            Err(e) => return Ok(self.cannot_list(event_id, request_id, &e.to_string())),
        };
        let (repositories, not_names) = repositories_named(&tagged, &self.config);
        let mut tally = self
            .read_and_reconcile(&repositories, &tagged, &at, invocation, started)
            .await;
        tally.not_names = not_names;
        let considered = tally.outcomes.len();
        tally.outcomes.retain(|o| !in_step(o));
        tally.nothing_newer += considered - tally.outcomes.len();
        let reason = tally.reason(&at, repositories.len());
        let mut outcomes = std::mem::take(&mut tally.outcomes);
        outcomes.sort_by(|a, b| (&a.cluster, &a.service).cmp(&(&b.cluster, &b.service)));
        let subject = Subject::event(event_id.as_deref().unwrap_or("reconcile"));
        let (calls, notifier) = (&self.aws.calls, &self.notifier);
        Run::new(subject, request_id, started, &self.config)
            .close(
                outcomes,
                event_id.clone(),
                Some(reason),
                calls,
                notifier,
                "the reconcile",
            )
            .await
    }

    /// The answer when the services that follow a repository cannot be listed.
    fn cannot_list(&self, event_id: Option<String>, request_id: Option<&str>, e: &str) -> Report {
        let reason =
            format!("the reconcile could not list the services that follow a repository: {e}");
        tracing::error!(
            request_id,
            event_id = event_id.as_deref(),
            outcome = "failed",
            reason = reason.as_str(),
            "reconcile failed"
        );
        // The next scheduled run is the retry.
        Report {
            event_id,
            outcomes: vec![],
            reason: Some(reason),
            aws_calls: self.aws.calls.take(),
        }
    }

    /// Each repository in each trusted registry, in this run's order, read within its bounds
    /// and reconciled; what could not be read, or was read only partly, is noted.
    async fn read_and_reconcile(
        &self,
        repositories: &[String],
        tagged: &[TaggedService],
        at: &DateTime<Utc>,
        invocation: &Invocation,
        started: Instant,
    ) -> Tally {
        let region = invocation
            .home()
            .1
            .or(self.aws.region())
            .unwrap_or_default();
        let lease = invocation.lease();
        let registries = registries(self.config.trusted_accounts.as_ref(), invocation.home().0);
        let several = registries.len() > 1;
        let now_ms = crate::clock::now_ms();
        let reads_until = reads_until(invocation.deadline_ms, now_ms, Instant::now(), started);
        let mut tally = Tally::default();
        for repository in &reading_order(repositories, at) {
            for registry in &registries {
                let here = place(repository, registry.as_deref(), several);
                let Some(until) = repository_until(Instant::now(), reads_until) else {
                    tally.not_reached.push(here);
                    continue;
                };
                let images = self
                    .aws
                    .images(registry.as_deref(), repository, MAX_PAGES, until);
                let read = match images.await {
                    Ok(read) => read,
                    // With several registries, a repository lives in some of them only.
                    Err(e)
                        if several && e.code.as_deref() == Some("RepositoryNotFoundException") =>
                    {
                        continue
                    }
                    Err(e) => {
                        let registry = registry.as_deref().unwrap_or("this account");
                        let what = format!("{repository} in {registry}'s registry ({e})");
                        tally.unreadable.push(what);
                        continue;
                    }
                };
                tally.read(&here, &read, until < reads_until);
                let done = self
                    .reconcile_images(repository, region, &read, tagged, &lease, several)
                    .await;
                tally.add(done);
            }
        }
        tally
    }
}

/// The repositories the run reads: every `pushdeploy:repository` value that is a repository
/// name (ECR's pattern) and every rule's, once each, sorted; and the services whose tag value
/// is not a name (a tag value is anyone's to set who may tag a service: it is named, not read).
fn repositories_named(
    tagged: &[TaggedService],
    config: &crate::config::Config,
) -> (Vec<String>, Vec<String>) {
    let mut not_names = Vec::new();
    let repositories: BTreeSet<String> = tagged
        .iter()
        .filter_map(|t| Some((t, t.tags.get(TAG_REPOSITORY)?)))
        .filter(|(t, value)| {
            is_valid_repository(value) || {
                not_names.push(t.arn.clone());
                false
            }
        })
        .map(|(_, value)| value.clone())
        .chain(config.rules.iter().map(|r| r.repository.clone()))
        .filter(|repository| is_valid_repository(repository))
        .collect();
    (repositories.into_iter().collect(), not_names)
}

/// What one run did and did not cover, for its report.
#[derive(Default)]
struct Tally {
    outcomes: Vec<Outcome>,
    /// Services that follow a repository read.
    followed: usize,
    /// Of those, services already on the newest image they follow.
    nothing_newer: usize,
    pages: u32,
    images: usize,
    unreadable: Vec<String>,
    /// Repositories read only in part, and what stopped each read.
    partly: Vec<String>,
    not_reached: Vec<String>,
    /// Services whose `pushdeploy:repository` value is not a repository name.
    not_names: Vec<String>,
}

impl Tally {
    /// Counts one read of `here`; `own_limit` says whether its time limit was the per-repository
    /// one rather than the run's.
    fn read(&mut self, here: &str, read: &ImagesRead, own_limit: bool) {
        self.pages += read.pages;
        self.images += read.images.len();
        let Some(stop) = read.stopped else {
            return;
        };
        let why = match stop {
            ReadStop::PageCap => format!("the cap of {MAX_PAGES} pages"),
            ReadStop::TimeLimit if own_limit => format!(
                "the {} s limit per repository",
                REPOSITORY_READ_TIME.as_secs()
            ),
            ReadStop::TimeLimit => "the run's time".to_string(),
        };
        self.partly.push(format!(
            "{here} ({} images in {} pages, stopped by {why})",
            read.images.len(),
            read.pages
        ));
    }

    fn add(&mut self, done: Reconciled) {
        self.outcomes.extend(done.outcomes);
        self.followed += done.followed;
        self.nothing_newer += done.nothing_newer;
    }

    /// The run's reason: what it covered, then each thing it did not, with what to expect.
    fn reason(&self, at: &DateTime<Utc>, repositories: usize) -> String {
        let (images, pages) = (self.images, self.pages);
        let mut reason = format!(
            "reconcile at {}: {repositories} repositories, {} services follow them, {} already run the newest image they follow; read {images} tagged images in {pages} pages of up to {IMAGES_PAGE_SIZE}",
            crate::event::timestamp_text(at),
            self.followed,
            self.nothing_newer
        );
        if !self.unreadable.is_empty() {
            reason.push_str(&format!(
                "; could not read {} (the next run tries again)",
                self.unreadable.join(", ")
            ));
        }
        if !self.partly.is_empty() {
            reason.push_str(&format!(
                "; read only partly: {} (only services that follow an exact tag found there were reconciled; the others wait for a run that reads it whole)",
                self.partly.join(", ")
            ));
        }
        if !self.not_reached.is_empty() {
            reason.push_str(&format!(
                "; did not reach {} before the run's reads had to stop, {} s before its deadline (each run starts at another repository)",
                self.not_reached.join(", "),
                RESERVE.as_secs()
            ));
        }
        if !self.not_names.is_empty() {
            reason.push_str(&format!(
                "; ignored the {TAG_REPOSITORY} tag of {}: not a repository name",
                self.not_names.join(", ")
            ));
        }
        reason
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

    fn minute(m: i64) -> DateTime<Utc> {
        // 2026-11-26T13:00:00Z plus `m` minutes.
        DateTime::from_timestamp(1_795_698_000 + m * 60, 0).unwrap()
    }

    #[test]
    fn each_run_starts_at_a_place_of_its_scheduled_time_and_every_repository_comes_first() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let order = reading_order(&names, &minute(0));
        assert_eq!(
            order,
            reading_order(&names, &minute(0)),
            "a retry reads alike"
        );
        let start = names.iter().position(|n| *n == order[0]).unwrap();
        let mut rotated = names.clone();
        rotated.rotate_left(start);
        assert_eq!(order, rotated, "the sorted list, rotated");
        assert_eq!(
            reading_order(&names, &(minute(0) + chrono::Duration::seconds(42))),
            order,
            "the scheduled minute decides, not its seconds"
        );
        // Successive 15-minute runs start at different places, where `minute mod 5` would not.
        let firsts: Vec<String> = (0..5)
            .map(|k| reading_order(&names, &minute(15 * k))[0].clone())
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] != w[1]), "{firsts:?}");
        assert!(reading_order::<String>(&[], &minute(0)).is_empty());

        // Every repository comes first within 2n runs at the default rate, 4n at rates up to an
        // hour, from any starting time.
        for (rate, within) in [(15, 2), (1, 4), (5, 4), (10, 4), (30, 4), (60, 4)] {
            for n in 1..=40usize {
                let list: Vec<usize> = (0..n).collect();
                for base in (0..200).step_by(7) {
                    let mut seen = BTreeSet::new();
                    for k in 0..within * n {
                        seen.insert(reading_order(&list, &minute(base + (k * rate) as i64))[0]);
                    }
                    assert_eq!(
                        seen.len(),
                        n,
                        "rate {rate} min, {n} repositories, base {base}"
                    );
                }
            }
        }
    }

    #[test]
    fn reads_stop_before_the_deadline_and_each_repository_has_its_own_limit() {
        let started = Instant::now();
        let now = started + Duration::from_secs(2);
        let now_ms = 1_795_698_000_000;
        // Lambda's deadline 58 s from now: reads stop 15 s before it.
        let until = reads_until(now_ms + 58_000, now_ms, now, started);
        assert_eq!(until - now, Duration::from_secs(43));
        assert_eq!(
            repository_until(now, until),
            Some(now + REPOSITORY_READ_TIME),
            "a repository may read for 20 s"
        );
        let late = now + Duration::from_secs(35);
        assert_eq!(
            repository_until(late, until),
            Some(until),
            "but not past the run's limit"
        );
        assert_eq!(repository_until(until, until), None, "then nothing starts");
        // Less than the reserve left: no read starts at all.
        let short = reads_until(now_ms + 10_000, now_ms, now, started);
        assert_eq!(repository_until(now, short), None);
        // A deadline already past.
        let past = reads_until(now_ms - 1, now_ms, now, started);
        assert_eq!(repository_until(now, past), None);
        // No deadline (a local run): as if the template's 60 s started with the run.
        let local = reads_until(0, now_ms, now, started);
        assert_eq!(local, started + Duration::from_secs(45));
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
