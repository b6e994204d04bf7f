//! File transfer in the browser terminal (Azure's file copy, `enableFileCopy`: Standard and
//! Premium): which directions a bastion allows, its size limit, and whether one transfer may
//! go ahead.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bastion::BastionSettings;
use crate::policy::{Refusal, RefusalReason};

/// The directions a bastion allows (`--file-transfer upload,download|download|upload|none`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTransfer {
    pub upload: bool,
    pub download: bool,
}

/// One transfer's direction, as seen from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferDirection {
    /// From the user's machine to the target.
    Upload,
    /// From the target to the user's machine.
    Download,
}

impl TransferDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferDirection::Upload => "upload",
            TransferDirection::Download => "download",
        }
    }
}

impl FileTransfer {
    pub const NONE: FileTransfer = FileTransfer { upload: false, download: false };

    pub fn any(self) -> bool {
        self.upload || self.download
    }

    pub fn allows(self, direction: TransferDirection) -> bool {
        match direction {
            TransferDirection::Upload => self.upload,
            TransferDirection::Download => self.download,
        }
    }
}

impl fmt::Display for FileTransfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.upload, self.download) {
            (true, true) => "upload,download",
            (true, false) => "upload",
            (false, true) => "download",
            (false, false) => "none",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a file transfer setting: give upload,download, download, upload or none")]
pub struct BadFileTransfer(pub String);

impl FromStr for FileTransfer {
    type Err = BadFileTransfer;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut t = FileTransfer::NONE;
        let bad = || BadFileTransfer(s.chars().take(40).collect());
        let words: Vec<String> =
            s.split(',').map(|w| w.trim().to_ascii_lowercase()).filter(|w| !w.is_empty()).collect();
        if words.is_empty() {
            return Err(bad());
        }
        for w in &words {
            match w.as_str() {
                "upload" => t.upload = true,
                "download" => t.download = true,
                "none" if words.len() == 1 => {}
                _ => return Err(bad()),
            }
        }
        Ok(t)
    }
}

/// Whether one transfer of `size` bytes (when known) may go ahead on a bastion with these
/// settings: the tier, the direction, the size limit. Every reason is reported.
pub fn check_transfer(
    settings: &BastionSettings,
    direction: TransferDirection,
    size: Option<u64>,
) -> Result<(), Refusal> {
    let mut reasons = Vec::new();
    if !settings.tier.includes_file_transfer() {
        reasons.push(RefusalReason::TierLacksFileTransfer { tier: settings.tier });
    } else if !settings.file_transfer.allows(direction) {
        reasons.push(RefusalReason::FileTransferOff { direction: direction.as_str() });
    }
    if let (Some(size), Some(limit)) = (size, settings.file_transfer_max_bytes)
        && size > limit
    {
        reasons.push(RefusalReason::FileTooLarge { size, limit });
    }
    Refusal::from_reasons(reasons).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Tier;

    #[test]
    fn settings_parse_and_print_alike() {
        for text in ["upload,download", "download", "upload", "none"] {
            let t: FileTransfer = text.parse().expect("valid");
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            "Download, Upload".parse::<FileTransfer>().map(|t| t.to_string()),
            Ok("upload,download".into())
        );
        assert!("none,upload".parse::<FileTransfer>().is_err());
        assert!("".parse::<FileTransfer>().is_err());
        assert!("copy".parse::<FileTransfer>().is_err());
    }

    #[test]
    fn a_transfer_needs_the_tier_the_direction_and_room() {
        let mut s = BastionSettings {
            file_transfer: "download".parse().expect("valid"),
            ..BastionSettings::new_default()
        };
        assert!(check_transfer(&s, TransferDirection::Download, Some(10)).is_ok());
        let up = check_transfer(&s, TransferDirection::Upload, Some(10)).expect_err("upload is off");
        assert!(up.to_string().contains("--file-transfer"), "{up}");
        s.file_transfer_max_bytes = Some(5);
        let big = check_transfer(&s, TransferDirection::Download, Some(10)).expect_err("too large");
        assert_eq!(big.code(), "FileTooLarge");
        s.tier = Tier::Basic;
        let basic = check_transfer(&s, TransferDirection::Download, None).expect_err("Basic");
        assert!(basic.to_string().contains("tier Basic"), "{basic}");
    }
}
