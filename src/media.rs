//! Not every push is a runnable image. A registry also holds signatures (Notation, cosign),
//! attestations (in-toto, SLSA provenance), SBOMs (SPDX, CycloneDX), Helm charts and other OCI
//! artifacts; deploying one would replace a container image with something ECS cannot run.
//! pushdeploy deploys only what it knows to be an image or an index of images, by the manifest
//! and config media types ECR reports, and skips cosign's tag convention for what it attaches.

/// Manifests of an image, or of an index (a multi-arch image list) of images.
const RUNNABLE_MANIFESTS: [&str; 6] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    // Docker's old schema 1, still pullable.
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The config media types of a container image. ECR reports it as `artifact-media-type`; an
/// artifact (signature, SBOM, attestation, chart) has a config of another type.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
];

/// Why a push is not a runnable image, if it is not. Missing media types (older events) are
/// taken as an image: the container check downstream still applies.
pub(crate) fn not_an_image(
    tag: &str,
    manifest_media_type: Option<&str>,
    artifact_media_type: Option<&str>,
) -> Option<String> {
    if let Some(kind) = cosign_attachment(tag) {
        return Some(format!(
            "tag {tag} is where cosign stores {kind} for an image, not an image to run"
        ));
    }
    if let Some(manifest) = manifest_media_type.filter(|m| !m.is_empty()) {
        if !RUNNABLE_MANIFESTS.contains(&manifest) {
            return Some(format!(
                "manifest media type {manifest} is {}, not a container image",
                describe(manifest)
            ));
        }
    }
    if let Some(config) = artifact_media_type.filter(|m| !m.is_empty()) {
        if !IMAGE_CONFIGS.contains(&config) {
            return Some(format!(
                "artifact media type {config} is {}, not a container image",
                describe(config)
            ));
        }
    }
    None
}

/// cosign's `sha256-<hex>.sig` / `.att` / `.sbom` tags.
fn cosign_attachment(tag: &str) -> Option<&'static str> {
    let (name, suffix) = tag.rsplit_once('.')?;
    let hex = name.strip_prefix("sha256-")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match suffix {
        "sig" => Some("a signature"),
        "att" => Some("an attestation"),
        "sbom" => Some("an SBOM"),
        _ => None,
    }
}

/// What a media type is, for the reason people read.
fn describe(media_type: &str) -> &'static str {
    let m = media_type.to_ascii_lowercase();
    if m.contains("signature")
        || m.contains("cosign")
        || m.contains("notary")
        || m.contains("sigstore")
    {
        "a signature"
    } else if m.contains("in-toto") || m.contains("attestation") || m.contains("provenance") {
        "an attestation"
    } else if m.contains("spdx") || m.contains("cyclonedx") || m.contains("sbom") {
        "an SBOM"
    } else if m.contains("helm") {
        "a Helm chart"
    } else {
        "an OCI artifact"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_indexes_pass_artifacts_do_not() {
        let image = Some("application/vnd.docker.container.image.v1+json");
        for (tag, manifest, config, expected) in [
            (
                "latest",
                Some("application/vnd.docker.distribution.manifest.v2+json"),
                image,
                None,
            ),
            (
                "v1",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.oci.image.config.v1+json"),
                None,
            ),
            (
                "v1",
                Some("application/vnd.oci.image.index.v1+json"),
                None,
                None,
            ),
            (
                "v1",
                Some("application/vnd.docker.distribution.manifest.list.v2+json"),
                None,
                None,
            ),
            ("v1", None, None, None),
            (
                "v1",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.cncf.notary.signature"),
                Some("a signature"),
            ),
            (
                "v1",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.in-toto+json"),
                Some("an attestation"),
            ),
            (
                "v1",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/spdx+json"),
                Some("an SBOM"),
            ),
            (
                "v1",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.cyclonedx+json"),
                Some("an SBOM"),
            ),
            (
                "1.0.0",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.cncf.helm.config.v1+json"),
                Some("a Helm chart"),
            ),
            (
                "v1",
                Some("application/vnd.oci.artifact.manifest.v1+json"),
                None,
                Some("an OCI artifact"),
            ),
            (
                "v1",
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.oci.empty.v1+json"),
                Some("an OCI artifact"),
            ),
            (
                &format!("sha256-{}.sig", "a".repeat(64)),
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some("application/vnd.oci.image.config.v1+json"),
                Some("a signature"),
            ),
            (
                &format!("sha256-{}.att", "b".repeat(64)),
                None,
                None,
                Some("an attestation"),
            ),
            (
                &format!("sha256-{}.sbom", "c".repeat(64)),
                None,
                None,
                Some("an SBOM"),
            ),
            ("sha256-short.sig", None, None, None),
        ] {
            let verdict = not_an_image(tag, manifest, config);
            match expected {
                None => assert_eq!(verdict, None, "{tag} {manifest:?} {config:?}"),
                Some(kind) => assert!(
                    verdict.as_deref().is_some_and(|v| v.contains(kind)),
                    "{tag} {manifest:?} {config:?}: {verdict:?}"
                ),
            }
        }
    }
}
