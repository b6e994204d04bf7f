//! A terminal's recording as asciicast v2 (what `asciinema play` plays): a JSON header line,
//! then `[seconds, "o", text]` for output, `[seconds, "i", text]` for what the user typed
//! (except what follows a prompt for a secret, up to its Enter) and `[seconds, "m", text]`
//! markers (who joined, who left).

use chrono::Utc;

/// Terminal size written in the header (the browser's changes are not followed yet).
const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;

pub(super) const FORMAT: &str = "asciicast-v2";

/// The state between events: an incomplete UTF-8 sequence, the end of the output so far (to
/// see a secret's prompt), and whether a secret is being typed.
#[derive(Default)]
pub(super) struct Cast {
    pending: Vec<u8>,
    tail: String,
    secret: bool,
}

/// Whether the output so far ends at a prompt for a secret (`Password:`, `Enter passphrase
/// for key …:`, `PIN:`): what is typed next is not recorded, up to its Enter. The remote's
/// echo setting is not visible to the gateway; its prompt is.
fn asks_for_secret(output_tail: &str) -> bool {
    let line = output_tail.rsplit(['\n', '\r']).next().unwrap_or("").trim_end().to_lowercase();
    line.ends_with(':')
        && ["password", "passphrase", "pin", "passcode", "secret"].iter().any(|w| line.contains(w))
}

/// Text from terminal output, keeping an incomplete UTF-8 sequence for the next chunk.
fn take_text(pending: &mut Vec<u8>) -> String {
    match std::str::from_utf8(pending) {
        Ok(text) => {
            let text = text.to_string();
            pending.clear();
            text
        }
        Err(e) if e.error_len().is_none() && pending.len() - e.valid_up_to() < 4 => {
            let tail = pending.split_off(e.valid_up_to());
            let text = String::from_utf8_lossy(pending).into_owned();
            *pending = tail;
            text
        }
        Err(_) => {
            let text = String::from_utf8_lossy(pending).into_owned();
            pending.clear();
            text
        }
    }
}

fn line(t: f64, kind: &str, text: &str) -> Vec<u8> {
    let mut out = serde_json::to_vec(&(t, kind, text)).unwrap_or_default();
    out.push(b'\n');
    out
}

impl Cast {
    pub(super) fn header(title: &str) -> Vec<u8> {
        let header = serde_json::json!({
            "version": 2, "width": WIDTH, "height": HEIGHT, "timestamp": Utc::now().timestamp(),
            "title": title, "env": { "TERM": "xterm-256color" },
        });
        format!("{header}\n").into_bytes()
    }

    pub(super) fn output(&mut self, t: f64, bytes: &[u8]) -> Option<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let text = take_text(&mut self.pending);
        if text.is_empty() {
            return None;
        }
        self.tail.push_str(&text);
        if self.tail.len() > 256 {
            let cut = self.tail.len() - 256;
            let cut = (cut..self.tail.len()).find(|i| self.tail.is_char_boundary(*i)).unwrap_or(0);
            self.tail.drain(..cut);
        }
        Some(line(t, "o", &text))
    }

    pub(super) fn input(&mut self, t: f64, bytes: &[u8]) -> Option<Vec<u8>> {
        if !self.secret && asks_for_secret(&self.tail) {
            self.secret = true;
        }
        let text = String::from_utf8_lossy(bytes);
        if !self.secret {
            return Some(line(t, "i", &text));
        }
        // Nothing of the secret; its Enter ends it.
        let end = text.find(['\r', '\n'])?;
        self.secret = false;
        self.tail.clear();
        Some(line(t, "i", &text[end..]))
    }

    pub(super) fn marker(t: f64, text: &str) -> Vec<u8> {
        line(t, "m", text)
    }
}

/// The text a recording's output events carry, joined (for `--search`).
pub(crate) fn output_text(cast: &str) -> String {
    cast.lines()
        .skip(1)
        .filter_map(|line| serde_json::from_str::<(f64, String, String)>(line).ok())
        .filter(|(_, kind, _)| kind == "o")
        .map(|(_, _, text)| text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_prompt_is_recognised() {
        for prompt in
            ["Password: ", "[sudo] password for alice:", "Enter passphrase for key '/k':", "\r\nPIN:"]
        {
            assert!(asks_for_secret(prompt), "{prompt}");
        }
        for other in ["alice@host:~$ ", "password changed\r\n$ ", "", "Name:"] {
            assert!(!asks_for_secret(other), "{other}");
        }
    }

    #[test]
    fn what_is_typed_after_a_secrets_prompt_is_not_kept() {
        let mut cast = Cast::default();
        assert!(cast.output(0.1, b"$ ").is_some());
        assert!(cast.input(0.2, b"ls\r").is_some_and(|l| String::from_utf8_lossy(&l).contains("ls")));
        cast.output(0.3, b"[sudo] password for ann: ");
        assert_eq!(cast.input(0.4, b"hunter2"), None);
        let enter = cast.input(0.5, b"x\r").map(|l| String::from_utf8_lossy(&l).into_owned());
        assert!(enter.is_some_and(|l| !l.contains('x') && l.contains("\\r")));
        cast.output(0.6, b"\r\n$ ");
        assert!(cast.input(0.7, b"id\r").is_some_and(|l| String::from_utf8_lossy(&l).contains("id")));
    }

    #[test]
    fn split_utf8_waits_for_the_rest_of_a_character() {
        let mut pending = "hé".as_bytes().to_vec();
        pending.truncate(2);
        assert_eq!(take_text(&mut pending), "h");
        pending.extend_from_slice(&"é".as_bytes()[1..]);
        assert_eq!(take_text(&mut pending), "é");
        let mut junk = vec![0xff, b'a'];
        assert_eq!(take_text(&mut junk), "\u{fffd}a");
    }
}
