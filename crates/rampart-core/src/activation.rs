//! Just-in-time access (Azure's Privileged Identity Management, in its shape): an *eligible*
//! role assignment grants nothing until its principal *activates* it for a while, with a
//! justification and an approver's yes when its rules ask for them. Pure values and rules:
//! the store keeps them, the gateway brings the clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The rules of an eligible assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eligibility {
    /// The longest an activation may last.
    pub max_duration_secs: u64,
    pub require_approval: bool,
    /// Principal IDs (users or groups) who may approve; never the requester.
    #[serde(default)]
    pub approvers: Vec<String>,
    pub require_justification: bool,
}

/// Activations shorter than this are refused (a typo, not a use).
pub const MIN_DURATION_SECS: u64 = 5;
/// The default and the most an eligible assignment allows unless it says otherwise (PIM's 8 h).
pub const DEFAULT_MAX_DURATION_SECS: u64 = 8 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationState {
    /// Waiting for an approver.
    Pending,
    /// Granted; in force from `starts_at` to `ends_at`.
    Active,
    Denied,
    /// Ended early by the user or an administrator.
    Revoked,
}

impl ActivationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationState::Pending => "pending",
            ActivationState::Active => "active",
            ActivationState::Denied => "denied",
            ActivationState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<ActivationState> {
        [ActivationState::Pending, ActivationState::Active, ActivationState::Denied, ActivationState::Revoked]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A request to use an eligible assignment for a while, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub id: String,
    pub assignment_id: String,
    /// Who asked (the assignment may be a group's).
    pub principal_id: String,
    pub principal_name: String,
    pub role: String,
    pub scope: String,
    pub justification: Option<String>,
    pub duration_secs: u64,
    pub state: ActivationState,
    pub requested_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl Activation {
    /// Whether it grants its role at `now`.
    pub fn in_force_at(&self, now: DateTime<Utc>) -> bool {
        self.state == ActivationState::Active
            && self.starts_at.is_some_and(|s| s <= now)
            && self.ends_at.is_some_and(|e| now < e)
    }

    /// How it stands at `now`: `expired` for an active one past its end.
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        match self.state {
            ActivationState::Active if self.ends_at.is_some_and(|e| e <= now) => "expired",
            other => other.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("duration '{0}' is not an ISO 8601 duration such as PT1H, PT30M or PT1H30M")]
    Duration(String),
    #[error("an activation lasts at least {MIN_DURATION_SECS} seconds")]
    TooShort,
    #[error("this assignment allows activations of at most {}", format_duration(*.0))]
    TooLong(u64),
    #[error("this assignment asks for a justification (--justification \"…\")")]
    NoJustification,
}

/// Checks an activation request against the assignment's rules.
pub fn check_request(
    rules: &Eligibility,
    duration_secs: u64,
    justification: Option<&str>,
) -> Result<(), ActivationError> {
    if duration_secs < MIN_DURATION_SECS {
        return Err(ActivationError::TooShort);
    }
    if duration_secs > rules.max_duration_secs {
        return Err(ActivationError::TooLong(rules.max_duration_secs));
    }
    if rules.require_justification && justification.is_none_or(|j| j.trim().is_empty()) {
        return Err(ActivationError::NoJustification);
    }
    Ok(())
}

/// An ISO 8601 duration of days, hours, minutes and seconds (`P1D`, `PT8H`, `PT1H30M`,
/// `PT45S`), in seconds. Years, months and weeks are refused: their length varies.
pub fn parse_duration(text: &str) -> Result<u64, ActivationError> {
    let bad = || ActivationError::Duration(text.chars().take(40).collect());
    let rest = text.trim().strip_prefix(['P', 'p']).ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut take = |part: &str, units: &[(char, u64)]| -> Result<(), ActivationError> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let c = c.to_ascii_uppercase();
            let at = units[next_unit..].iter().position(|(u, _)| *u == c).ok_or_else(bad)? + next_unit;
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = n.checked_mul(units[at].1).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
            number.clear();
            next_unit = at + 1;
        }
        if number.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(date, &[('D', 86_400)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return Err(bad());
        }
        take(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    Ok(total)
}

/// Seconds as an ISO 8601 duration (`PT1H30M`).
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "PT0S".into();
    }
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::from("P");
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if h + m + s > 0 {
        out.push('T');
        for (n, u) in [(h, 'H'), (m, 'M'), (s, 'S')] {
            if n > 0 {
                out.push_str(&format!("{n}{u}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        for (text, secs) in [
            ("PT1H", 3600),
            ("PT30M", 1800),
            ("PT1H30M", 5400),
            ("PT45S", 45),
            ("P1D", 86_400),
            ("P1DT2H", 93_600),
            ("pt10s", 10),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
            assert_eq!(parse_duration(&format_duration(secs)), Ok(secs), "{text} prints back");
        }
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1X",
            "PT1M1H",
            "P1Y",
            "PT-1H",
            "PT1.5H",
            "PTH",
            "PT99999999999999999999H",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_follow_the_assignments_rules() {
        let rules = Eligibility {
            max_duration_secs: 3600,
            require_approval: false,
            approvers: vec![],
            require_justification: true,
        };
        assert_eq!(check_request(&rules, 600, Some("ticket 42")), Ok(()));
        assert_eq!(check_request(&rules, 600, None), Err(ActivationError::NoJustification));
        assert_eq!(check_request(&rules, 600, Some("  ")), Err(ActivationError::NoJustification));
        assert_eq!(check_request(&rules, 7200, Some("x")), Err(ActivationError::TooLong(3600)));
        assert_eq!(check_request(&rules, 1, Some("x")), Err(ActivationError::TooShort));
    }

    #[test]
    fn an_activation_is_in_force_between_its_start_and_end() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let a = Activation {
            id: "a".into(),
            assignment_id: "r".into(),
            principal_id: "p".into(),
            principal_name: "alice".into(),
            role: "Reader".into(),
            scope: "/subscriptions/s".into(),
            justification: None,
            duration_secs: 60,
            state: ActivationState::Active,
            requested_at: t,
            decided_by: None,
            decision_reason: None,
            starts_at: Some(t),
            ends_at: Some(t + chrono::Duration::seconds(60)),
        };
        assert!(a.in_force_at(t) && a.in_force_at(t + chrono::Duration::seconds(59)));
        assert!(!a.in_force_at(t + chrono::Duration::seconds(60)));
        assert_eq!(a.status_at(t + chrono::Duration::seconds(60)), "expired");
        let pending = Activation { state: ActivationState::Pending, ..a };
        assert!(!pending.in_force_at(t));
    }
}
