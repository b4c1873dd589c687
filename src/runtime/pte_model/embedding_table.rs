//! The embedding table of a contract-4 program, gathered from the lm_head's weights.
//!
//! A tied checkpoint uses one matrix as its embedding table and its output layer. A contract-4
//! export stores it once, as the lm_head's quantized weights in the program's named data
//! (XNNPACK's own storage), and `forward` takes embeddings instead of token ids: this module
//! gathers each token's row from those bytes and dequantizes it (docs/pte-contract.md,
//! "Version 4: the shared embedding table"). The bytes stay in the memory-mapped file; a forward
//! touches only the rows of its tokens.

use crate::pte::{DType, PteModule};
use crate::runtime::error::{EngineError, Result};
use half::bf16;

/// ExecuTorch `ScalarType` codes of the scale dtypes `get_embedding_layout` may name; a
/// float32 table has none (0).
const SCALE_NONE: i64 = 0;
const SCALE_FLOAT32: i64 = 6;
const SCALE_BFLOAT16: i64 = 15;

/// How the scales are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScaleDtype {
    /// A float32 table: the values are the embeddings.
    None,
    Float32,
    BFloat16,
}

impl ScaleDtype {
    fn bytes(self) -> usize {
        match self {
            ScaleDtype::None => 0,
            ScaleDtype::Float32 => 4,
            ScaleDtype::BFloat16 => 2,
        }
    }
}

/// The shared table of one program: its layout and where its bytes are.
#[derive(Debug, Clone)]
pub(crate) struct SharedTable {
    /// 32 (float32), 8 (int8) or 4 (two values per byte, the even column in the low nibble,
    /// stored + 8).
    bits: u8,
    /// Input features per scale.
    group_size: usize,
    scale_dtype: ScaleDtype,
    hidden: usize,
    vocab: usize,
    weight_key: String,
    /// None for a float32 table.
    scale_key: Option<String>,
}

fn metadata(detail: String) -> EngineError {
    EngineError::Metadata(detail)
}

/// A SHA-256 stored as four big-endian int64 words, as hex.
fn key_of(module: &mut PteModule, method: &str) -> Result<String> {
    match super::read_digest(module, method)? {
        Some(bytes) => Ok(super::hex(&bytes)),
        None => Err(metadata(format!(
            "a contract-4 program needs {method} (the named-data key of its shared embedding \
             table): re-export it with `diffulex-export`"
        ))),
    }
}

impl SharedTable {
    /// Reads and checks a contract-4 program's table: its layout constants, the width of
    /// `forward`'s embeddings input, and the sizes of the two named-data entries.
    pub(crate) fn read(module: &mut PteModule, vocab: usize) -> Result<Self> {
        let layout = module
            .constant_i64_list("get_embedding_layout")
            .map_err(|source| EngineError::model("ExecuTorch", "get_embedding_layout", source))?;
        let [bits, group_size, scale_code] = layout[..] else {
            return Err(metadata(format!(
                "get_embedding_layout returned {} values, expected 3 (bits, group size, scale dtype)",
                layout.len()
            )));
        };
        let bits: u8 = match bits {
            32 => 32,
            8 => 8,
            4 => 4,
            other => {
                return Err(metadata(format!(
                    "get_embedding_layout: {other}-bit table, this engine reads 32, 8 and 4 bits"
                )))
            }
        };
        let scale_dtype = match (bits, scale_code) {
            (32, SCALE_NONE) => ScaleDtype::None,
            (8 | 4, SCALE_FLOAT32) => ScaleDtype::Float32,
            (8 | 4, SCALE_BFLOAT16) => ScaleDtype::BFloat16,
            (_, other) => {
                return Err(metadata(format!(
                    "get_embedding_layout: scale dtype {other} for a {bits}-bit table, expected \
                     {SCALE_NONE} (no scales) for 32 bits, {SCALE_FLOAT32} (float32) or \
                     {SCALE_BFLOAT16} (bfloat16) for 8 and 4"
                )))
            }
        };
        let hidden = embeddings_width(module)?;
        let group_size = usize::try_from(group_size)
            .ok()
            .filter(|&g| g > 0 && hidden % g == 0)
            .ok_or_else(|| {
                metadata(format!(
                    "get_embedding_layout: group size {group_size} does not divide the hidden \
                     size {hidden} of forward's embeddings"
                ))
            })?;
        if bits == 4 && group_size % 2 != 0 {
            return Err(metadata(format!(
                "a 4-bit table packs two values per byte, so its groups are even;                  get_embedding_layout has {group_size}"
            )));
        }
        let weight_key = key_of(module, "get_embedding_weight_key")?;
        let scale_key = match scale_dtype {
            ScaleDtype::None if module.has_method("get_embedding_scale_key") => {
                return Err(metadata(
                    "get_embedding_scale_key on a float32 table, which has no scales".into(),
                ))
            }
            ScaleDtype::None => None,
            _ => Some(format!(
                "scale_{}",
                key_of(module, "get_embedding_scale_key")?
            )),
        };
        let table = SharedTable {
            bits,
            group_size,
            scale_dtype,
            hidden,
            vocab,
            weight_key,
            scale_key,
        };
        table.check_entry(module, &table.weight_key, table.row_bytes(), "weights")?;
        if let Some(key) = &table.scale_key {
            table.check_entry(module, key, table.scale_row_bytes(), "scales")?;
        }
        Ok(table)
    }

    fn row_bytes(&self) -> usize {
        self.hidden * usize::from(self.bits) / 8
    }

    fn scale_row_bytes(&self) -> usize {
        self.hidden / self.group_size * self.scale_dtype.bytes()
    }

    /// The entry must exist and hold exactly `vocab` rows of `row` bytes.
    fn check_entry(&self, module: &PteModule, key: &str, row: usize, what: &str) -> Result<()> {
        let bytes = self.entry(module, key)?;
        let want = self.vocab.checked_mul(row);
        if want != Some(bytes.len()) {
            return Err(metadata(format!(
                "the shared embedding table's {what} (named data {key}) are {} bytes, {} rows of \
                 {row} bytes need {}: the file is damaged or was not written by `diffulex-export`",
                bytes.len(),
                self.vocab,
                want.map_or("more than usize::MAX".into(), |w| w.to_string())
            )));
        }
        Ok(())
    }

    fn entry<'m>(&self, module: &'m PteModule, key: &str) -> Result<&'m [u8]> {
        module
            .named_data(key)
            .map_err(|source| {
                EngineError::model("ExecuTorch", format!("named data {key}"), source)
            })?
            .ok_or_else(|| {
                metadata(format!(
                    "the program has no named data {key}, where its shared embedding table should \
                     be: the file is damaged or was not written by `diffulex-export`"
                ))
            })
    }

    /// Width of one embedding.
    pub(crate) fn hidden(&self) -> usize {
        self.hidden
    }

    /// Writes the embeddings of `tokens` (`tokens.len() * hidden` floats) to `out`, replacing
    /// its contents. Every id is checked against the vocabulary first.
    pub(crate) fn gather(
        &self,
        module: &PteModule,
        tokens: &[i64],
        out: &mut Vec<f32>,
    ) -> Result<()> {
        for (index, &token) in tokens.iter().enumerate() {
            if usize::try_from(token).map_or(true, |t| t >= self.vocab) {
                return Err(EngineError::TokenOutOfVocabulary {
                    index,
                    token,
                    vocab: self.vocab,
                });
            }
        }
        let weights = self.entry(module, &self.weight_key)?;
        let scales = match &self.scale_key {
            Some(key) => self.entry(module, key)?,
            None => &[],
        };
        let (row, scale_row) = (self.row_bytes(), self.scale_row_bytes());
        // Bytes of one group of values (unused for a float32 table).
        let group_bytes = self.group_size * usize::from(self.bits) / 8;
        out.clear();
        out.reserve(tokens.len() * self.hidden);
        for &token in tokens {
            // In range: checked above, and the entries' sizes were checked at load.
            let id = token as usize;
            let values = &weights[id * row..(id + 1) * row];
            if self.bits == 32 {
                out.extend(
                    values
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                continue;
            }
            let row_scales = &scales[id * scale_row..(id + 1) * scale_row];
            for (group, bytes) in values.chunks_exact(group_bytes).enumerate() {
                let scale = self.scale(row_scales, group);
                if self.bits == 8 {
                    out.extend(bytes.iter().map(|&b| f32::from(b as i8) * scale));
                } else {
                    for &b in bytes {
                        out.push(f32::from((b & 0x0f) as i8 - 8) * scale);
                        out.push(f32::from((b >> 4) as i8 - 8) * scale);
                    }
                }
            }
        }
        Ok(())
    }

    fn scale(&self, row_scales: &[u8], group: usize) -> f32 {
        match self.scale_dtype {
            ScaleDtype::None => 1.0,
            ScaleDtype::Float32 => {
                let b = &row_scales[group * 4..group * 4 + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            ScaleDtype::BFloat16 => {
                let b = &row_scales[group * 2..group * 2 + 2];
                bf16::from_le_bytes([b[0], b[1]]).to_f32()
            }
        }
    }
}

/// `D` of `forward`'s first input, which a contract-4 program declares as float32 `[1, T, D]`.
fn embeddings_width(module: &PteModule) -> Result<usize> {
    let meta = module
        .method_meta("forward")
        .map_err(|source| EngineError::model("ExecuTorch", "forward's metadata", source))?;
    let first = meta
        .inputs
        .first()
        .ok_or_else(|| metadata("forward takes no inputs".into()))?;
    match (first.dtype, &first.shape[..]) {
        (DType::F32, [1, _, width]) if *width > 0 => Ok(*width as usize),
        _ => Err(metadata(format!(
            "a contract-4 program's forward takes embeddings f32[1, T, D] first, this one takes \
             {first}: the file is damaged or was not written by `diffulex-export`"
        ))),
    }
}
