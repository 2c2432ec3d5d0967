//! Signed dispatch: a gateway signs every dispatch message it publishes, and an executor runs
//! only messages signed by a key it trusts. So a NATS identity that may publish on a dispatch
//! subject still cannot make an executor run anything.
//!
//! The signature is ed25519 (an nkey user key pair, `SU...` seed, `U...` public key) over the
//! exact bytes of the message payload (the encoded [`crate::wire::JobSpec`]), carried in the
//! [`HDR_SIGNER`] (the public key) and [`HDR_SIGNATURE`] (base64url, no padding) headers.
//!
//! This module never decides what happens to a refused message: the executor does (the job
//! ends `failed` with a `rejected` event saying why). It never logs or shows a seed.

use crate::error::{Error, Result};
use crate::names::{HDR_SIGNATURE, HDR_SIGNER};
use async_nats::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::{KeyPair, KeyPairType};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The private key a gateway signs dispatch messages with. Its `Debug` shows only the public
/// key.
pub struct DispatchSigner {
    key: KeyPair,
}

impl std::fmt::Debug for DispatchSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchSigner")
            .field("public_key", &self.key.public_key())
            .finish()
    }
}

impl DispatchSigner {
    /// A new random user key pair.
    pub fn generate() -> Self {
        Self {
            key: KeyPair::new_user(),
        }
    }

    /// From an nkey user seed (`SU...`).
    pub fn from_seed(seed: &str) -> Result<Self> {
        let key = KeyPair::from_seed(seed.trim()).map_err(|e| {
            Error::Config(format!(
                "the dispatch signing key is not an nkey seed ({e}); it is one line starting with SU"
            ))
        })?;
        if key.key_pair_type() != KeyPairType::User {
            return Err(Error::Config(
                "the dispatch signing key must be a user nkey seed (starting with SU)".into(),
            ));
        }
        Ok(Self { key })
    }

    /// From a file holding one seed line, readable by its owner only (mode 0600): a seed others
    /// can read could sign any job.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bad =
            |why: String| Error::Config(format!("dispatch signing key {}: {why}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| {
            bad(format!(
                "cannot read it ({e}); point [gateway] dispatch_signing_key at a file holding one nkey seed (SU...)"
            ))
        })?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "its mode is {:o}; others must not read it: chmod 600 it",
                mode & 0o777
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        Self::from_seed(&text).map_err(|e| bad(e.to_string()))
    }

    /// The key in `path` when the file exists, else a new one written there (mode 0600), for a
    /// deployment that makes its own (`taskwire up`, the test stack).
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::from_file(path);
        }
        let signer = Self::generate();
        signer.write_seed(path)?;
        Ok(signer)
    }

    /// Writes the seed to a new file `path`, mode 0600 (never over an existing file).
    pub fn write_seed(&self, path: &Path) -> Result<()> {
        let fail = |e: std::io::Error| {
            Error::Config(format!(
                "cannot write the dispatch signing key to {}: {e}",
                path.display()
            ))
        };
        let seed = self
            .key
            .seed()
            .map_err(|e| Error::Config(format!("the dispatch signing key has no seed: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        f.write_all(format!("{seed}\n").as_bytes()).map_err(fail)
    }

    /// The public key (`U...`) executors list in `dispatch_trusted_keys`.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// The signature of `payload`, base64url without padding.
    pub fn sign(&self, payload: &[u8]) -> Result<String> {
        let sig = self
            .key
            .sign(payload)
            .map_err(|e| Error::Config(format!("the dispatch signing key cannot sign: {e}")))?;
        Ok(URL_SAFE_NO_PAD.encode(sig))
    }

    /// Adds the signer and signature headers of `payload` to `headers`.
    pub fn sign_into(&self, headers: &mut HeaderMap, payload: &[u8]) -> Result<()> {
        let sig = self.sign(payload)?;
        headers.insert(HDR_SIGNER, self.public_key().as_str());
        headers.insert(HDR_SIGNATURE, sig.as_str());
        Ok(())
    }
}

/// Why a dispatch message is not taken as signed by a trusted gateway. The `Display` text is
/// the reason of the job's `rejected` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    /// No signer or no signature header.
    Unsigned,
    /// Signed by a key that is not in the trusted set.
    Untrusted(String),
    /// Signed by a trusted key, but the signature does not match the payload (it was changed
    /// after signing, or the signature is not that key's).
    BadSignature(String),
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unverified::Unsigned => write!(
                f,
                "unsigned dispatch message (no {HDR_SIGNER}/{HDR_SIGNATURE} headers): this executor runs only jobs a trusted gateway signed"
            ),
            Unverified::Untrusted(key) => write!(
                f,
                "dispatch message signed by an untrusted key {key}: if that is a gateway's key, add it to [executor] dispatch_trusted_keys"
            ),
            Unverified::BadSignature(key) => write!(
                f,
                "bad signature on the dispatch message (signer {key}): the job spec was changed after signing, or the signature is forged"
            ),
        }
    }
}

/// The gateway public keys an executor trusts.
#[derive(Debug, Clone, Default)]
pub struct DispatchVerifier {
    trusted: BTreeSet<String>,
}

impl DispatchVerifier {
    /// From user public keys (`U...`); anything else is a configuration error.
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut trusted = BTreeSet::new();
        for k in keys {
            let k = k.as_ref().trim();
            match KeyPair::from_public_key(k) {
                Ok(kp) if kp.key_pair_type() == KeyPairType::User => {
                    trusted.insert(k.to_string());
                }
                _ => {
                    return Err(Error::Config(format!(
                        "dispatch_trusted_keys: '{k}' is not a user public nkey (U... , 56 characters); list the gateway's public key, never its seed"
                    )));
                }
            }
        }
        Ok(Self { trusted })
    }

    /// No key is trusted.
    pub fn is_empty(&self) -> bool {
        self.trusted.is_empty()
    }

    /// Checks that `payload` is signed, by a trusted key, and that the signature matches it.
    /// Returns the signer's public key.
    pub fn verify(
        &self,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> std::result::Result<String, Unverified> {
        let header = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (Some(signer), Some(signature)) = (header(HDR_SIGNER), header(HDR_SIGNATURE)) else {
            return Err(Unverified::Unsigned);
        };
        if !self.trusted.contains(&signer) {
            return Err(Unverified::Untrusted(signer));
        }
        let bad = || Unverified::BadSignature(signer.clone());
        let sig = URL_SAFE_NO_PAD
            .decode(signature.as_bytes())
            .map_err(|_| bad())?;
        let key = KeyPair::from_public_key(&signer).map_err(|_| bad())?;
        key.verify(payload, &sig).map_err(|_| bad())?;
        Ok(signer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(signer: &DispatchSigner, payload: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        signer.sign_into(&mut h, payload).unwrap();
        h
    }

    #[test]
    fn a_trusted_signature_verifies_and_nothing_else_does() {
        let gw = DispatchSigner::generate();
        let other = DispatchSigner::generate();
        let v = DispatchVerifier::new([gw.public_key()]).unwrap();
        let payload = br#"{"job_id":"x","command":"hello"}"#;

        assert_eq!(
            v.verify(Some(&signed(&gw, payload)), payload),
            Ok(gw.public_key())
        );
        assert_eq!(v.verify(None, payload), Err(Unverified::Unsigned));
        assert_eq!(
            v.verify(Some(&HeaderMap::new()), payload),
            Err(Unverified::Unsigned)
        );
        assert_eq!(
            v.verify(Some(&signed(&other, payload)), payload),
            Err(Unverified::Untrusted(other.public_key()))
        );
        // One byte changed after signing.
        let mut changed = payload.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            v.verify(Some(&signed(&gw, payload)), &changed),
            Err(Unverified::BadSignature(gw.public_key()))
        );
        // Another key's signature under the trusted key's name.
        let mut h = signed(&other, payload);
        h.insert(HDR_SIGNER, gw.public_key().as_str());
        assert!(matches!(
            v.verify(Some(&h), payload),
            Err(Unverified::BadSignature(_))
        ));
        // Not base64url.
        let mut h = signed(&gw, payload);
        h.insert(HDR_SIGNATURE, "not base64!");
        assert!(matches!(
            v.verify(Some(&h), payload),
            Err(Unverified::BadSignature(_))
        ));

        assert!(Unverified::Unsigned.to_string().starts_with("unsigned"));
        assert!(
            Unverified::Untrusted(other.public_key())
                .to_string()
                .contains(&format!("untrusted key {}", other.public_key()))
        );
        assert!(
            Unverified::BadSignature(gw.public_key())
                .to_string()
                .starts_with("bad signature")
        );
    }

    #[test]
    fn keys_are_checked_where_they_are_configured() {
        let gw = DispatchSigner::generate();
        let seed = gw.key.seed().unwrap();
        assert!(seed.starts_with("SU"));
        assert_eq!(
            DispatchSigner::from_seed(&seed).unwrap().public_key(),
            gw.public_key()
        );
        assert!(!format!("{gw:?}").contains(&seed), "Debug shows no seed");
        assert!(DispatchSigner::from_seed("nonsense").is_err());
        // A public key is not a seed, and a seed is not a trusted key.
        assert!(DispatchSigner::from_seed(&gw.public_key()).is_err());
        let e = DispatchVerifier::new([seed.as_str()]).unwrap_err();
        assert!(e.to_string().contains("never its seed"), "{e}");
        assert!(
            DispatchVerifier::new(Vec::<String>::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_seed_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dispatch.seed");
        let made = DispatchSigner::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = DispatchSigner::load_or_create(&path).unwrap();
        assert_eq!(
            made.public_key(),
            again.public_key(),
            "loaded, not replaced"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = DispatchSigner::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let e = DispatchSigner::from_file(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dispatch_signing_key"), "{e}");
    }
}
