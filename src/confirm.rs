//! A push confirmed by ECR. The event says which digest was pushed under which tag, and when;
//! a Lambda function can also be invoked directly, so none of that is believed until ECR
//! confirms it: the digest is in the repository, still under the pushed tag, and the times
//! that order pushes come from ECR and the clock, not from the payload.

use crate::aws::EcrImage;
use crate::event::{timestamp_text, Push};
use crate::policy::TagPolicy;
use chrono::{DateTime, Duration, Utc};

/// How far ahead of AWS's clock ([`crate::clock`]) an event's time may be before the event is
/// refused as not AWS's. A time ahead of the clock by less buys nothing: ordering never
/// believes a time later than the clock ([`Confirmed::tag_moved_at`]). A day: far enough that
/// no disagreement between AWS's services is taken for a forgery, near enough to refuse the
/// year 2999.
pub(crate) const FAR_FUTURE: Duration = Duration::days(1);

/// What ECR confirmed about a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// ECR's `imagePushedAt`: when the image itself was first pushed.
    pub(crate) image_pushed_at: DateTime<Utc>,
    /// When the tag came to name the image: the event's time, never earlier than the image
    /// and never later than the clock. Only the event knows it (ECR keeps no time per tag, and a
    /// tag moved onto an image pushed before keeps that image's `imagePushedAt`), and it is
    /// believed only because ECR confirmed that the tag names this image now.
    pub(crate) tag_moved_at: DateTime<Utc>,
}

impl Confirmed {
    /// The push as a service following `policy` orders it. A policy over one tag follows what
    /// that tag names now (confirmed), so its pushes are ordered by when the tag moved: moving a
    /// tag back to an earlier image deploys that image. A policy over many tags (a prefix,
    /// semver, any) is ordered by when ECR says each image was pushed, so that no event can
    /// present an old image as the newest.
    pub fn ordered_for(&self, push: &Push, policy: &TagPolicy) -> Push {
        let pushed_at = match policy {
            TagPolicy::Exact(_) => self.tag_moved_at,
            _ => self.image_pushed_at,
        };
        Push {
            pushed_at,
            ..push.clone()
        }
    }
}

/// Why ECR does not confirm a push. Final: a retry would find the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unconfirmed {
    #[error("the event's time {at} is more than {hours} hours ahead of AWS's clock ({now}): not an event AWS sent, not deployed", hours = FAR_FUTURE.num_hours())]
    /// The event's time is further ahead of the clock than `FAR_FUTURE` allows.
    FromTheFuture {
        /// The event's time.
        at: String,
        /// The clock's time it was held to.
        now: String,
    },
    #[error("ECR has no image {digest} in repository {repository} of account {account}: the event names an image that is not there (deleted since, or never pushed)")]
    /// ECR has no image of the event's digest in the event's repository.
    NotInEcr {
        /// The digest the event names.
        digest: String,
        /// The repository the event names.
        repository: String,
        /// The account whose registry was asked.
        account: String,
    },
    #[error("stale push: ECR's tag {tag} no longer names {digest} (tags it carries now: {now_tagged}): a later push moved the tag, and that push deploys")]
    /// ECR has the image, but the pushed tag no longer names it: a late event, skipped as stale.
    TagMovedOn {
        /// The tag the event says was pushed.
        tag: String,
        /// The image the event says it named.
        digest: String,
        /// The tags ECR lists on that image now, comma-separated, or `none`.
        now_tagged: String,
    },
}

impl Unconfirmed {
    /// A push whose tag has moved on is an ordinary late event: each following service skips it
    /// as stale. The others say the event itself is not to be believed.
    pub(crate) fn is_stale(&self) -> bool {
        matches!(self, Unconfirmed::TagMovedOn { .. })
    }
}

/// Holds `push` to what ECR says of its digest (`image`: `None` when ECR has no such image in
/// the repository) and to the clock.
pub fn confirm(
    push: &Push,
    image: Option<&EcrImage>,
    now: DateTime<Utc>,
) -> Result<Confirmed, Unconfirmed> {
    if push.pushed_at > now + FAR_FUTURE {
        return Err(Unconfirmed::FromTheFuture {
            at: timestamp_text(&push.pushed_at),
            now: timestamp_text(&now),
        });
    }
    let not_in_ecr = || Unconfirmed::NotInEcr {
        digest: push.digest.to_string(),
        repository: push.repository.clone(),
        account: push.account.clone(),
    };
    let image = image
        .filter(|image| image.digest == push.digest.as_str())
        .ok_or_else(not_in_ecr)?;
    if !image.tags.contains(&push.tag) {
        return Err(Unconfirmed::TagMovedOn {
            tag: push.tag.clone(),
            digest: push.digest.to_string(),
            now_tagged: if image.tags.is_empty() {
                "none".into()
            } else {
                image.tags.join(", ")
            },
        });
    }
    // ECR reports imagePushedAt for every image; were it missing, the clock bounds the event.
    let image_pushed_at = image.pushed_at.unwrap_or(push.pushed_at.min(now));
    Ok(Confirmed {
        image_pushed_at,
        tag_moved_at: push.pushed_at.min(now).max(image_pushed_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Digest;
    use chrono::TimeZone;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, hour, 0, 0).unwrap()
    }

    fn push(tag: &str, time: DateTime<Utc>) -> Push {
        Push {
            event_id: "e".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            repository: "web".into(),
            tag: tag.into(),
            digest: Digest::parse(D).unwrap(),
            pushed_at: time,
            manifest_media_type: None,
            artifact_media_type: None,
            replicated_from: None,
        }
    }

    fn image(tags: &[&str], pushed: DateTime<Utc>) -> EcrImage {
        EcrImage {
            registry_id: "123456789012".into(),
            digest: D.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: Some(pushed),
            manifest_media_type: None,
            artifact_media_type: None,
        }
    }

    /// Issue 14, item 1: the forged event of the issue (an existing digest, a tag the policy
    /// accepts, time in the year 2999) and its neighbours.
    #[test]
    fn only_what_ecr_and_the_clock_confirm_is_a_push() {
        let now = at(12);
        let year_2999 = Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            confirm(
                &push("v999.0.0", year_2999),
                Some(&image(&["v999.0.0"], at(9))),
                now
            ),
            Err(Unconfirmed::FromTheFuture { .. })
        ));
        assert!(matches!(
            confirm(
                &push("v999.0.0", at(11)),
                Some(&image(&["v1.0.0"], at(9))),
                now
            ),
            Err(Unconfirmed::TagMovedOn { .. })
        ));
        assert!(matches!(
            confirm(&push("latest", at(11)), None, now),
            Err(Unconfirmed::NotInEcr { .. })
        ));
        let mut other = image(&["latest"], at(9));
        other.digest = D.replace('1', "2");
        assert!(matches!(
            confirm(&push("latest", at(11)), Some(&other), now),
            Err(Unconfirmed::NotInEcr { .. })
        ));
        assert!(
            confirm(
                &push("latest", now + Duration::hours(2)),
                Some(&image(&["latest"], at(9))),
                now
            )
            .is_ok_and(|c| c.tag_moved_at == now),
            "a time ahead of the clock is not believed beyond it"
        );
    }

    #[test]
    fn a_tag_is_ordered_by_when_it_moved_an_image_by_when_it_was_pushed() {
        let now = at(12);
        let retagged = push("prod", at(11));
        let confirmed = confirm(&retagged, Some(&image(&["prod", "build-7"], at(9))), now).unwrap();
        assert_eq!(confirmed.image_pushed_at, at(9));
        assert_eq!(confirmed.tag_moved_at, at(11));
        let exact = TagPolicy::parse("prod").unwrap();
        let any = TagPolicy::parse("any").unwrap();
        assert_eq!(confirmed.ordered_for(&retagged, &exact).pushed_at, at(11));
        assert_eq!(confirmed.ordered_for(&retagged, &any).pushed_at, at(9));
        // An event time before the image existed is not believed either.
        let early = confirm(&push("prod", at(8)), Some(&image(&["prod"], at(9))), now).unwrap();
        assert_eq!(early.tag_moved_at, at(9));
    }
}
