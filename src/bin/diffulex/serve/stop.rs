//! Stop strings on streamed text: the answer ends before the first stop string, and text that
//! may be the start of one is held back until the next piece tells.

/// Filters streamed text pieces against stop strings.
#[derive(Debug, Default)]
pub struct StopFilter {
    stops: Vec<String>,
    /// Text received and not yet released (it may begin a stop string).
    held: String,
    stopped: bool,
}

impl StopFilter {
    /// A filter for these stop strings (none: everything passes at once).
    pub fn new(stops: Vec<String>) -> Self {
        StopFilter {
            stops,
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string was seen: nothing after it is released.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Takes the next piece; returns the text that is certainly part of the answer.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(piece);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min()
        {
            self.stopped = true;
            let out = self.held[..at].to_string();
            self.held.clear();
            return out;
        }
        // Keep the longest tail that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|stop| longest_suffix_prefix(&self.held, stop))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        out
    }

    /// The end of the stream: what is held is part of the answer.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`, on character
/// boundaries of `text`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let longest = stop.len().saturating_sub(1).min(text.len());
    (1..=longest)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut f = StopFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out: String = pieces.iter().map(|p| f.push(p)).collect();
        let stopped = f.stopped();
        out += &f.finish();
        (out, stopped)
    }

    #[test]
    fn ends_before_a_stop_string_split_across_pieces() {
        assert_eq!(run(&["\n\n"], &["12", "\n", "\nrest"]), ("12".into(), true));
        assert_eq!(run(&["END", "x"], &["aE", "N", "Db"]), ("a".into(), true));
        assert_eq!(run(&["END"], &["aE", "N"]), ("aEN".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["é!"], &["café", "é"]), ("caféé".into(), false));
    }
}
