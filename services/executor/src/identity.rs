//! The instance's persistent identity: a GUID created once in the state dir and reused on
//! every restart, never re-tagged. Kill requests are routed by this GUID, so a changed GUID
//! would strand the jobs an instance runs.

use crate::error::{ExecutorError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// File name of the GUID inside the state dir.
pub const GUID_FILE: &str = "instance.guid";

/// Where the GUID of an executor using `state_dir` lives.
pub fn guid_path(state_dir: &Path) -> PathBuf {
    state_dir.join(GUID_FILE)
}

/// Reads the GUID, creating it on first start. A file that exists but does not hold a GUID is
/// an error, never silently replaced.
pub fn load_or_create(state_dir: &Path) -> Result<Uuid> {
    load_or_create_as(state_dir, None)
}

/// [`load_or_create`], creating it as `wanted` when given (`[executor] guid`: the GUID its
/// NATS key was made for by `taskwire nats init`). A state dir that already holds another
/// GUID is an error: the key would not fit it.
pub fn load_or_create_as(state_dir: &Path, wanted: Option<Uuid>) -> Result<Uuid> {
    let found = load_or_make(state_dir, wanted)?;
    match wanted {
        Some(w) if w != found => Err(ExecutorError::Identity {
            path: guid_path(state_dir),
            message: format!(
                "holds instance GUID {found}, but [executor] guid is {w} (the GUID its NATS key is bound to); use a fresh state dir or set guid to {found} with a key made for it"
            ),
        }),
        _ => Ok(found),
    }
}

fn load_or_make(state_dir: &Path, wanted: Option<Uuid>) -> Result<Uuid> {
    let path = guid_path(state_dir);
    let err = |message: String| ExecutorError::Identity {
        path: path.clone(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::parse_str(text.trim()).map_err(|e| {
            err(format!(
                "holds no instance GUID ({e}); restore the file or remove it to register as a new instance"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state_dir)
                .map_err(|e| err(format!("cannot create the state dir: {e}")))?;
            let guid = wanted.unwrap_or_else(Uuid::new_v4);
            // Write then rename, so a crash never leaves a half-written GUID.
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)
                .map_err(|e| err(format!("cannot write it: {e}")))?;
            writeln!(f, "{guid}").map_err(|e| err(format!("cannot write it: {e}")))?;
            f.sync_all().map_err(|e| err(format!("cannot sync it: {e}")))?;
            std::fs::rename(&tmp, &path).map_err(|e| err(format!("cannot rename it: {e}")))?;
            Ok(guid)
        }
        Err(e) => Err(err(format!("cannot read it: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        std::fs::write(guid_path(dir.path()), "garbage").unwrap();
        let e = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("holds no instance GUID"), "{e}");
    }

    #[test]
    fn a_configured_guid_is_taken_once_and_never_replaces_another() {
        let dir = tempfile::tempdir().unwrap();
        let g = Uuid::new_v4();
        assert_eq!(load_or_create_as(dir.path(), Some(g)).unwrap(), g);
        assert_eq!(load_or_create(dir.path()).unwrap(), g);
        let e = load_or_create_as(dir.path(), Some(Uuid::new_v4()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&g.to_string()) && e.contains("[executor] guid"),
            "{e}"
        );
    }
}
