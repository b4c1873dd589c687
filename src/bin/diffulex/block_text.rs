//! Final blocks to streamed text: what `generate`, `chat` and `serve` print as the engine
//! commits blocks. Nothing after a stop id is part of the answer (the engine truncates its
//! output the same way), and a character split across tokens waits for its last byte.

use diffulex_edge::text::{StreamDecoder, TextError, TextTokenizer};

/// Turns final blocks into text.
#[derive(Debug)]
pub struct BlockText {
    stream: StreamDecoder,
    stop_ids: Vec<i64>,
    done: bool,
}

impl BlockText {
    /// Text of the blocks of one answer that ends at any of `stop_ids`.
    pub fn new(stop_ids: Vec<i64>) -> Self {
        BlockText {
            stream: StreamDecoder::new(true),
            stop_ids,
            done: false,
        }
    }

    /// The newly stable text of a final block (empty once a stop id was seen).
    pub fn push(&mut self, tokenizer: &TextTokenizer, block: &[i64]) -> Result<String, TextError> {
        if self.done {
            return Ok(String::new());
        }
        let end = block
            .iter()
            .position(|t| self.stop_ids.contains(t))
            .map_or(block.len(), |i| {
                self.done = true;
                i + 1
            });
        self.stream.push(tokenizer, &block[..end])
    }

    /// The text still held back at the end of the answer.
    pub fn finish(&mut self, tokenizer: &TextTokenizer) -> Result<String, TextError> {
        self.stream.finish(tokenizer)
    }
}
