//! Which pushed tags a service follows (`pushdeploy:tag`, or a rule's `tag`), in a syntax that
//! fits ECS tag values (letters, digits, spaces and `+ - = . _ : / @`; no `*`):
//!
//! | policy | follows |
//! |---|---|
//! | `latest`, `v1.4.2`, ... | exactly that tag (the default is `latest`) |
//! | `prefix:<p>` | any tag that starts with `<p>` |
//! | `semver:major` / `semver:minor` / `semver:patch` | a release version (`1.4.2` or `v1.4.2`) newer than the one the service runs, changing at most that part |
//! | `any` | every tag |
//!
//! Semver policies never move a service to a lower or equal version, whatever order pushes
//! arrive in, and never to a pre-release (`1.5.0-rc.1`): those are for people to deploy.

use std::cmp::Ordering;
use std::fmt;

/// Which pushed tags a service follows: one of the policies in this module's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPolicy {
    /// `latest`, `v1.4.2`, ...: exactly that tag.
    Exact(String),
    /// `prefix:<p>`: any tag that starts with `<p>` (never empty).
    Prefix(String),
    /// `semver:<level>`: a release version newer than the one the service runs, changing at
    /// most `level`.
    Semver(Level),
    /// `any`: every tag.
    Any,
}

/// The largest part of the version a semver policy may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only the patch number: `1.4.2` -> `1.4.3`.
    Patch,
    /// The minor number too: `1.4.2` -> `1.5.0`.
    Minor,
    /// Any part: `1.4.2` -> `2.0.0`.
    Major,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Major => "major",
            Level::Minor => "minor",
            Level::Patch => "patch",
        }
    }
}

/// A text that is not a tag policy, as given (whitespace trimmed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a tag policy: use an exact tag, prefix:<start of tag>, semver:major, semver:minor, semver:patch, or any")]
pub struct BadPolicy(pub String);

impl TagPolicy {
    /// Reads a policy as a service tag or a rule writes it, surrounding whitespace ignored. An
    /// exact tag must be a valid image tag; a prefix must be made of characters a tag may hold.
    pub fn parse(raw: &str) -> Result<TagPolicy, BadPolicy> {
        let raw = raw.trim();
        let bad = || BadPolicy(raw.to_string());
        if raw == "any" {
            return Ok(TagPolicy::Any);
        }
        if let Some(prefix) = raw.strip_prefix("prefix:") {
            return if !prefix.is_empty() && prefix.chars().all(tag_char) {
                Ok(TagPolicy::Prefix(prefix.to_string()))
            } else {
                Err(bad())
            };
        }
        if let Some(level) = raw.strip_prefix("semver:") {
            return match level {
                "major" => Ok(TagPolicy::Semver(Level::Major)),
                "minor" => Ok(TagPolicy::Semver(Level::Minor)),
                "patch" => Ok(TagPolicy::Semver(Level::Patch)),
                _ => Err(bad()),
            };
        }
        // An image tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} (the OCI distribution spec).
        let valid_tag = raw.len() <= 128
            && raw
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && raw.chars().all(tag_char);
        if valid_tag {
            Ok(TagPolicy::Exact(raw.to_string()))
        } else {
            Err(bad())
        }
    }

    /// Whether a push of `tag` concerns a service with this policy at all. Semver policies
    /// admit any valid version here; whether it is a move they allow depends on what runs
    /// ([`TagPolicy::allows_move`]).
    pub fn admits(&self, tag: &str) -> bool {
        match self {
            TagPolicy::Exact(t) => t == tag,
            TagPolicy::Prefix(p) => tag.starts_with(p.as_str()),
            TagPolicy::Semver(_) => Version::parse(tag).is_some(),
            TagPolicy::Any => true,
        }
    }

    /// For a semver policy: may the service move from `running` (its version, when known) to
    /// the pushed tag? `Err` says why not. Other policies allow every admitted tag.
    pub fn allows_move(&self, running: Option<&str>, pushed: &str) -> Result<(), Refusal> {
        let TagPolicy::Semver(level) = self else {
            return Ok(());
        };
        let Some(to) = Version::parse(pushed) else {
            return Err(Refusal::Outside(format!(
                "{pushed:?} is not a release version (semver:{})",
                level.as_str()
            )));
        };
        if to.pre.is_some() {
            return Err(Refusal::Outside(format!(
                "{pushed} is a pre-release; semver policies follow release versions only"
            )));
        }
        // Nothing to compare with (the service runs `latest` or a bare digest): the first
        // version pushed becomes its baseline.
        let Some(from) = running.and_then(Version::parse) else {
            return Ok(());
        };
        if to.cmp_precedence(&from) != Ordering::Greater {
            return Err(Refusal::NotNewer(format!(
                "{pushed} is not newer than {}, which the service runs",
                running.unwrap_or_default()
            )));
        }
        let changes = if to.major != from.major {
            Level::Major
        } else if to.minor != from.minor {
            Level::Minor
        } else {
            Level::Patch
        };
        if changes > *level {
            return Err(Refusal::Outside(format!(
                "{} -> {pushed} is a {} change; the service follows semver:{}",
                running.unwrap_or_default(),
                changes.as_str(),
                level.as_str()
            )));
        }
        Ok(())
    }
}

impl fmt::Display for TagPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagPolicy::Exact(t) => write!(f, "{t}"),
            TagPolicy::Prefix(p) => write!(f, "prefix:{p}"),
            TagPolicy::Semver(l) => write!(f, "semver:{}", l.as_str()),
            TagPolicy::Any => write!(f, "any"),
        }
    }
}

/// Why a semver policy does not move the service to a pushed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Lower than or equal to what runs.
    NotNewer(String),
    /// A bigger change than the policy allows, a pre-release, or not a version.
    Outside(String),
}

fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A semantic version (semver.org 2.0.0), optionally `v`-prefixed as tags often are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The first number: `1` in `1.4.2`.
    pub major: u64,
    /// The second number: `4` in `1.4.2`.
    pub minor: u64,
    pub(crate) patch: u64,
    /// The pre-release after the `-` (`rc.1` in `1.5.0-rc.1`), if any: it puts the version
    /// below its release.
    pub pre: Option<String>,
}

impl Version {
    /// Reads a tag as a version: `MAJOR.MINOR.PATCH[-pre][+build]`, optionally `v`-prefixed,
    /// no leading zeros; build metadata is dropped. `None` when the tag is not one.
    pub fn parse(tag: &str) -> Option<Version> {
        let s = tag.strip_prefix('v').unwrap_or(tag);
        // Build metadata (`+...`) cannot appear in an image tag, but is ignored if it does.
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let (core, pre) = match s.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (s, None),
        };
        let mut parts = core.split('.');
        let number = |p: Option<&str>| -> Option<u64> {
            let p = p?;
            // No leading zeros, digits only.
            if p.is_empty()
                || (p.len() > 1 && p.starts_with('0'))
                || !p.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            p.parse().ok()
        };
        let (major, minor, patch) = (
            number(parts.next())?,
            number(parts.next())?,
            number(parts.next())?,
        );
        if parts.next().is_some() {
            return None;
        }
        if let Some(pre) = pre {
            let ok = !pre.is_empty()
                && pre.split('.').all(|id| {
                    !id.is_empty()
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !(id.len() > 1
                            && id.starts_with('0')
                            && id.bytes().all(|b| b.is_ascii_digit()))
                });
            if !ok {
                return None;
            }
        }
        Some(Version {
            major,
            minor,
            patch,
            pre: pre.map(str::to_string),
        })
    }

    /// semver.org precedence: numbers, then a pre-release is lower than its release.
    pub fn cmp_precedence(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => cmp_pre(a, b),
            })
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
