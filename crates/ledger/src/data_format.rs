//! The data dir's format, stamped in `<data-dir>/FORMAT` (`keyledger data dir format 1`), so a
//! release meets a data dir it cannot read with a clear refusal instead of a misreading.
//!
//! A release reads every format up to its own, moving an older data dir forward on open (the
//! moves are one-way: the legacy event keys and the Raft log out of sled are such moves). A
//! data dir stamped with a later format was written by a later release: this one refuses it
//! before it reads or writes anything there, and says which release to run.

use std::io;
use std::path::Path;

use crate::error::LedgerError;

/// The format this release writes. Bumped with any change of what a data dir holds that an
/// earlier release would misread: a record layout, a new tree, a new event kind.
pub const DATA_FORMAT: u32 = 1;

/// The stamp's file in the data dir.
pub const FORMAT_FILE: &str = "FORMAT";

const PREFIX: &str = "keyledger data dir format ";

/// Refuses a data dir stamped with a later format than this release's, before anything opens it.
pub(crate) fn refuse_later(dir: &Path) -> Result<(), LedgerError> {
    match read(dir)? {
        Some(found) if found > DATA_FORMAT => Err(LedgerError::Format(format!(
            "{} holds data dir format {found}, written by a later keyledger release; this release ({}) reads \
             formats up to {DATA_FORMAT}: run the release that wrote it (see docs/operations.md, \"Rolling \
             upgrade\" and \"Rolling back\")",
            dir.display(),
            env!("CARGO_PKG_VERSION")
        ))),
        _ => Ok(()),
    }
}

/// Stamps the data dir with this release's format once its moves are done; from then on an
/// earlier release refuses it. Written to a temporary file, synced and renamed.
pub(crate) fn stamp(dir: &Path) -> Result<(), LedgerError> {
    if read(dir)? == Some(DATA_FORMAT) {
        return Ok(());
    }
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    std::fs::write(&tmp, format!("{PREFIX}{DATA_FORMAT}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(FORMAT_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The stamped format; `None` for a data dir from before the stamp (format 1) or a new one.
fn read(dir: &Path) -> Result<Option<u32>, LedgerError> {
    let path = dir.join(FORMAT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    text.trim()
        .strip_prefix(PREFIX)
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| LedgerError::Format(format!("{}: not a data dir format stamp: {text:?}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_dir_is_stamped_and_an_earlier_or_equal_format_opens() {
        let dir = tempfile::tempdir().unwrap();
        refuse_later(dir.path()).unwrap();
        stamp(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap();
        assert_eq!(text, format!("keyledger data dir format {DATA_FORMAT}\n"));
        refuse_later(dir.path()).unwrap();
    }

    #[test]
    fn a_later_format_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), format!("{PREFIX}{}\n", DATA_FORMAT + 1)).unwrap();
        let message = refuse_later(dir.path()).unwrap_err().to_string();
        assert!(message.contains(&format!("format {}", DATA_FORMAT + 1)), "{message}");
        assert!(message.contains(&format!("up to {DATA_FORMAT}")), "{message}");
    }

    #[test]
    fn a_stamp_that_does_not_parse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), "format banana\n").unwrap();
        assert!(matches!(refuse_later(dir.path()), Err(LedgerError::Format(_))));
    }
}
