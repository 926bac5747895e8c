//! Container image references, and the one question pushdeploy asks of them: does this image
//! come from the ECR repository that was pushed to?

use crate::event::{Digest, Push};

/// `[registry/]repository[:tag][@digest]`, split the way Docker splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub(crate) registry: Option<String>,
    pub(crate) repository: String,
    pub(crate) tag: Option<String>,
    /// What follows the `@` (`sha256:<hex>`, say), when the reference pins a digest.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits a container's `image`; `None` when a part breaks Docker's grammar or ECR's rules
    /// for repository names and tags, so that junk never looks like an image of a repository.
    pub fn parse(image: &str) -> Option<ImageRef> {
        let (name_and_tag, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (image, None),
        };
        // A tag can only follow the last path component; a colon before that is a registry port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(name_and_tag[last_slash + i + 1..].to_string()),
            ),
            None => (name_and_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), rest.to_string())
            }
            _ => (None, name.to_string()),
        };
        // Docker's grammar, so that junk never looks like an image of some repository.
        let valid_registry = registry.as_deref().is_none_or(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
        });
        let valid_digest = digest.as_deref().is_none_or(|d| {
            d.split_once(':').is_some_and(|(algorithm, hex)| {
                !algorithm.is_empty()
                    && !hex.is_empty()
                    && d.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b":+.-_".contains(&b))
            })
        });
        if !valid_registry
            || !crate::event::is_valid_repository(&repository)
            || !tag.as_deref().is_none_or(crate::event::is_valid_tag)
            || !valid_digest
        {
            return None;
        }
        Some(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// True when this image lives in the ECR repository of the push: same account, same region,
    /// same repository path. An image of the same name on another registry never matches.
    pub(crate) fn is_from(&self, push: &Push) -> bool {
        self.repository == push.repository
            && self
                .registry
                .as_deref()
                .and_then(EcrRegistry::parse)
                .is_some_and(|r| r.account == push.account && r.region == push.region)
    }

    /// The same registry and repository, pinned to `digest` (any tag or old digest dropped).
    pub fn pinned_to(&self, digest: &Digest) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}@{digest}", self.repository),
            None => format!("{}@{digest}", self.repository),
        }
    }
}

/// A private ECR registry host, on any of the endpoints ECR serves image pulls from (ECR user
/// guide, "Making requests to Amazon ECR registries": "<registry-id>.dkr-ecr.<aws-region>.on.aws"
/// for dual-stack; AWS General Reference, "Amazon ECR endpoints and quotas", for the FIPS forms):
/// `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` (IPv4) and
/// `<account>.dkr-ecr[-fips].<region>.on.aws` (dual-stack). All name the same registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EcrRegistry {
    pub(crate) account: String,
    pub(crate) region: String,
}

impl EcrRegistry {
    pub(crate) fn parse(host: &str) -> Option<EcrRegistry> {
        let (account, rest) = host.split_once('.')?;
        let region = Self::ipv4_region(rest).or_else(|| Self::dual_stack_region(rest))?;
        let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let valid_region = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (valid_account && valid_region).then(|| EcrRegistry {
            account: account.to_string(),
            region: region.to_string(),
        })
    }

    fn ipv4_region(rest: &str) -> Option<&str> {
        let rest = rest
            .strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
        rest.strip_prefix("dkr.ecr.")
            .or_else(|| rest.strip_prefix("dkr.ecr-fips."))
    }

    fn dual_stack_region(rest: &str) -> Option<&str> {
        let rest = rest.strip_suffix(".on.aws")?;
        rest.strip_prefix("dkr-ecr.")
            .or_else(|| rest.strip_prefix("dkr-ecr-fips."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn push(repository: &str) -> Push {
        Push {
            event_id: "e".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            repository: repository.into(),
            tag: "latest".into(),
            digest: Digest::parse(D).unwrap(),
            pushed_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            manifest_media_type: None,
            artifact_media_type: None,
            replicated_from: None,
        }
    }

    #[test]
    fn parses_tag_digest_and_both() {
        let r = ImageRef::parse(&format!("{REGISTRY}/team/web:1.2@{D}")).unwrap();
        assert_eq!(r.registry.as_deref(), Some(REGISTRY));
        assert_eq!(r.repository, "team/web");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(r.digest.as_deref(), Some(D));
        let r = ImageRef::parse("localhost:5000/web").unwrap();
        assert_eq!(
            (r.registry.as_deref(), r.repository.as_str(), r.tag),
            (Some("localhost:5000"), "web", None)
        );
        let r = ImageRef::parse("nginx:1.27").unwrap();
        assert_eq!(
            (r.registry, r.repository.as_str(), r.tag.as_deref()),
            (None, "nginx", Some("1.27"))
        );
        assert_eq!(ImageRef::parse("library/nginx").unwrap().registry, None);
        assert!(ImageRef::parse("web:").is_none());
        assert!(ImageRef::parse("web@").is_none());
        for junk in [
            "::¡",
            "Web:latest",
            "web:lat est",
            "web@sha256",
            "a b/web",
            "/web",
            "web//x",
        ] {
            assert!(ImageRef::parse(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn only_the_same_ecr_repository_matches() {
        let p = push("web");
        for image in [
            format!("{REGISTRY}/web"),
            format!("{REGISTRY}/web:latest"),
            format!("{REGISTRY}/web@{D}"),
            format!("{REGISTRY}/web:v1@{D}"),
        ] {
            assert!(ImageRef::parse(&image).unwrap().is_from(&p), "{image}");
        }
        for image in [
            "web:latest".to_string(),                                       // Docker Hub
            "public.ecr.aws/team/web:latest".to_string(),                   // ECR Public
            format!("{REGISTRY}/team/web:latest"),                          // another path
            "210987654321.dkr.ecr.us-east-1.amazonaws.com/web".to_string(), // another account
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web".to_string(), // another region
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example/web".to_string(),
        ] {
            assert!(!ImageRef::parse(&image).unwrap().is_from(&p), "{image}");
        }
    }

    #[test]
    fn pinning_keeps_the_registry_and_drops_tag_and_old_digest() {
        let old = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let r = ImageRef::parse(&format!("{REGISTRY}/web:latest@{old}")).unwrap();
        assert_eq!(
            r.pinned_to(&Digest::parse(D).unwrap()),
            format!("{REGISTRY}/web@{D}")
        );
    }

    #[test]
    fn ecr_registry_hosts() {
        assert_eq!(
            EcrRegistry::parse("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            Some(EcrRegistry {
                account: "123456789012".into(),
                region: "us-gov-west-1".into()
            })
        );
        assert!(EcrRegistry::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        assert!(EcrRegistry::parse("1234.dkr.ecr.us-east-1.amazonaws.com").is_none());
        assert!(EcrRegistry::parse("public.ecr.aws").is_none());
    }

    /// Issue 13, item 2: the dual-stack hosts (and their FIPS forms) are the same registry, so
    /// a push to the repository deploys a service that pulls through them, pinned on that host.
    #[test]
    fn dual_stack_hosts_are_the_same_registry() {
        let p = push("web");
        for host in [
            "123456789012.dkr-ecr.us-east-1.on.aws",
            "123456789012.dkr-ecr-fips.us-east-1.on.aws",
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
        ] {
            let image = ImageRef::parse(&format!("{host}/web:latest")).unwrap();
            assert!(image.is_from(&p), "{host}");
            assert_eq!(
                image.pinned_to(&Digest::parse(D).unwrap()),
                format!("{host}/web@{D}")
            );
        }
        for host in [
            "123456789012.dkr-ecr.eu-west-1.on.aws", // another region
            "210987654321.dkr-ecr.us-east-1.on.aws", // another account
            "123456789012.dkr.ecr.us-east-1.on.aws", // IPv4 label on the dual-stack domain
            "123456789012.dkr-ecr.us-east-1.amazonaws.com", // dual-stack label on the IPv4 domain
            "123456789012.dkr-ecr.us-east-1.on.aws.evil.example",
            "123456789012.ecr.us-east-1.on.aws",
        ] {
            let image = ImageRef::parse(&format!("{host}/web:latest")).unwrap();
            assert!(!image.is_from(&p), "{host}");
        }
    }
}
