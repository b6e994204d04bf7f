//! Browser key codes to RDP scancodes. `KeyboardEvent.code` names the physical key, not the
//! character, which is what RDP scancodes are: the server applies its own layout, so every
//! layout works as it does with mstsc.

/// The set-1 scancode of a `KeyboardEvent.code` (0xE0xx for extended keys).
pub fn scancode_for_code(code: &str) -> Option<u16> {
    if let Some(c) = code.strip_prefix("Key").filter(|c| c.len() == 1).and_then(|c| c.chars().next()) {
        return letter(c);
    }
    if let Some(d) = code.strip_prefix("Digit").and_then(|d| d.parse::<u16>().ok()).filter(|d| *d <= 9) {
        return Some(if d == 0 { 0x0B } else { 0x01 + d });
    }
    if let Some(n) = code.strip_prefix('F').and_then(|n| n.parse::<u16>().ok()) {
        return match n {
            1..=10 => Some(0x3A + n),
            11 => Some(0x57),
            12 => Some(0x58),
            _ => None,
        };
    }
    Some(match code {
        "Escape" => 0x01,
        "Minus" => 0x0C,
        "Equal" => 0x0D,
        "Backspace" => 0x0E,
        "Tab" => 0x0F,
        "BracketLeft" => 0x1A,
        "BracketRight" => 0x1B,
        "Enter" => 0x1C,
        "ControlLeft" => 0x1D,
        "Semicolon" => 0x27,
        "Quote" => 0x28,
        "Backquote" => 0x29,
        "ShiftLeft" => 0x2A,
        "Backslash" => 0x2B,
        "Comma" => 0x33,
        "Period" => 0x34,
        "Slash" => 0x35,
        "ShiftRight" => 0x36,
        "NumpadMultiply" => 0x37,
        "AltLeft" => 0x38,
        "Space" => 0x39,
        "CapsLock" => 0x3A,
        "NumLock" => 0x45,
        "ScrollLock" => 0x46,
        "Numpad7" => 0x47,
        "Numpad8" => 0x48,
        "Numpad9" => 0x49,
        "NumpadSubtract" => 0x4A,
        "Numpad4" => 0x4B,
        "Numpad5" => 0x4C,
        "Numpad6" => 0x4D,
        "NumpadAdd" => 0x4E,
        "Numpad1" => 0x4F,
        "Numpad2" => 0x50,
        "Numpad3" => 0x51,
        "Numpad0" => 0x52,
        "NumpadDecimal" => 0x53,
        "IntlBackslash" => 0x56,
        "NumpadEnter" => 0xE01C,
        "ControlRight" => 0xE01D,
        "NumpadDivide" => 0xE035,
        "AltRight" => 0xE038,
        "Home" => 0xE047,
        "ArrowUp" => 0xE048,
        "PageUp" => 0xE049,
        "ArrowLeft" => 0xE04B,
        "ArrowRight" => 0xE04D,
        "End" => 0xE04F,
        "ArrowDown" => 0xE050,
        "PageDown" => 0xE051,
        "Insert" => 0xE052,
        "Delete" => 0xE053,
        "MetaLeft" => 0xE05B,
        "MetaRight" => 0xE05C,
        "ContextMenu" => 0xE05D,
        _ => return None,
    })
}

fn letter(c: char) -> Option<u16> {
    const ROWS: [(&str, u16); 3] = [("QWERTYUIOP", 0x10), ("ASDFGHJKL", 0x1E), ("ZXCVBNM", 0x2C)];
    ROWS.iter().find_map(|(row, first)| row.find(c).and_then(|i| u16::try_from(i).ok()).map(|i| first + i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_keys_map_to_set_one_scancodes() {
        assert_eq!(scancode_for_code("KeyQ"), Some(0x10));
        assert_eq!(scancode_for_code("KeyA"), Some(0x1E));
        assert_eq!(scancode_for_code("KeyM"), Some(0x32));
        assert_eq!(scancode_for_code("Digit1"), Some(0x02));
        assert_eq!(scancode_for_code("Digit0"), Some(0x0B));
        assert_eq!(scancode_for_code("F1"), Some(0x3B));
        assert_eq!(scancode_for_code("F12"), Some(0x58));
        assert_eq!(scancode_for_code("Enter"), Some(0x1C));
        assert_eq!(scancode_for_code("Delete"), Some(0xE053));
        assert_eq!(scancode_for_code("Keyboard"), None);
        assert_eq!(scancode_for_code("F13"), None);
    }
}
