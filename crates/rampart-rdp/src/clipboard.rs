//! Text clipboard both ways over RDP's clipboard channel (CLIPRDR, through ironrdp-cliprdr).
//!
//! The channel calls its backend synchronously while a frame is processed; the backend only
//! queues what happened, and [`crate::RdpSession`] acts on the queue afterwards (asks the
//! server for text it announced, answers the server's requests with the browser's text).
//! Only Unicode text crosses: no files, no images.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
};

/// The most clipboard text taken from or given to the server, in bytes of UTF-8.
pub const MAX_CLIPBOARD_TEXT: usize = 1 << 20;

/// What the channel reported, for the session to act on.
#[derive(Debug)]
pub(crate) enum ClipboardEvent {
    /// The channel is up and wants our clipboard's formats.
    FormatListWanted,
    /// Something was copied on the remote machine; `text` when it can be had as text.
    RemoteCopy { text: bool },
    /// The server pastes: it wants our clipboard in this format.
    DataWanted(ClipboardFormatId),
    /// The text we asked for (`None`: the server had none after all).
    Data(Option<String>),
}

pub(crate) type ClipboardEvents = Arc<Mutex<VecDeque<ClipboardEvent>>>;

#[derive(Debug)]
pub(crate) struct QueueingBackend {
    events: ClipboardEvents,
}

impl QueueingBackend {
    pub(crate) fn new(events: ClipboardEvents) -> Self {
        QueueingBackend { events }
    }

    fn push(&self, event: ClipboardEvent) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push_back(event);
    }
}

ironrdp_core::impl_as_any!(QueueingBackend);

impl CliprdrBackend for QueueingBackend {
    fn temporary_directory(&self) -> &str {
        // Asked for by the protocol for file copies, which this client does not offer.
        ".rampart-clipboard"
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {
        self.push(ClipboardEvent::FormatListWanted);
    }

    fn on_process_negotiated_capabilities(&mut self, _capabilities: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        let text = available_formats.iter().any(|f| f.id() == ClipboardFormatId::CF_UNICODETEXT);
        self.push(ClipboardEvent::RemoteCopy { text });
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.push(ClipboardEvent::DataWanted(request.format));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let text = if response.is_error() { None } else { response.to_unicode_string().ok() };
        self.push(ClipboardEvent::Data(text));
    }

    fn on_file_contents_request(&mut self, _request: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _response: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _data_id: LockDataId) {}

    fn on_unlock(&mut self, _data_id: LockDataId) {}
}

/// Text from the remote machine as the browser wants it: `\n` line ends, no trailing NULs,
/// at most [`MAX_CLIPBOARD_TEXT`] bytes (cut at a character boundary).
pub fn text_from_remote(text: &str) -> String {
    let text = text.trim_end_matches('\0').replace("\r\n", "\n");
    truncate(text)
}

/// Text from the browser as Windows wants it: `\r\n` line ends, at most
/// [`MAX_CLIPBOARD_TEXT`] bytes.
pub fn text_for_remote(text: &str) -> String {
    let text = text.replace('\0', "").replace("\r\n", "\n").replace('\n', "\r\n");
    truncate(text)
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_CLIPBOARD_TEXT {
        let mut end = MAX_CLIPBOARD_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_follow_each_side() {
        assert_eq!(text_for_remote("a\nb\r\nc"), "a\r\nb\r\nc");
        assert_eq!(text_from_remote("a\r\nb\0\0"), "a\nb");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_CLIPBOARD_TEXT);
        let cut = text_from_remote(&long);
        assert!(cut.len() <= MAX_CLIPBOARD_TEXT && cut.len() >= MAX_CLIPBOARD_TEXT - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
