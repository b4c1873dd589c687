//! SHA-256 of a program's segment data: the weights.
//!
//! A `.pte` is a flatbuffer (methods, constant values, small tensors) followed by segments
//! (delegate payloads with their weights, constant tensors), which start at the extended
//! header's segment base offset. `diffulex-export` records the SHA-256 of every byte from that
//! offset to the end of the file as the constant method `get_weights_digest`
//! (docs/pte-contract.md); [`weights_digest_of_file`] and [`weights_digest_of_bytes`] compute
//! the same value, so a flipped weight byte is detected (`diffulex verify`).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{PteError, Result};
use super::module::PteModule;
use super::verify::segment_base;

/// The digest of a program's segments and what it covered.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/xnnpack.pte");
/// let d = diffulex_edge::pte::weights_digest_of_file(path).unwrap();
/// assert_eq!(d.offset, 1536);
/// assert_eq!(d.offset + d.bytes, std::fs::metadata(path).unwrap().len());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentsDigest {
    /// SHA-256 of the bytes `[offset, offset + bytes)`.
    pub sha256: [u8; 32],
    /// Where the segments start (the extended header's segment base offset).
    pub offset: u64,
    /// How many bytes were hashed (to the end of the program).
    pub bytes: u64,
}

impl SegmentsDigest {
    /// The digest in lower-case hex.
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/xnnpack.pte");
    /// assert_eq!(diffulex_edge::pte::weights_digest_of_file(path).unwrap().hex().len(), 64);
    /// ```
    pub fn hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn no_segments(path: &Path, detail: String) -> PteError {
    PteError::CorruptProgram {
        file: Some(path.to_path_buf()),
        method: None,
        instruction: None,
        detail,
    }
}

fn base_of(head: &[u8], len: u64, path: &Path) -> Result<u64> {
    let base = segment_base(head).ok_or_else(|| {
        no_segments(
            path,
            "no extended header (`eh00`), so no weight segments to digest".into(),
        )
    })?;
    if base > len {
        return Err(no_segments(
            path,
            format!("segment base offset {base} is past the end of the {len}-byte program"),
        ));
    }
    Ok(base)
}

/// SHA-256 of the segments of a program held in memory.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/xnnpack.pte");
/// let bytes = std::fs::read(path).unwrap();
/// let mem = diffulex_edge::pte::weights_digest_of_bytes(&bytes).unwrap();
/// assert_eq!(mem, diffulex_edge::pte::weights_digest_of_file(path).unwrap());
/// ```
pub fn weights_digest_of_bytes(program: &[u8]) -> Result<SegmentsDigest> {
    let len = program.len() as u64;
    let base = base_of(program, len, Path::new("<memory>"))?;
    let tail = usize::try_from(base)
        .ok()
        .and_then(|b| program.get(b..))
        .unwrap_or_default();
    Ok(SegmentsDigest {
        sha256: Sha256::digest(tail).into(),
        offset: base,
        bytes: len - base,
    })
}

/// SHA-256 of the segments of the program file at `path`, read in 1 MiB pieces.
///
/// ```
/// assert!(diffulex_edge::pte::weights_digest_of_file("/no/such.pte").is_err());
/// ```
pub fn weights_digest_of_file(path: impl AsRef<Path>) -> Result<SegmentsDigest> {
    let path = path.as_ref();
    let io = |error| PteError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(32);
    (&mut file).take(32).read_to_end(&mut head).map_err(io)?;
    let base = base_of(&head, len, path)?;
    let mut h = Sha256::new();
    // Skip to the segments (the header already read counts).
    let skip = base.saturating_sub(head.len() as u64);
    if base < head.len() as u64 {
        // Segments starting inside the first 32 bytes: hash what was read past `base`.
        h.update(&head[base as usize..]);
    }
    std::io::copy(&mut (&mut file).take(skip), &mut std::io::sink()).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hashed = len.min(head.len() as u64).saturating_sub(base);
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        hashed += n as u64;
    }
    if hashed != len - base {
        return Err(io(std::io::Error::other(format!(
            "read {hashed} bytes of segments, expected {} (the file changed while it was read)",
            len - base
        ))));
    }
    Ok(SegmentsDigest {
        sha256: h.finalize().into(),
        offset: base,
        bytes: hashed,
    })
}

impl PteModule {
    /// SHA-256 of this module's segments: of its file for a memory-mapped module (read again
    /// from disk), of its own copy for one loaded with [`PteModule::from_bytes`].
    ///
    /// ```
    /// use diffulex_edge::pte::PteModule;
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/xnnpack.pte");
    /// let mapped = PteModule::load(path).unwrap().weights_digest().unwrap();
    /// let copied = PteModule::from_bytes(std::fs::read(path).unwrap()).unwrap().weights_digest().unwrap();
    /// assert_eq!(mapped, copied);
    /// ```
    pub fn weights_digest(&self) -> Result<SegmentsDigest> {
        if let Some(pieces) = self.owned_pieces() {
            // 64-byte pieces: the 32-byte header is inside the first one.
            let len = self.file_size();
            let mut pieces = pieces.peekable();
            let first = pieces.peek().copied().unwrap_or_default();
            let base = base_of(first, len, Path::new("<memory>"))?;
            let mut h = Sha256::new();
            let mut pos = 0u64;
            for piece in pieces {
                let end = pos + piece.len() as u64;
                if base < end {
                    let from = usize::try_from(base.max(pos) - pos).unwrap_or_default();
                    h.update(&piece[from..]);
                }
                pos = end;
            }
            return Ok(SegmentsDigest {
                sha256: h.finalize().into(),
                offset: base,
                bytes: len - base,
            });
        }
        match self.path() {
            Some(p) => weights_digest_of_file(p),
            None => Err(PteError::Io {
                path: "<memory>".into(),
                error: std::io::Error::other("module has neither a file nor its bytes"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_segment_byte_changes_the_digest_and_a_header_byte_does_not() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/basic/xnnpack.pte"
        );
        let bytes = std::fs::read(path).unwrap();
        let good = weights_digest_of_bytes(&bytes).unwrap();
        let base = good.offset as usize;
        let mut flipped = bytes.clone();
        flipped[base + 100] ^= 1;
        assert_ne!(weights_digest_of_bytes(&flipped).unwrap(), good);
        // The flatbuffer is not part of the weights digest (it holds the digest itself).
        let mut meta = bytes.clone();
        meta[base - 1] ^= 1;
        assert_eq!(weights_digest_of_bytes(&meta).unwrap().sha256, good.sha256);
        // Without an extended header there are no segments.
        let mut no_header = bytes;
        no_header[8] = b'x';
        assert!(weights_digest_of_bytes(&no_header).is_err());
    }
}
