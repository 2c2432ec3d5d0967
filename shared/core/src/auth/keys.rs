//! The key material of one deployment, in one directory of private files (mode 0600):
//!
//! - `<role>.nk`: each identity's nkey seed (`admin.nk`, `gateway.nk`, `audit-writer.nk`,
//!   `kill-broker.nk`, `scheduler.nk`, `executor-<guid>.nk`): the file a service names in
//!   `nats_credentials`. The same format as the `nats` CLI's `--nkey` file.
//! - `callout-issuer.nk`: the account key the gateway signs the users of direct clients with.
//! - `dispatch-signing.nk`: the key the gateway signs every dispatched job with; executors
//!   trust its public key.
//!
//! Nothing here prints a seed; [`KeyDir::public`] gives the public half.

use super::roles::Role;
use crate::error::{Error, Result};
use nkeys::KeyPair;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File of the account key that signs direct clients' users.
pub const CALLOUT_ISSUER: &str = "callout-issuer.nk";
/// File of the key that signs dispatch messages.
pub const DISPATCH_SIGNING: &str = "dispatch-signing.nk";
/// Its public half, readable by anyone (executors trust it).
pub const DISPATCH_SIGNING_PUBLIC: &str = "dispatch-signing.pub";

fn key_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Keys {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads an nkey seed file (one line `S…`; comment lines and the `nats` CLI's framing are
/// skipped). Refuses a file other users may read.
pub fn read_seed(path: &Path) -> Result<KeyPair> {
    let meta = std::fs::metadata(path).map_err(|e| key_err(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_err(
            path,
            format!(
                "is readable by other users (mode {:o}); run chmod 600 on it",
                meta.permissions().mode() & 0o777
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| key_err(path, e))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('S') && l.len() > 50 && !l.contains(' '))
        .ok_or_else(|| key_err(path, "holds no nkey seed (a line starting with S)"))?;
    KeyPair::from_seed(seed).map_err(|e| key_err(path, format!("is not a valid nkey seed: {e}")))
}

/// Writes `kp`'s seed to `path`, readable by its owner only. Never overwrites.
fn write_seed(path: &Path, kp: &KeyPair) -> Result<()> {
    let seed = kp.seed().map_err(|e| key_err(path, e))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| key_err(path, e))?;
    writeln!(f, "{seed}").map_err(|e| key_err(path, e))?;
    f.sync_all().map_err(|e| key_err(path, e))
}

/// A directory of key files.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// Opens `dir`, creating it (mode 0700) when missing.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| key_err(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| key_err(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seed file of `role`.
    pub fn path(&self, role: &Role) -> PathBuf {
        self.dir.join(format!("{}.nk", role.name()))
    }

    /// The seed file of the callout issuer.
    pub fn issuer_path(&self) -> PathBuf {
        self.dir.join(CALLOUT_ISSUER)
    }

    /// The seed file of the dispatch signing key.
    pub fn signing_path(&self) -> PathBuf {
        self.dir.join(DISPATCH_SIGNING)
    }

    /// Makes every missing key of `roles`, the issuer and the signing key; keeps those that
    /// exist (a second run changes nothing).
    pub fn ensure(&self, roles: &[Role]) -> Result<()> {
        for role in roles {
            let path = self.path(role);
            if !path.exists() {
                write_seed(&path, &KeyPair::new_user())?;
            }
        }
        if !self.issuer_path().exists() {
            write_seed(&self.issuer_path(), &KeyPair::new_account())?;
        }
        if !self.signing_path().exists() {
            write_seed(&self.signing_path(), &KeyPair::new_user())?;
        }
        // The public half, for executors (`[executor] dispatch_trusted_keys_file`).
        let public = self.dir.join(DISPATCH_SIGNING_PUBLIC);
        std::fs::write(
            &public,
            format!(
                "# The gateway's dispatch signing key (public): executors trust it.\n{}\n",
                self.signing_public()?
            ),
        )
        .map_err(|e| key_err(&public, e))
    }

    /// The public key of `role`.
    pub fn public(&self, role: &Role) -> Result<String> {
        Ok(read_seed(&self.path(role))?.public_key())
    }

    /// The public key of the callout issuer (an account key, `A…`).
    pub fn issuer_public(&self) -> Result<String> {
        Ok(read_seed(&self.issuer_path())?.public_key())
    }

    /// The public key executors trust for dispatch signatures.
    pub fn signing_public(&self) -> Result<String> {
        Ok(read_seed(&self.signing_path())?.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_made_once_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let kd = KeyDir::open(&tmp.path().join("keys")).unwrap();
        let roles = [Role::Admin, Role::Gateway];
        kd.ensure(&roles).unwrap();
        let first = kd.public(&Role::Gateway).unwrap();
        assert!(first.starts_with('U'));
        assert!(kd.issuer_public().unwrap().starts_with('A'));
        kd.ensure(&roles).unwrap();
        assert_eq!(kd.public(&Role::Gateway).unwrap(), first);
        let mode = std::fs::metadata(kd.path(&Role::Gateway))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(
            kd.path(&Role::Admin),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = read_seed(&kd.path(&Role::Admin)).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
