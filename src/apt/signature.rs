//! OpenPGP trust for a mirror: load an archive keyring, verify an `InRelease`.
//!
//! rPGP does the cryptography; the key policy is ours because rPGP's `verify_bindings` is not
//! usable on real archive keyrings (shared/research/crates.md):
//! - Debian's keyring carries third-party certifications, which `verify_bindings` treats as
//!   self-signatures and rejects. We check only self-signatures.
//! - Ubuntu's keyring is a GnuPG 1.x pubring with Trust packets that derail rPGP's key parser. We
//!   drop `Packet::Trust` before assembling keys.
//! - Revocation and expiry are not checked by rPGP. We reject a signature made by a revoked key or
//!   subkey, by one that had expired when the signature was made, by one that has expired by the
//!   time of checking (gpgv's EXPKEYSIG, which apt refuses: an old InRelease signed before the
//!   key's end could otherwise be replayed for ever), and a signature past its own expiration
//!   time (EXPSIG).
//! - Data signatures over SHA-1 (or weaker) are rejected, as apt does since 2.x. Old key binding
//!   signatures over SHA-1 are accepted: they only tie the key to its own uid.

use std::fmt;
use std::io::Read;
use std::path::Path;

use pgp::composed::{CleartextSignedMessage, SignedPublicKey, SignedPublicKeyParser};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Packet, PacketParser, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read keyring {path}: {source}")]
    KeyringIo {
        path: String,
        source: std::io::Error,
    },
    #[error("keyring {path} holds no usable OpenPGP public key{detail}")]
    EmptyKeyring { path: String, detail: String },
    #[error(
        "{url} is not signed (no cleartext OpenPGP signature): {detail}. Use the mirror's InRelease, or set allow-unsigned only for a local test repository"
    )]
    NotSigned { url: String, detail: String },
    #[error(
        "{url}: no good signature from the keyring {keyring}: {}. Check that the keyring matches the distribution (e.g. keyrings/debian-archive-keyring.gpg for Debian)",
        .reasons.join("; ")
    )]
    NoGoodSignature {
        url: String,
        keyring: String,
        reasons: Vec<String>,
    },
}

/// A public key or subkey that may sign archive metadata.
#[derive(Clone)]
struct SigningKey {
    key: KeyVariant,
    fingerprint: String,
    key_id: String,
    /// Created, seconds since the epoch.
    created: u32,
    /// Expires (seconds since the epoch), from the newest valid self-signature.
    expires: Option<u64>,
    revoked: bool,
    /// The owning primary key's user id, for messages.
    owner: String,
}

#[derive(Clone)]
enum KeyVariant {
    Primary(pgp::packet::PublicKey),
    Subkey(pgp::packet::PublicSubkey),
}

/// The keys of one keyring file, with the policy facts computed once at load time.
pub struct Keyring {
    name: String,
    keys: Vec<SigningKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("name", &self.name)
            .field("keys", &self.fingerprints())
            .finish()
    }
}

/// A Release text whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signed text (dash-unescaped, `\n` line ends): the only text to parse.
    pub text: String,
    /// `fingerprint (uid)` of each key that made a good signature.
    pub signers: Vec<String>,
}

impl Keyring {
    /// Loads a binary (`.gpg`) or ASCII-armored (`.asc`) keyring.
    pub fn load(path: &Path) -> Result<Keyring, SignatureError> {
        let bytes = std::fs::read(path).map_err(|source| SignatureError::KeyringIo {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// `name` identifies the keyring in messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Keyring, SignatureError> {
        let binary = if bytes.starts_with(b"-----BEGIN PGP") || bytes.starts_with(b"\n-----BEGIN") {
            dearmor_all(bytes).map_err(|detail| SignatureError::EmptyKeyring {
                path: name.to_owned(),
                detail: format!(": {detail}"),
            })?
        } else {
            bytes.to_vec()
        };
        // GnuPG 1.x keyrings interleave Trust packets, which rPGP's key parser does not expect.
        let packets = PacketParser::new(&binary[..])
            .filter(|p| !matches!(p, Ok(Packet::Trust(_))))
            .peekable();
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        for parsed in SignedPublicKeyParser::from_packets(packets) {
            match parsed {
                Ok(key) => keys.extend(signing_keys(&key)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if keys.is_empty() {
            return Err(SignatureError::EmptyKeyring {
                path: name.to_owned(),
                detail: if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors.join("; "))
                },
            });
        }
        Ok(Keyring {
            name: name.to_owned(),
            keys,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Upper-case hex fingerprints of every key and subkey, for messages and tests.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.fingerprint.clone()).collect()
    }
}

fn dearmor_all(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest: &str = &text;
    while let Some(start) = rest.find("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        let block = &rest[start..];
        let end_marker = "-----END PGP PUBLIC KEY BLOCK-----";
        let end = block
            .find(end_marker)
            .ok_or("armored block without END line")?
            + end_marker.len();
        let mut dearmor = pgp::armor::Dearmor::new(&block.as_bytes()[..end]);
        dearmor
            .read_to_end(&mut out)
            .map_err(|e| format!("bad armor: {e}"))?;
        rest = &block[end..];
    }
    if out.is_empty() {
        return Err("no PUBLIC KEY BLOCK".into());
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Whether `sig` claims to be issued by `key` (by fingerprint or key id). Signatures naming no
/// issuer at all are tried too.
fn issued_by(sig: &Signature, fingerprint: &[u8], key_id: &[u8]) -> bool {
    let fps = sig.issuer_fingerprint();
    let ids = sig.issuer_key_id();
    if fps.is_empty() && ids.is_empty() {
        return true;
    }
    fps.iter().any(|f| f.as_bytes() == fingerprint) || ids.iter().any(|i| i.as_ref() == key_id)
}

/// The primary key and subkeys of `key`, with revocation and expiry decided from
/// self-signatures only. A key with no valid self-signature on any user id is dropped.
fn signing_keys(key: &SignedPublicKey) -> Vec<SigningKey> {
    let primary = &key.primary_key;
    let pfp = primary.fingerprint();
    let pid = primary.legacy_key_id();
    let (pfp_bytes, pid_bytes) = (pfp.as_bytes().to_vec(), pid.as_ref().to_vec());
    let created = primary.created_at().as_secs();

    let revoked = key.details.revocation_signatures.iter().any(|sig| {
        issued_by(sig, &pfp_bytes, &pid_bytes)
            && sig.typ() == Some(SignatureType::KeyRevocation)
            && sig.verify_key(primary).is_ok()
    });

    // Newest valid self-certification decides expiry (RFC 9580 §5.2.3.18), whether the
    // primary may sign data, and the name.
    let mut newest: Option<(u32, Option<u64>, String, bool)> = None;
    for user in &key.details.users {
        for sig in &user.signatures {
            if !issued_by(sig, &pfp_bytes, &pid_bytes)
                || sig.typ() == Some(SignatureType::CertRevocation)
                || sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_err()
            {
                continue;
            }
            let at = sig.created().map(|t| t.as_secs()).unwrap_or(0);
            let expires = sig
                .key_expiration_time()
                .filter(|d| d.as_secs() != 0)
                .map(|d| u64::from(created) + u64::from(d.as_secs()));
            if newest.as_ref().is_none_or(|(t, _, _, _)| at >= *t) {
                let uid = String::from_utf8_lossy(user.id.id()).into_owned();
                // Old keys carry no key-flags subpacket (all flags read as unset): they may sign.
                let flags = sig.key_flags();
                let can_sign = flags.sign() || flags == Default::default();
                newest = Some((at, expires, uid, can_sign));
            }
        }
    }
    let Some((_, expires, owner, primary_signs)) = newest else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if primary_signs {
        out.push(SigningKey {
            key: KeyVariant::Primary(primary.clone()),
            fingerprint: hex(&pfp_bytes),
            key_id: hex(&pid_bytes),
            created,
            expires,
            revoked,
            owner: owner.clone(),
        });
    }

    for sub in &key.public_subkeys {
        let mut binding: Option<(u32, Option<u64>, bool)> = None;
        let mut sub_revoked = false;
        let sub_created = sub.key.created_at().as_secs();
        for sig in &sub.signatures {
            if !issued_by(sig, &pfp_bytes, &pid_bytes)
                || sig.verify_subkey_binding(primary, &sub.key).is_err()
            {
                continue;
            }
            match sig.typ() {
                Some(SignatureType::SubkeyRevocation) => sub_revoked = true,
                Some(SignatureType::SubkeyBinding) => {
                    let flags = sig.key_flags();
                    // A signing subkey must prove it consents to the binding (back-signature),
                    // or anyone could attach someone else's key as a "subkey".
                    let can_sign = flags.sign()
                        && sig.embedded_signature().is_some_and(|b| {
                            b.verify_primary_key_binding(&sub.key, primary).is_ok()
                        });
                    let at = sig.created().map(|t| t.as_secs()).unwrap_or(0);
                    let expires = sig
                        .key_expiration_time()
                        .filter(|d| d.as_secs() != 0)
                        .map(|d| u64::from(sub_created) + u64::from(d.as_secs()));
                    if binding.as_ref().is_none_or(|(t, _, _)| at >= *t) {
                        binding = Some((at, expires, can_sign));
                    }
                }
                _ => {}
            }
        }
        let Some((_, sub_expires, can_sign)) = binding else {
            continue;
        };
        if !can_sign {
            continue;
        }
        let fp = sub.key.fingerprint();
        out.push(SigningKey {
            key: KeyVariant::Subkey(sub.key.clone()),
            fingerprint: hex(fp.as_bytes()),
            key_id: hex(sub.key.legacy_key_id().as_ref()),
            created: sub_created,
            // A subkey is dead once its primary is, whatever its own binding says.
            expires: match (sub_expires, expires) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            revoked: sub_revoked || revoked,
            owner: owner.clone(),
        });
    }
    out
}

/// [`verify_inrelease_at`] now.
pub fn verify_inrelease(
    keyring: &Keyring,
    text: &str,
    url: &str,
) -> Result<Verified, SignatureError> {
    verify_inrelease_at(keyring, text, url, std::time::SystemTime::now())
}

/// Verifies a cleartext-signed InRelease against `keyring`: at least one signature must be good,
/// from a key in the keyring that is not revoked, was not expired when it signed and is not
/// expired at `now`, over a hash stronger than SHA-1, and not past its own expiration time.
/// Returns the signed text.
pub fn verify_inrelease_at(
    keyring: &Keyring,
    text: &str,
    url: &str,
    now: std::time::SystemTime,
) -> Result<Verified, SignatureError> {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (message, _headers) =
        CleartextSignedMessage::from_string(text).map_err(|e| SignatureError::NotSigned {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
    if message.signatures().is_empty() {
        return Err(SignatureError::NotSigned {
            url: url.to_owned(),
            detail: "the signature block holds no signature".into(),
        });
    }
    let signed_text = message.signed_text();
    let mut reasons = Vec::new();
    let mut signers = Vec::new();
    for sig in message.signatures() {
        let issuer = sig
            .issuer_fingerprint()
            .first()
            .map(|f| hex(f.as_bytes()))
            .or_else(|| sig.issuer_key_id().first().map(|k| hex(k.as_ref())))
            .unwrap_or_else(|| "(no issuer)".into());
        let candidates: Vec<&SigningKey> = keyring
            .keys
            .iter()
            .filter(|k| {
                let fps = sig.issuer_fingerprint();
                let ids = sig.issuer_key_id();
                fps.iter().any(|f| hex(f.as_bytes()) == k.fingerprint)
                    || ids.iter().any(|i| hex(i.as_ref()) == k.key_id)
            })
            .collect();
        if candidates.is_empty() {
            reasons.push(format!("signature by unknown key {issuer}"));
            continue;
        }
        if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
            reasons.push(format!(
                "signature by {issuer} is a {:?} signature, not a document signature",
                sig.typ()
            ));
            continue;
        }
        match sig.hash_alg() {
            Some(HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160) | None => {
                reasons.push(format!(
                    "signature by {issuer} uses the weak hash {} (refused)",
                    sig.hash_alg()
                        .map(|h| h.to_string())
                        .unwrap_or("unknown".into())
                ));
                continue;
            }
            _ => {}
        }
        for key in candidates {
            let result = match &key.key {
                KeyVariant::Primary(k) => sig.verify(k, signed_text.as_bytes()),
                KeyVariant::Subkey(k) => sig.verify(k, signed_text.as_bytes()),
            };
            if let Err(e) = result {
                reasons.push(format!(
                    "BAD signature by {} ({}): {e} — the file was altered or corrupted",
                    key.fingerprint, key.owner
                ));
                continue;
            }
            if let Some(reason) = key_policy_refusal(key, sig, now) {
                reasons.push(reason);
                continue;
            }
            signers.push(format!("{} ({})", key.fingerprint, key.owner));
        }
    }
    if signers.is_empty() {
        return Err(SignatureError::NoGoodSignature {
            url: url.to_owned(),
            keyring: keyring.name.clone(),
            reasons,
        });
    }
    Ok(Verified {
        text: signed_text.replace("\r\n", "\n"),
        signers,
    })
}

/// Why a cryptographically good signature by `key` is still refused, if it is: the key is
/// revoked, or expired (when it signed, or by `now`, seconds since the epoch), or the signature
/// predates the key or is past its own expiration time.
fn key_policy_refusal(key: &SigningKey, sig: &Signature, now: u64) -> Option<String> {
    use super::release::format_utc;
    let signed_at = sig.created().map_or(0, |t| u64::from(t.as_secs()));
    let who = format!("{} ({})", key.fingerprint, key.owner);
    if key.revoked {
        return Some(format!("signature by {who}, but that key is revoked"));
    }
    if let Some(expires) = key.expires {
        if signed_at > expires {
            return Some(format!(
                "signature by {who} made {}, after the key expired on {}",
                format_utc(signed_at),
                format_utc(expires)
            ));
        }
        if now > expires {
            return Some(format!(
                "signature by {who} made {}, but the key expired on {} (refused, as apt does); update the keyring, or use a mirror signed with a current key",
                format_utc(signed_at),
                format_utc(expires)
            ));
        }
    }
    if signed_at < u64::from(key.created) {
        return Some(format!(
            "signature by {} predates the key itself",
            key.fingerprint
        ));
    }
    let sig_expires = sig
        .signature_expiration_time()
        .filter(|d| d.as_secs() != 0)
        .map(|d| signed_at + u64::from(d.as_secs()));
    if let Some(expires) = sig_expires
        && now > expires
    {
        return Some(format!(
            "signature by {who} made {} expired on {} (refused, as apt does)",
            format_utc(signed_at),
            format_utc(expires)
        ));
    }
    None
}
