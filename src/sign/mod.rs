//! Signing an image manifest digest the way cosign does and containers/image verifies
//! (`sigstoreSigned` policies with `use-sigstore-attachments: true`).
//!
//! - the payload is cosign's "simple signing" JSON: `critical.identity.docker-reference` (the
//!   repository, no tag, as cosign writes it), `critical.image.docker-manifest-digest`,
//!   `critical.type` = `cosign container image signature`, `optional` = null;
//! - the signature is ECDSA P-256 over SHA-256 of the payload bytes, ASN.1 DER, base64 (std);
//! - it is stored as a manifest under cosign's tag `sha256-<hex>.sig`: one layer per signature,
//!   of type `application/vnd.dev.cosign.simplesigning.v1+json` holding the payload, with the
//!   signature in the annotation `dev.cosignproject.cosign/signature`. containers/image reads
//!   that tag, takes every layer and verifies it against the policy's key.
//!
//! The key is a PKCS#8 PEM file (`openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`), from `--sign-key FILE` or the `STEVEDORE_SIGN_KEY` variable
//! holding the PEM. Its bytes live only in [`SigningKey`] (zeroised on drop by
//! rustls-pki-types, never printed: `Debug` shows the public key's fingerprint only), and no
//! error carries them. ring signs; rustls-pki-types reads the PEM (both already in the tree for
//! TLS), so no hand-written crypto or PEM parsing.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use crate::attach::Artifact;
use crate::digest::Digest;
use crate::oci::{self, Descriptor, Manifest, MediaType, names};

/// The annotation holding the base64 signature of a simple-signing layer.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The environment variable that may hold the key's PEM text.
pub const KEY_ENV: &str = "STEVEDORE_SIGN_KEY";

/// Why a key could not be used. Never holds any of the key's bytes.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing key from {from}: {why}")]
    Key { from: String, why: String },
    #[error("signing failed (the system random source is unavailable)")]
    Sign,
}

impl crate::Classify for SignError {
    fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Input
    }
}

/// An ECDSA P-256 private key. `Debug` shows only where it came from and its public key's
/// fingerprint.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    from: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}, public {})",
            self.from,
            Digest::of(self.pair.public_key().as_ref()).short()
        )
    }
}

impl SigningKey {
    /// The key in `path`, else the PEM in `STEVEDORE_SIGN_KEY` (read by the caller and passed
    /// as `env_pem`), else none.
    pub fn load(
        path: Option<&Path>,
        env_pem: Option<&str>,
    ) -> Result<Option<SigningKey>, SignError> {
        match (path, env_pem) {
            (Some(p), _) => {
                let pem = std::fs::read(p).map_err(|source| SignError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Self::from_pem(&pem, &p.display().to_string()).map(Some)
            }
            (None, Some(pem)) if !pem.trim().is_empty() => {
                Self::from_pem(pem.as_bytes(), &format!("${KEY_ENV}")).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Reads a PKCS#8 PEM P-256 key; `from` names the source in errors.
    pub fn from_pem(pem: &[u8], from: &str) -> Result<SigningKey, SignError> {
        let bad = |why: &str| SignError::Key {
            from: from.to_owned(),
            why: why.to_owned(),
        };
        let label = |l: &str| pem.windows(l.len()).any(|w| w == l.as_bytes());
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| {
            if label("EC PRIVATE KEY") {
                bad("a SEC1 (`EC PRIVATE KEY`) key; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`")
            } else if label("ENCRYPTED") {
                bad("an encrypted key (cosign's own keys are); give an unencrypted PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)")
            } else {
                bad("no `PRIVATE KEY` PEM block (PKCS#8) found")
            }
        })?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|_| {
            bad("not an ECDSA P-256 key (cosign and containers/image verify P-256 with SHA-256)")
        })?;
        Ok(SigningKey {
            pair,
            from: from.to_owned(),
        })
    }

    /// The public key as an uncompressed point (for verifying our own signatures).
    fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The base64 ASN.1 signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> Result<String, SignError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), payload)
            .map_err(|_| SignError::Sign)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig.as_ref()))
    }

    /// Whether `signature` (base64) is this key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.public_key())
            .verify(payload, &sig)
            .is_ok()
    }
}

/// cosign's simple-signing payload for `digest` in `repository` (`host[:port]/path`, no tag).
/// Written by hand in cosign's field order; the bytes are what is signed.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest.to_string() },
            "type": "cosign container image signature",
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

/// The signature manifest for `subject` in `repository`, keeping the layers of `existing` (the
/// manifest now under `sha256-<hex>.sig`, with `existing_layers` its layer bytes): other keys'
/// signatures stay. When `existing` already holds a signature of this payload by this key,
/// that layer is kept and none is added, so pushing the same image again changes nothing.
/// Returns the artifact to push under the `.sig` tag; it also names `subject` (an OCI 1.1
/// referrer), which containers/image ignores.
pub fn signature_artifact(
    key: &SigningKey,
    repository: &str,
    subject: &Descriptor,
    existing: Option<(Manifest, Digest, Vec<Vec<u8>>)>,
) -> Result<Artifact, SignError> {
    let payload = payload(repository, &subject.digest);
    let payload_digest = Digest::of(&payload);
    let (mut layers, mut bytes, replaces) = match existing {
        Some((m, digest, blobs)) => (m.layers, blobs, Some(digest)),
        None => (Vec::new(), Vec::new(), None),
    };
    let already = layers.iter().any(|l| {
        l.digest == payload_digest
            && l.annotations
                .get(SIGNATURE_ANNOTATION)
                .is_some_and(|s| key.verifies(&payload, s))
    });
    if !already {
        let mut layer = Descriptor::new(
            MediaType::from_static(names::COSIGN_SIMPLESIGNING),
            payload_digest,
            payload.len() as u64,
        );
        layer
            .annotations
            .insert(SIGNATURE_ANNOTATION.to_owned(), key.sign(&payload)?);
        layers.push(layer);
        bytes.push(payload);
    }
    let mut manifest = Manifest::new(MediaType::OCI_MANIFEST, Descriptor::empty_json(), layers);
    manifest.artifact_type = Some(MediaType::from_static(names::COSIGN_SIGNATURE_ARTIFACT));
    manifest.subject = Some(subject.clone());
    let mut artifact = Artifact::from_manifest(manifest, bytes);
    artifact.tags = vec![oci::signature_tag(&subject.digest)];
    artifact.replaces = replaces.filter(|r| *r != artifact.digest());
    Ok(artifact)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 PKCS#8 key made for these tests only (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`).
    fn test_key() -> SigningKey {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        SigningKey::from_pem(pem.as_bytes(), "test").unwrap()
    }

    #[test]
    fn the_payload_is_cosigns() {
        let d = Digest::of(b"m");
        let p = String::from_utf8(payload("127.0.0.1:5000/app", &d)).unwrap();
        assert_eq!(
            p,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
    }

    #[test]
    fn signatures_verify_and_a_second_signing_adds_nothing() {
        let key = test_key();
        let subject = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"image"), 5);
        let first = signature_artifact(&key, "r/app", &subject, None).unwrap();
        let layer = &first.manifest.layers[0];
        let sig = &layer.annotations[SIGNATURE_ANNOTATION];
        assert!(key.verifies(&first.blobs[1], sig));
        assert!(!key.verifies(b"other", sig));
        assert_eq!(first.tags, vec![oci::signature_tag(&subject.digest)]);
        let again = signature_artifact(
            &key,
            "r/app",
            &subject,
            Some((
                first.manifest.clone(),
                first.digest(),
                vec![first.blobs[1].clone()],
            )),
        )
        .unwrap();
        assert_eq!(again.digest(), first.digest());
        assert_eq!(again.replaces, None);
        let other = test_key();
        let both = signature_artifact(
            &other,
            "r/app",
            &subject,
            Some((
                first.manifest.clone(),
                first.digest(),
                vec![first.blobs[1].clone()],
            )),
        )
        .unwrap();
        assert_eq!(both.manifest.layers.len(), 2);
        assert_eq!(both.replaces, Some(first.digest()));
    }

    #[test]
    fn key_errors_never_show_the_key() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nSECRETSECRET\n-----END EC PRIVATE KEY-----\n";
        let e = SigningKey::from_pem(pem.as_bytes(), "k.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SEC1") && !e.contains("SECRETSECRET"), "{e}");
        let e = SigningKey::from_pem(b"garbage SECRET", "k.pem")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(!format!("{:?}", test_key()).contains("PRIVATE"));
    }
}
