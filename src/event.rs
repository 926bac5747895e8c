//! The edge: a raw invocation payload becomes a typed [`Push`] exactly once, or a typed
//! [`NotDeployable`] reason. Code past this module never sees a half-valid event.
//!
//! Two ECR events stand for "a new image is in this registry": a push (`ECR Image Action`,
//! `PUSH`) and, in the destination region and account of ECR replication, the replicated image
//! (`ECR Replication Action`, `REPLICATE`, with `source-account` and `source-region`; ECR user
//! guide, "Amazon ECR events and EventBridge"). Both become a [`Push`] and take the same path.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

pub(crate) const ECR_SOURCE: &str = "aws.ecr";
pub(crate) const ECR_IMAGE_ACTION: &str = "ECR Image Action";
pub(crate) const ECR_REPLICATION_ACTION: &str = "ECR Replication Action";
/// EventBridge's own event for a schedule: both functions' schedules send it.
pub(crate) const SCHEDULE_SOURCE: &str = "aws.events";
pub(crate) const SCHEDULED_EVENT: &str = "Scheduled Event";

/// The `source` and `detail-type` of a raw EventBridge payload, read from the payload itself
/// rather than its parsed envelope: a payload the envelope does not fit still says what it was
/// meant to be. Both functions' edges name their event kinds by this pair.
pub(crate) fn source_and_detail_type(payload: &Value) -> Option<(&str, &str)> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    Some((text("source")?, text("detail-type")?))
}

/// An event the deploy function takes, as its `source` and `detail-type` name it: the one
/// place they are matched. An event that names one but is not deployable is still that one,
/// ignored with its reason (replay routes it to the deploy function all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeployEventKind {
    /// `aws.ecr` / `ECR Image Action`.
    Push,
    /// `aws.ecr` / `ECR Replication Action`.
    Replication,
    /// `aws.events` / `Scheduled Event`: the reconcile schedule.
    Schedule,
}

impl DeployEventKind {
    /// The kind a raw payload names ([`source_and_detail_type`]), if the deploy function takes it.
    pub(crate) fn of(payload: &Value) -> Option<DeployEventKind> {
        match source_and_detail_type(payload)? {
            (ECR_SOURCE, ECR_IMAGE_ACTION) => Some(DeployEventKind::Push),
            (ECR_SOURCE, ECR_REPLICATION_ACTION) => Some(DeployEventKind::Replication),
            (SCHEDULE_SOURCE, SCHEDULED_EVENT) => Some(DeployEventKind::Schedule),
            _ => None,
        }
    }
}

/// The `detail` of an ECR `ECR Image Action` event, as EventBridge delivers it.
/// Every field is optional here so that a missing one becomes a precise reason, not a serde error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct EcrImageActionDetail {
    pub(crate) action_type: Option<String>,
    pub(crate) result: Option<String>,
    pub(crate) repository_name: Option<String>,
    pub(crate) image_digest: Option<String>,
    pub(crate) image_tag: Option<String>,
    pub(crate) manifest_media_type: Option<String>,
    pub(crate) artifact_media_type: Option<String>,
    /// Set on an `ECR Replication Action` only.
    pub(crate) source_account: Option<String>,
    pub(crate) source_region: Option<String>,
}

/// An image digest that is exactly `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Reads a digest as ECR writes it; anything else is [`NotDeployable::BadDigest`].
    pub fn parse(raw: &str) -> Result<Self, NotDeployable> {
        let hex = raw
            .strip_prefix("sha256:")
            .ok_or_else(|| NotDeployable::BadDigest(raw.to_string()))?;
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest(raw.to_string()))
        } else {
            Err(NotDeployable::BadDigest(raw.to_string()))
        }
    }

    /// The digest as ECR writes it: `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tagged image that arrived in a registry, by a push or by replication: the only thing
/// pushdeploy deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The event's `id` (a reconcile's is `reconcile-<digest hex>`, the same for the same image):
    /// traces the push through the ledger, the revision's tags and the log, and breaks ties in
    /// [`Push::order_key`].
    pub event_id: String,
    /// The registry the image is in (for a replica: the destination, where the event arrived).
    pub account: String,
    /// That registry's region.
    pub region: String,
    /// The repository's name, held to ECR's grammar (`team/web`).
    pub repository: String,
    /// The tag the image arrived under: never empty, held to the OCI tag grammar.
    pub tag: String,
    /// The image the tag named: what a deploy pins the container to.
    pub digest: Digest,
    /// When the push happened, as far as ordering goes: the event's `time` (a reconcile's: ECR's
    /// `imagePushedAt`) until [`Confirmed::ordered_for`](crate::confirm::Confirmed::ordered_for)
    /// puts in what ECR and the clock confirm. The first part of [`Push::order_key`].
    pub pushed_at: DateTime<Utc>,
    /// ECR's `manifest-media-type`, when the event has it: tells an image from an artifact.
    pub manifest_media_type: Option<String>,
    /// ECR's `artifact-media-type` (the config's media type), when the event has it.
    pub artifact_media_type: Option<String>,
    /// Where ECR replicated the image from; `None` for a push.
    pub replicated_from: Option<ReplicatedFrom>,
}

/// The registry an `ECR Replication Action` copied the image from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatedFrom {
    /// The source registry's account id (12 digits).
    pub account: String,
    /// The source registry's region.
    pub region: String,
}

impl Push {
    /// A total order over pushes that every invocation computes the same way: push time first,
    /// event id to break ties between pushes in the same second (EventBridge times have
    /// one-second resolution). Its string form sorts the same way, so DynamoDB can compare it.
    pub fn order_key(&self) -> String {
        order_key(&self.pushed_at, &self.event_id)
    }

    /// [`Push::pushed_at`] as [`timestamp_text`] writes it: the form the ledger and the
    /// revision's `pushdeploy:pushed-at` tag hold.
    pub fn pushed_at_text(&self) -> String {
        timestamp_text(&self.pushed_at)
    }
}

/// A time as pushdeploy writes it everywhere (ledger, tags, log): RFC 3339 in UTC, whole
/// seconds, `Z`; one fixed width, so that text order is time order.
pub fn timestamp_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// [`Push::order_key`] from its parts: also how a revision's provenance tags give back the order
/// of the push that made it.
pub fn order_key(pushed_at: &DateTime<Utc>, event_id: &str) -> String {
    format!("{}#{}", timestamp_text(pushed_at), event_id)
}

/// Why an event is not a deployable push. Final: Lambda must not retry these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotDeployable {
    #[error("the payload is not an EventBridge event: {0}")]
    /// The payload does not deserialize as an EventBridge event.
    NotEventBridge(String),
    #[error("the event is {event_source:?} / {detail_type:?}, not an ECR push or replication (aws.ecr / ECR Image Action or ECR Replication Action)")]
    /// The event's `source` and `detail-type` name neither an ECR push nor a replication.
    NotEcrImageAction {
        /// The event's `source`.
        event_source: String,
        /// The event's `detail-type`.
        detail_type: String,
    },
    #[error("the event has no {0}, so it cannot be traced or ordered")]
    /// The envelope's `id`, `account`, `region` or `time` is absent or empty.
    MissingEnvelopeField(&'static str),
    #[error("the event's {0} {1:?} is not of the form AWS gives it")]
    /// An envelope value, or a replication's `source-account` or `source-region`, is not shaped
    /// the way AWS shapes it.
    BadEnvelopeField(&'static str, String),
    #[error("the event's detail is not an ECR image action detail: {0}")]
    /// The `detail` does not deserialize into an ECR action's fields (not an object, or a field
    /// of the wrong type).
    BadDetail(String),
    #[error("action-type is {0:?}; only PUSH deploys")]
    /// An `ECR Image Action` whose `action-type` is not `PUSH` (a `DELETE`, say).
    NotAPush(String),
    #[error("action-type is {0:?}; a replication action deploys only with REPLICATE")]
    /// An `ECR Replication Action` whose `action-type` is not `REPLICATE`.
    NotAReplication(String),
    #[error("the push result is {0:?}; only SUCCESS deploys")]
    /// The action's `result` is not `SUCCESS`: no image arrived.
    NotSuccessful(String),
    #[error("the push has no image-tag (an untagged push is never deployed)")]
    /// The detail has no `image-tag`, or an empty one: a digest alone follows no tag.
    Untagged,
    #[error("the push has no {0}")]
    /// A detail field the event must carry is absent (`action-type`, `result`,
    /// `repository-name`, `image-digest`), or a replication's source is absent or empty.
    MissingDetailField(&'static str),
    #[error("image-digest {0:?} is not sha256: followed by 64 lowercase hex digits")]
    /// A digest that [`Digest::parse`] refuses.
    BadDigest(String),
    #[error("repository-name {0:?} is not a valid ECR repository name")]
    /// `repository-name` breaks ECR's grammar for repository names.
    BadRepository(String),
    #[error("image-tag {0:?} is not a valid image tag")]
    /// `image-tag` breaks the OCI grammar for tags.
    BadTag(String),
    #[error("not a runnable image: {0}")]
    /// What arrived is not a runnable image (a signature, SBOM, attestation, chart...), by its
    /// media types or by cosign's tag convention.
    NotAnImage(String),
    #[error("the push is from account {0}, which this function does not trust (PUSHDEPLOY_TRUSTED_ACCOUNTS, default: its own account)")]
    /// A push to the registry of an account the function does not trust.
    UntrustedAccount(String),
    #[error("the push is to a registry in region {push}, but this function deploys in {home}")]
    /// The push's registry is in a region other than the one the function runs in.
    OtherRegion {
        /// The region of the push's registry.
        push: String,
        /// The function's own region.
        home: String,
    },
    #[error("the image was replicated from account {0}, which this function does not trust (PUSHDEPLOY_TRUSTED_ACCOUNTS, default: its own account)")]
    /// A replica copied from the registry of an account the function does not trust.
    UntrustedSourceAccount(String),
    #[error("the image was replicated into account {replica}'s registry, but this function deploys in {home}: a replication is acted on only in the account it arrived in")]
    /// A replica that arrived in another account's registry than the function's own.
    ReplicaInOtherAccount {
        /// The account whose registry holds the replica.
        replica: String,
        /// The function's own account.
        home: String,
    },
}

/// What the edge learned about an event that was not deployable: its id when it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub(crate) event_id: Option<String>,
    /// What the event named itself, when it is an event the deploy function takes.
    pub(crate) kind: Option<DeployEventKind>,
    pub(crate) reason: NotDeployable,
}

/// What the deploy function is asked to do: the one type its handler and replay route on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeployTrigger {
    /// An ECR push, or an image ECR replicated into this region (its `replicated_from`).
    /// Boxed: a push is ten times the size of a reconcile.
    Push(Box<Push>),
    /// The reconcile schedule's `Scheduled Event` (template: MissedPushReconcile): deploy what
    /// pushes whose event never arrived left undone. `at` is the event's `time`, which only
    /// names the run (the reconcile reads ECR, not the event).
    Reconcile {
        event_id: Option<String>,
        at: DateTime<Utc>,
    },
}

/// The deploy function's input, parsed once: a push, a replication or its schedule; anything
/// else is ignored with its reason.
pub(crate) fn parse_deploy_trigger(payload: Value) -> Result<DeployTrigger, Ignored> {
    let kind = DeployEventKind::of(&payload);
    let envelope = envelope_of(payload, kind)?;
    if kind == Some(DeployEventKind::Schedule) {
        return Ok(DeployTrigger::Reconcile {
            event_id: envelope.id.filter(|id| !id.is_empty()),
            at: envelope.time.unwrap_or_else(Utc::now),
        });
    }
    push_of(envelope, kind).map(|push| DeployTrigger::Push(Box::new(push)))
}

/// An ECR push or replication as a [`Push`] whose every field has the shape AWS gives it, or
/// [`Ignored`] with the reason (and the event's id, when it had one). It trusts nothing yet:
/// whether the function acts on the push (its accounts and region) and whether ECR confirms it
/// ([`crate::confirm::confirm`]) are decided after.
pub fn parse_push(payload: Value) -> Result<Push, Ignored> {
    let kind = DeployEventKind::of(&payload);
    push_of(envelope_of(payload, kind)?, kind)
}

fn envelope_of(
    payload: Value,
    kind: Option<DeployEventKind>,
) -> Result<EventBridgeEvent<Value>, Ignored> {
    serde_json::from_value(payload).map_err(|e| Ignored {
        event_id: None,
        kind,
        reason: NotDeployable::NotEventBridge(e.to_string()),
    })
}

fn push_of(
    envelope: EventBridgeEvent<Value>,
    kind: Option<DeployEventKind>,
) -> Result<Push, Ignored> {
    let event_id = envelope.id.clone().filter(|id| !id.is_empty());
    let ignored = |reason| Ignored {
        event_id: event_id.clone(),
        kind,
        reason,
    };
    let replication = match kind {
        Some(DeployEventKind::Push) => false,
        Some(DeployEventKind::Replication) => true,
        Some(DeployEventKind::Schedule) | None => {
            return Err(ignored(NotDeployable::NotEcrImageAction {
                event_source: envelope.source,
                detail_type: envelope.detail_type,
            }))
        }
    };
    let detail: EcrImageActionDetail = serde_json::from_value(envelope.detail)
        .map_err(|e| ignored(NotDeployable::BadDetail(e.to_string())))?;
    push_from(
        envelope.id,
        envelope.account,
        envelope.region,
        envelope.time,
        detail,
        replication,
    )
    .map_err(ignored)
}

/// The source of an `ECR Replication Action`, held to the shapes AWS gives account ids and
/// region names like the envelope's own.
fn replicated_from(detail: &EcrImageActionDetail) -> Result<ReplicatedFrom, NotDeployable> {
    let field = |v: &Option<String>, name, valid: fn(&str) -> bool| {
        let v = v
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(NotDeployable::MissingDetailField(name))?;
        if valid(&v) {
            Ok(v)
        } else {
            Err(NotDeployable::BadEnvelopeField(name, v))
        }
    };
    Ok(ReplicatedFrom {
        account: field(&detail.source_account, "source-account", is_account_id)?,
        region: field(&detail.source_region, "source-region", is_region_name)?,
    })
}

fn is_account_id(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

fn is_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn push_from(
    id: Option<String>,
    account: Option<String>,
    region: Option<String>,
    time: Option<DateTime<Utc>>,
    detail: EcrImageActionDetail,
    replication: bool,
) -> Result<Push, NotDeployable> {
    let replicated_from = replication_source(&detail, replication)?;
    let image = ArrivedImage::from_detail(detail)?;
    Ok(Push {
        event_id: envelope_field(id, "id", is_event_id)?,
        account: envelope_field(account, "account", is_account_id)?,
        region: envelope_field(region, "region", is_region_name)?,
        pushed_at: time.ok_or(NotDeployable::MissingEnvelopeField("time"))?,
        repository: image.repository,
        tag: image.tag,
        digest: image.digest,
        manifest_media_type: image.manifest_media_type,
        artifact_media_type: image.artifact_media_type,
        replicated_from,
    })
}

/// Where the image came from (`None` for a push), once the event's action is the one its
/// detail-type deploys: `PUSH` for a push, `REPLICATE` for a replication.
fn replication_source(
    detail: &EcrImageActionDetail,
    replication: bool,
) -> Result<Option<ReplicatedFrom>, NotDeployable> {
    let action = detail
        .action_type
        .clone()
        .ok_or(NotDeployable::MissingDetailField("action-type"))?;
    match (replication, action.as_str()) {
        (false, "PUSH") | (true, "REPLICATE") => {}
        (false, _) => return Err(NotDeployable::NotAPush(action)),
        (true, _) => return Err(NotDeployable::NotAReplication(action)),
    }
    replication.then(|| replicated_from(detail)).transpose()
}

/// The image an ECR event says arrived: what a successful action put in the registry, under
/// a tag, and runnable.
struct ArrivedImage {
    repository: String,
    tag: String,
    digest: Digest,
    manifest_media_type: Option<String>,
    artifact_media_type: Option<String>,
}

impl ArrivedImage {
    fn from_detail(detail: EcrImageActionDetail) -> Result<ArrivedImage, NotDeployable> {
        let result = detail
            .result
            .ok_or(NotDeployable::MissingDetailField("result"))?;
        if result != "SUCCESS" {
            return Err(NotDeployable::NotSuccessful(result));
        }
        let tag = detail
            .image_tag
            .filter(|t| !t.is_empty())
            .ok_or(NotDeployable::Untagged)?;
        if !is_valid_tag(&tag) {
            return Err(NotDeployable::BadTag(tag));
        }
        let repository = detail
            .repository_name
            .ok_or(NotDeployable::MissingDetailField("repository-name"))?;
        if !is_valid_repository(&repository) {
            return Err(NotDeployable::BadRepository(repository));
        }
        let digest = Digest::parse(
            detail
                .image_digest
                .as_deref()
                .ok_or(NotDeployable::MissingDetailField("image-digest"))?,
        )?;
        if let Some(why) = crate::media::not_an_image(
            &tag,
            detail.manifest_media_type.as_deref(),
            detail.artifact_media_type.as_deref(),
        ) {
            return Err(NotDeployable::NotAnImage(why));
        }
        Ok(ArrivedImage {
            repository,
            tag,
            digest,
            manifest_media_type: detail.manifest_media_type,
            artifact_media_type: detail.artifact_media_type,
        })
    }
}

/// An envelope value held to the shape AWS gives it: the envelope's values end up in tag
/// values, ledger keys and log lines.
fn envelope_field(
    value: Option<String>,
    name: &'static str,
    valid: fn(&str) -> bool,
) -> Result<String, NotDeployable> {
    let value = value
        .filter(|s| !s.is_empty())
        .ok_or(NotDeployable::MissingEnvelopeField(name))?;
    if valid(&value) {
        Ok(value)
    } else {
        Err(NotDeployable::BadEnvelopeField(name, value))
    }
}

fn is_event_id(id: &str) -> bool {
    id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+=".contains(&b))
}

/// Whether this function acts on `push`: only pushes to its own region, from its own account
/// or one of `trusted`; a replica only in its own region and account, replicated from its own
/// account or one of `trusted`. Unknown home values (a local run) are not checked.
pub(crate) fn trust(
    push: &Push,
    home_account: Option<&str>,
    home_region: Option<&str>,
    trusted: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), NotDeployable> {
    if let Some(home) = home_region {
        if push.region != home {
            return Err(NotDeployable::OtherRegion {
                push: push.region.clone(),
                home: home.to_string(),
            });
        }
    }
    let is_trusted = |account: &String| match (trusted, home_account) {
        (Some(trusted), _) => trusted.contains(account),
        (None, Some(home)) => account == home,
        (None, None) => true,
    };
    match &push.replicated_from {
        None if is_trusted(&push.account) => Ok(()),
        None => Err(NotDeployable::UntrustedAccount(push.account.clone())),
        // A replica is in this account's registry: it arrived on this account's bus.
        Some(_) if home_account.is_some_and(|home| home != push.account) => {
            Err(NotDeployable::ReplicaInOtherAccount {
                replica: push.account.clone(),
                home: home_account.unwrap_or_default().to_string(),
            })
        }
        Some(from) if is_trusted(&from.account) => Ok(()),
        Some(from) => Err(NotDeployable::UntrustedSourceAccount(from.account.clone())),
    }
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// ECR's repository-name grammar, as the API reference documents it for `repositoryName`:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, 2 to 256
/// characters: slash-separated components of lowercase alphanumerics joined by `.`, `_`, `__`
/// or a run of `-`.
pub fn is_valid_repository(name: &str) -> bool {
    (2..=256).contains(&name.len()) && name.split('/').all(is_valid_component)
}

fn is_valid_component(component: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut rest = component;
    loop {
        let run = rest.find(|c| !alphanumeric(c)).unwrap_or(rest.len());
        if run == 0 {
            return false;
        }
        rest = &rest[run..];
        if rest.is_empty() {
            return true;
        }
        let separator = rest.find(alphanumeric).unwrap_or(rest.len());
        if !matches!(&rest[..separator], "." | "_" | "__")
            && !rest[..separator].bytes().all(|b| b == b'-')
        {
            return false;
        }
        rest = &rest[separator..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> Value {
        json!({
            "version": "0", "id": "e-1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-26T12:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail
        })
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn push_detail() -> Value {
        json!({"action-type": "PUSH", "result": "SUCCESS", "repository-name": "team/web",
               "image-digest": DIGEST, "image-tag": "latest",
               "manifest-media-type": "application/vnd.oci.image.manifest.v1+json"})
    }

    #[test]
    fn the_deploy_function_takes_a_push_a_replication_or_its_schedule_and_nothing_else() {
        let Ok(DeployTrigger::Push(push)) = parse_deploy_trigger(event(push_detail())) else {
            panic!("a push");
        };
        assert_eq!(
            (push.event_id.as_str(), push.replicated_from.is_none()),
            ("e-1", true)
        );

        let schedule = json!({
            "version": "0", "id": "s-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-26T12:05:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}
        });
        let Ok(DeployTrigger::Reconcile { event_id, at }) = parse_deploy_trigger(schedule) else {
            panic!("the schedule");
        };
        assert_eq!(event_id.as_deref(), Some("s-1"));
        assert_eq!(at.to_rfc3339(), "2026-11-26T12:05:00+00:00");

        let mut ecs = event(json!({"eventName": "SERVICE_DEPLOYMENT_FAILED"}));
        ecs["source"] = json!("aws.ecs");
        ecs["detail-type"] = json!("ECS Deployment State Change");
        let ignored = parse_deploy_trigger(ecs).unwrap_err();
        assert!(
            matches!(ignored.reason, NotDeployable::NotEcrImageAction { .. }),
            "{ignored:?}"
        );
    }

    /// What an event named itself survives its being ignored: replay routes on it.
    #[test]
    fn an_ignored_event_keeps_the_kind_it_named() {
        let kind = |payload: Value| parse_deploy_trigger(payload).unwrap_err().kind;
        let mut delete = push_detail();
        delete["action-type"] = json!("DELETE");
        assert_eq!(kind(event(delete)), Some(DeployEventKind::Push));
        let mut replication = event(json!({}));
        replication["detail-type"] = json!("ECR Replication Action");
        assert_eq!(kind(replication), Some(DeployEventKind::Replication));
        let mut no_envelope = event(push_detail());
        no_envelope.as_object_mut().unwrap().remove("detail");
        assert_eq!(kind(no_envelope), Some(DeployEventKind::Push));
        let mut scan = event(push_detail());
        scan["detail-type"] = json!("ECR Image Scan");
        assert_eq!(kind(scan), None);
        assert_eq!(kind(json!("push")), None);
    }

    #[test]
    fn a_tagged_successful_push_is_deployable() {
        let push = parse_push(event(push_detail())).unwrap();
        assert_eq!(push.repository, "team/web");
        assert_eq!(push.tag, "latest");
        assert_eq!(push.digest.as_str(), DIGEST);
        assert_eq!(push.event_id, "e-1");
        assert_eq!(push.pushed_at_text(), "2026-11-26T12:00:00Z");
        assert_eq!(push.order_key(), "2026-11-26T12:00:00Z#e-1");
        assert_eq!(
            push.manifest_media_type.as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
    }

    fn reason_for(payload: Value) -> NotDeployable {
        parse_push(payload).unwrap_err().reason
    }

    #[test]
    fn everything_else_is_ignored_with_a_reason() {
        let with = |key: &str, value: Value| {
            let mut d = push_detail();
            d[key] = value;
            event(d)
        };
        let without = |key: &str| {
            let mut d = push_detail();
            d.as_object_mut().unwrap().remove(key);
            event(d)
        };
        assert_eq!(
            reason_for(with("action-type", json!("DELETE"))),
            NotDeployable::NotAPush("DELETE".into())
        );
        assert_eq!(
            reason_for(with("result", json!("FAILURE"))),
            NotDeployable::NotSuccessful("FAILURE".into())
        );
        assert_eq!(reason_for(without("image-tag")), NotDeployable::Untagged);
        assert_eq!(
            reason_for(with("image-tag", json!(""))),
            NotDeployable::Untagged
        );
        assert_eq!(
            reason_for(without("image-digest")),
            NotDeployable::MissingDetailField("image-digest")
        );
        assert_eq!(
            reason_for(with("image-digest", json!("sha256:abc"))),
            NotDeployable::BadDigest("sha256:abc".into())
        );
        assert_eq!(
            reason_for(with(
                "image-digest",
                json!(DIGEST.to_uppercase().replace("SHA256", "sha256"))
            )),
            NotDeployable::BadDigest(DIGEST.to_uppercase().replace("SHA256", "sha256"))
        );
        assert_eq!(
            reason_for(with("repository-name", json!("Web"))),
            NotDeployable::BadRepository("Web".into())
        );
        assert_eq!(
            reason_for(with("image-tag", json!("a b"))),
            NotDeployable::BadTag("a b".into())
        );
        assert!(matches!(
            reason_for(with("image-tag", json!(7))),
            NotDeployable::BadDetail(_)
        ));
        let mut other = event(push_detail());
        other["source"] = json!("aws.ecs");
        assert!(matches!(
            reason_for(other),
            NotDeployable::NotEcrImageAction { .. }
        ));
        let mut odd_id = event(push_detail());
        odd_id["id"] = json!("a#b");
        assert_eq!(
            reason_for(odd_id),
            NotDeployable::BadEnvelopeField("id", "a#b".into())
        );
        let mut odd_account = event(push_detail());
        odd_account["account"] = json!("12345");
        assert!(matches!(
            reason_for(odd_account),
            NotDeployable::BadEnvelopeField("account", _)
        ));
        let mut no_time = event(push_detail());
        no_time.as_object_mut().unwrap().remove("time");
        assert_eq!(
            reason_for(no_time),
            NotDeployable::MissingEnvelopeField("time")
        );
        for junk in [json!(null), json!([]), json!({}), json!("push")] {
            assert!(matches!(reason_for(junk), NotDeployable::NotEventBridge(_)));
        }
    }

    #[test]
    fn only_the_home_region_and_trusted_accounts_deploy() {
        let push = parse_push(event(push_detail())).unwrap();
        assert_eq!(
            trust(&push, Some("123456789012"), Some("us-east-1"), None),
            Ok(())
        );
        assert_eq!(trust(&push, None, None, None), Ok(()));
        assert_eq!(
            trust(&push, Some("210987654321"), Some("us-east-1"), None),
            Err(NotDeployable::UntrustedAccount("123456789012".into()))
        );
        let trusted = ["123456789012".to_string()].into_iter().collect();
        assert_eq!(
            trust(&push, Some("210987654321"), None, Some(&trusted)),
            Ok(())
        );
        assert!(matches!(
            trust(&push, None, Some("eu-west-1"), None),
            Err(NotDeployable::OtherRegion { .. })
        ));
    }

    /// The documented `ECR Replication Action` (ECR user guide, "Amazon ECR events and
    /// EventBridge"), as the destination account and region receive it.
    fn replication(source_account: &str) -> Value {
        let mut e = event(json!({
            "result": "SUCCESS", "repository-name": "team/web", "image-digest": DIGEST,
            "source-account": source_account, "action-type": "REPLICATE",
            "source-region": "us-west-2", "image-tag": "latest"
        }));
        e["detail-type"] = json!("ECR Replication Action");
        e
    }

    #[test]
    fn a_replicated_image_is_deployable_from_the_destination_registry() {
        let push = parse_push(replication("210987654321")).unwrap();
        assert_eq!(push.account, "123456789012", "the replica's registry");
        assert_eq!(push.region, "us-east-1");
        assert_eq!(
            push.replicated_from,
            Some(ReplicatedFrom {
                account: "210987654321".into(),
                region: "us-west-2".into()
            })
        );
        assert_eq!(
            (push.repository.as_str(), push.tag.as_str()),
            ("team/web", "latest")
        );
        assert_eq!(
            parse_push(event(push_detail())).unwrap().replicated_from,
            None
        );
    }

    #[test]
    fn a_replication_is_held_to_its_own_action_and_source() {
        let mut push_as_replication = event(push_detail());
        push_as_replication["detail-type"] = json!("ECR Replication Action");
        assert_eq!(
            reason_for(push_as_replication),
            NotDeployable::NotAReplication("PUSH".into())
        );
        let mut replicate_as_push = replication("210987654321");
        replicate_as_push["detail-type"] = json!("ECR Image Action");
        assert_eq!(
            reason_for(replicate_as_push),
            NotDeployable::NotAPush("REPLICATE".into())
        );
        let mut no_source = replication("210987654321");
        no_source["detail"]
            .as_object_mut()
            .unwrap()
            .remove("source-account");
        assert_eq!(
            reason_for(no_source),
            NotDeployable::MissingDetailField("source-account")
        );
        assert_eq!(
            reason_for(replication("2109876")),
            NotDeployable::BadEnvelopeField("source-account", "2109876".into())
        );
        let mut failed = replication("210987654321");
        failed["detail"]["result"] = json!("FAILURE");
        assert_eq!(
            reason_for(failed),
            NotDeployable::NotSuccessful("FAILURE".into())
        );
    }

    /// Issue 13, item 1: a replica deploys only in the account and region it arrived in, and
    /// only when its source account is trusted as a push's account would be.
    #[test]
    fn a_replica_is_trusted_by_where_it_arrived_and_where_it_came_from() {
        let home = Some("123456789012");
        let region = Some("us-east-1");
        let own = parse_push(replication("123456789012")).unwrap();
        assert_eq!(trust(&own, home, region, None), Ok(()));
        let other = parse_push(replication("210987654321")).unwrap();
        assert_eq!(
            trust(&other, home, region, None),
            Err(NotDeployable::UntrustedSourceAccount("210987654321".into()))
        );
        let trusted = ["210987654321".to_string()].into_iter().collect();
        assert_eq!(trust(&other, home, region, Some(&trusted)), Ok(()));
        assert_eq!(
            trust(&other, Some("999999999999"), region, Some(&trusted)),
            Err(NotDeployable::ReplicaInOtherAccount {
                replica: "123456789012".into(),
                home: "999999999999".into()
            })
        );
        assert!(matches!(
            trust(&other, home, Some("eu-west-1"), Some(&trusted)),
            Err(NotDeployable::OtherRegion { .. })
        ));
    }

    #[test]
    fn ignored_events_keep_their_id_for_the_log() {
        let mut d = push_detail();
        d["action-type"] = json!("DELETE");
        assert_eq!(
            parse_push(event(d)).unwrap_err().event_id.as_deref(),
            Some("e-1")
        );
    }

    /// ECR's documented pattern, `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
    /// (API reference, `CreateRepository`, `repositoryName`; the same in botocore's ECR model),
    /// 2 to 256 characters: in events and in image references alike.
    #[test]
    fn repository_names_follow_ecrs_documented_pattern() {
        let table = [
            ("team__app", true),
            ("team--app", true),
            ("team---app", true),
            ("a.b_c-d", true),
            ("org/team__app/web--x", true),
            ("team___app", false),
            ("team._app", false),
            ("team_-app", false),
            ("team-.app", false),
            ("__app", false),
            ("app--", false),
            ("team/__app", false),
        ];
        for (name, valid) in table {
            assert_eq!(is_valid_repository(name), valid, "{name}");
            let image = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:latest");
            assert_eq!(
                crate::image::ImageRef::parse(&image).is_some(),
                valid,
                "{image}"
            );
        }
        assert!(is_valid_repository(&"a".repeat(256)));
        assert!(!is_valid_repository(&"a".repeat(257)));
    }

    #[test]
    fn repository_and_tag_grammar() {
        for ok in ["web", "team/web", "a.b-c_d/e2", "ab"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Web",
            "team//web",
            "/web",
            "web/",
            "a..b",
            "-web",
            "web-",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
        for ok in ["latest", "v1.4.2", "_x", "sha-3f2a1c", &"a".repeat(128)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }
}
