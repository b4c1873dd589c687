//! Where the integrity checks read a program's segments (the data after the flatbuffer:
//! delegate payloads, weights) from: the bytes in memory, or the file on disk.
//!
//! A memory-mapped load only reads the flatbuffer for the checks; a delegate payload stored
//! in a segment is then read from the file, and only the part that is checked (for XNNPACK:
//! its header and graph, not its weights).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Reads byte ranges of a whole `.pte` file.
pub(crate) trait Segments {
    /// Length of the whole file.
    fn file_len(&self) -> u64;
    /// The `len` bytes at absolute `offset` (the caller keeps the range inside
    /// [`Segments::file_len`]).
    fn read(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>>;
}

/// A whole program held in memory.
pub(crate) struct InMemory<'a>(pub &'a [u8]);

impl Segments for InMemory<'_> {
    fn file_len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        usize::try_from(offset)
            .ok()
            .zip(
                offset
                    .checked_add(len)
                    .and_then(|e| usize::try_from(e).ok()),
            )
            .and_then(|(s, e)| self.0.get(s..e))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| std::io::Error::other("range outside the program bytes"))
    }
}

/// A program file on disk.
pub(crate) struct FileSegments {
    path: PathBuf,
    len: u64,
}

impl FileSegments {
    /// The file at `path`, `len` bytes long.
    pub fn new(path: &Path, len: u64) -> Self {
        FileSegments {
            path: path.to_path_buf(),
            len,
        }
    }
}

impl Segments for FileSegments {
    fn file_len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        let cap = usize::try_from(len).map_err(std::io::Error::other)?;
        let mut out = Vec::with_capacity(cap);
        file.take(len).read_to_end(&mut out)?;
        if out.len() != cap {
            return Err(std::io::Error::other("file is shorter than its segments"));
        }
        Ok(out)
    }
}

/// The segment base offset from the program's extended header (`eh00` at byte 8: header
/// length `u32`, program size `u64`, segment base offset `u64`), if it has one.
pub(crate) fn segment_base(program: &[u8]) -> Option<u64> {
    if program.get(8..12) != Some(b"eh00") {
        return None;
    }
    let b: [u8; 8] = program.get(24..32)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xnnpack() -> (Vec<u8>, PathBuf) {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/basic/xnnpack.pte"
        ));
        (std::fs::read(&path).unwrap(), path)
    }

    #[test]
    fn memory_and_file_read_the_same_ranges() {
        let (bytes, path) = xnnpack();
        // The extended header puts the segments at byte 1536, after the 1448-byte program.
        assert_eq!(segment_base(&bytes), Some(1536));
        assert_eq!(segment_base(&bytes[..20]), None);
        let memory = InMemory(&bytes);
        let file = FileSegments::new(&path, bytes.len() as u64);
        assert_eq!(memory.file_len(), file.file_len());
        assert_eq!(memory.read(1536, 30).unwrap(), file.read(1536, 30).unwrap());
        assert_eq!(&memory.read(1536, 8).unwrap()[4..], b"XH00");
    }

    #[test]
    fn ranges_past_the_end_are_errors() {
        let (bytes, path) = xnnpack();
        let len = bytes.len() as u64;
        assert!(InMemory(&bytes).read(len - 4, 8).is_err());
        assert!(InMemory(&bytes).read(u64::MAX, 2).is_err());
        assert!(FileSegments::new(&path, len).read(len - 4, 8).is_err());
    }
}
