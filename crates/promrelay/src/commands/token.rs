//! The gateway's agent token when none is configured: made once in the
//! storage directory, readable only by its owner, and announced in the log so
//! it is obvious how to connect an agent safely.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

/// The file name of the token inside the storage directory.
pub(crate) const TOKEN_FILE: &str = "agent-token";

/// Tokens are short lines; anything longer is not a token file.
const MAX_TOKEN_FILE: u64 = 4096;

/// Reads a token file: its contents without surrounding whitespace.
pub(crate) fn read(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

/// The token in `<storage>/agent-token`, created (32 random bytes, hex,
/// mode 0600) when it does not exist yet. Returns the token, its path, and
/// whether it was just created.
pub(crate) fn load_or_create(storage: &Path) -> Result<(String, PathBuf, bool), String> {
    std::fs::create_dir_all(storage).map_err(|e| {
        format!(
            "cannot create the storage directory {}: {e}",
            storage.display()
        )
    })?;
    let path = storage.join(TOKEN_FILE);
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system has no source of randomness".to_owned())?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // create_new: two gateways starting on one directory never overwrite
    // each other's token.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok((token, path, true))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((read(&path)?, path, false)),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_then_reuses_a_private_token() {
        let dir = testkit::TempDir::new("token");
        let storage = dir.join("data");
        let (first, path, created) = load_or_create(&storage).unwrap();
        assert!(created);
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, _, created) = load_or_create(&storage).unwrap();
        assert!(!created);
        assert_eq!(second, first);
    }

    #[test]
    fn empty_or_missing_token_files_are_refused() {
        let dir = testkit::TempDir::new("token-bad");
        std::fs::write(dir.join("empty"), "\n  \n").unwrap();
        assert!(read(&dir.join("empty")).unwrap_err().contains("is empty"));
        assert!(read(&dir.join("missing"))
            .unwrap_err()
            .contains("cannot read"));
    }
}
