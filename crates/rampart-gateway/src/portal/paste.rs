//! With copy and paste turned off, what a browser terminal pastes does not reach the target.
//! The page refuses pastes itself; this is the gateway's own check, for a page that does not:
//! terminals mark pasted text (bracketed paste, `ESC [200~` … `ESC [201~`, which shells turn on),
//! and while copy and paste are off everything between the marks is dropped. Typing is not
//! touched. The marks may arrive split across messages, so the filter keeps its state.

const START: &[u8] = b"\x1b[200~";
const END: &[u8] = b"\x1b[201~";

#[derive(Default)]
pub struct PasteFilter {
    /// Inside a paste (between its marks).
    pasting: bool,
    /// The start of a mark seen at the end of the last message.
    held: Vec<u8>,
}

/// How much of `data`'s end could be the start of `mark`.
fn partial_suffix(data: &[u8], mark: &[u8]) -> usize {
    (1..mark.len().min(data.len() + 1)).rev().find(|&n| data.ends_with(&mark[..n])).unwrap_or(0)
}

impl PasteFilter {
    /// What of `input` goes to the target; `true` with it when a paste was dropped.
    pub fn filter(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(input);
        let mut out = Vec::with_capacity(data.len());
        let mut dropped = false;
        let mut rest = data.as_slice();
        loop {
            let mark = if self.pasting { END } else { START };
            match rest.windows(mark.len()).position(|w| w == mark) {
                Some(at) => {
                    if !self.pasting {
                        out.extend_from_slice(&rest[..at]);
                    }
                    dropped |= self.pasting || at + mark.len() <= rest.len();
                    self.pasting = !self.pasting;
                    rest = &rest[at + mark.len()..];
                }
                None => {
                    let keep = partial_suffix(rest, mark);
                    let (now, later) = rest.split_at(rest.len() - keep);
                    if self.pasting {
                        dropped |= !now.is_empty();
                    } else {
                        out.extend_from_slice(now);
                    }
                    self.held = later.to_vec();
                    return (out, dropped);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_passes_and_pastes_do_not() {
        let mut f = PasteFilter::default();
        assert_eq!(f.filter(b"ls -l\r"), (b"ls -l\r".to_vec(), false));
        let (out, dropped) = f.filter(b"echo \x1b[200~rm -rf /\x1b[201~ ok\r");
        assert_eq!(out, b"echo  ok\r".to_vec());
        assert!(dropped);
    }

    #[test]
    fn marks_split_across_messages_are_found() {
        let mut f = PasteFilter::default();
        let mut out = Vec::new();
        for part in [&b"a\x1b[20"[..], b"0~sec", b"ret\x1b[2", b"01~b"] {
            out.extend(f.filter(part).0);
        }
        assert_eq!(out, b"ab".to_vec());
        // An escape that turns out not to be a mark is passed on.
        let mut f = PasteFilter::default();
        let mut out = f.filter(b"x\x1b[2").0;
        out.extend(f.filter(b"A").0);
        assert_eq!(out, b"x\x1b[2A".to_vec());
    }
}
