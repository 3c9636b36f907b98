//! The discovery index's snapshot file: the index as it stood at a known place in every
//! origin's change log, so that a restart reads one file and replays what came after it,
//! instead of reading and validating every site again.
//!
//! The file holds, in order:
//! 1. `MAGIC`;
//! 2. the identity of the build that wrote it (the SHA-256 of its executable): the layout and
//!    the prepared answers are that build's, so any other build rebuilds;
//! 3. the cursors: per origin, the epoch and seq the index had applied;
//! 4. the index (`hubdir_geo::Snapshot`: the sites section, then the payloads);
//! 5. the SHA-256 of everything before it.
//!
//! It is written to `<file>.<pid>.tmp`, synced and renamed over the old file, so a crash
//! leaves one or the other whole, and two processes given the same file do not write into
//! each other's. Sizes are checked against the file's length before anything is
//! allocated.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use hubdir_geo::Snapshot;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"HUBDIX01";

/// Where an origin's log stood when the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    pub epoch: String,
}

/// A snapshot file as read: the cursors, and the index's two sections.
#[derive(Debug)]
pub struct Stored {
    pub cursors: HashMap<String, Cursor>,
    pub sites: Vec<u8>,
    pub payloads: Bytes,
}

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: &'static str },
    #[error("{0} was written by another build of hubdir")]
    OtherBuild(PathBuf),
}

/// This executable's identity; `None` if it cannot be read (then no snapshot is read or
/// written).
pub fn build_id() -> Option<[u8; 32]> {
    static ID: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    *ID.get_or_init(|| {
        let read = std::env::current_exe().and_then(|exe| {
            let mut hasher = Sha256::new();
            std::io::copy(&mut File::open(exe)?, &mut hasher)?;
            Ok(hasher.finalize().into())
        });
        read.map_err(|err| tracing::warn!(error = %err, "this executable could not be read: no index snapshots")).ok()
    })
}

/// Writes `snapshot` with `cursors` to `path`, by way of `<path>.<pid>.tmp`.
pub fn write(
    path: &Path,
    build: &[u8; 32],
    cursors: &HashMap<String, Cursor>,
    snapshot: &Snapshot,
) -> Result<(), SnapshotFileError> {
    let tmp = tmp_path(path);
    let io = |source| SnapshotFileError::Io { path: tmp.clone(), source };
    let file = File::create(&tmp).map_err(io)?;
    let mut out = Hashing { inner: BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new() };
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(build);
    let mut origins: Vec<_> = cursors.iter().collect();
    origins.sort_by_key(|(origin, _)| *origin);
    header.extend_from_slice(&(origins.len() as u32).to_le_bytes());
    for (origin, cursor) in origins {
        for text in [origin, &cursor.epoch] {
            header.extend_from_slice(&(text.len() as u32).to_le_bytes());
            header.extend_from_slice(text.as_bytes());
        }
        header.extend_from_slice(&cursor.seq.to_le_bytes());
    }
    out.write_all(&header).map_err(io)?;
    for section in [&snapshot.sites, &snapshot.payloads] {
        out.write_all(&(section.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(section).map_err(io)?;
    }
    let Hashing { inner, hasher } = out;
    let mut file = inner.into_inner().map_err(|err| io(err.into_error()))?;
    file.write_all(&hasher.finalize()).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|source| SnapshotFileError::Io { path: path.to_owned(), source })?;
    // The rename itself is durable once the directory is synced; where that cannot be done
    // (some filesystems refuse to open a directory), a crash only costs a rebuild.
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    Ok(())
}

/// Reads the snapshot at `path`: `Ok(None)` if there is none; an error if it is not whole or
/// another build wrote it.
pub fn read(path: &Path, build: &[u8; 32]) -> Result<Option<Stored>, SnapshotFileError> {
    let io = |source| SnapshotFileError::Io { path: path.to_owned(), source };
    let invalid = |what| SnapshotFileError::Invalid { path: path.to_owned(), what };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    let mut left = file.metadata().map_err(io)?.len();
    let mut input = Hashing { inner: BufReader::with_capacity(1 << 20, file), hasher: Sha256::new() };
    let mut take = |n: u64| -> Result<Vec<u8>, SnapshotFileError> {
        if n > left {
            return Err(invalid("shorter than its sizes say"));
        }
        left -= n;
        let mut buffer = vec![0; n as usize];
        input.read_exact(&mut buffer).map_err(io)?;
        Ok(buffer)
    };
    let u32_of = |bytes: Vec<u8>| u32::from_le_bytes(bytes.try_into().unwrap_or_default());
    let u64_of = |bytes: Vec<u8>| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    if take(MAGIC.len() as u64)? != MAGIC {
        return Err(invalid("not an index snapshot"));
    }
    if take(32)? != build {
        return Err(SnapshotFileError::OtherBuild(path.to_owned()));
    }
    let mut cursors = HashMap::new();
    for _ in 0..u32_of(take(4)?) {
        let length = u32_of(take(4)?);
        let origin = String::from_utf8(take(u64::from(length))?).map_err(|_| invalid("an origin"))?;
        let length = u32_of(take(4)?);
        let epoch = String::from_utf8(take(u64::from(length))?).map_err(|_| invalid("an epoch"))?;
        cursors.insert(origin, Cursor { seq: u64_of(take(8)?), epoch });
    }
    let length = u64_of(take(8)?);
    let sites = take(length)?;
    let length = u64_of(take(8)?);
    let payloads = Bytes::from(take(length)?);
    let expected = input.hasher.finalize();
    let mut stored = [0; 32];
    input.inner.read_exact(&mut stored).map_err(|_| invalid("cut short"))?;
    if left != 32 {
        return Err(invalid("longer than its sizes say"));
    }
    if stored[..] != expected[..] {
        return Err(invalid("its checksum does not match: it is damaged"));
    }
    Ok(Some(Stored { cursors, sites, payloads }))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(name)
}

/// A reader or writer that hashes what passes through it.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
}

impl<T: Read> Read for Hashing<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<T: Write> Write for Hashing<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (HashMap<String, Cursor>, Snapshot) {
        let cursors = HashMap::from([
            ("zw".to_owned(), Cursor { seq: 42, epoch: "e1".into() }),
            ("fr".to_owned(), Cursor { seq: 7, epoch: "e2".into() }),
        ]);
        (cursors, Snapshot { sites: b"sites section".to_vec(), payloads: b"payloads".to_vec() })
    }

    #[test]
    fn a_written_file_reads_back_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let (cursors, snapshot) = sample();
        let build = [7; 32];
        assert!(read(&path, &build).unwrap().is_none(), "no file, no snapshot");
        write(&path, &build, &cursors, &snapshot).unwrap();
        assert!(!tmp_path(&path).exists());
        let back = read(&path, &build).unwrap().unwrap();
        assert_eq!(back.cursors, cursors);
        assert_eq!(back.sites, snapshot.sites);
        assert_eq!(&back.payloads[..], &snapshot.payloads[..]);

        assert!(matches!(read(&path, &[8; 32]), Err(SnapshotFileError::OtherBuild(_))));
        let whole = std::fs::read(&path).unwrap();
        for at in [0, 45, whole.len() - 40, whole.len() - 1] {
            let mut damaged = whole.clone();
            damaged[at] ^= 1;
            std::fs::write(&path, &damaged).unwrap();
            assert!(read(&path, &build).is_err(), "a flipped bit at {at} is noticed");
        }
        for len in [10, 60, whole.len() - 1] {
            std::fs::write(&path, &whole[..len]).unwrap();
            assert!(read(&path, &build).is_err(), "a file cut at {len} is noticed");
        }
        let mut longer = whole.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(read(&path, &build).is_err(), "a byte too many is noticed");
    }
}
