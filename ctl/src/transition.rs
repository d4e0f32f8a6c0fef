//! The migration's steps: legacy → shadow → cutover → candidate, one at a
//! time forward; any step back is a rollback. Which mode changes need the
//! readiness guard, and which are batched cutovers.

use parallel_run_core::Mode;

/// Modes in migration order, by [`Mode::code`].
pub const ORDER: [Mode; 4] = [Mode::Legacy, Mode::Shadow, Mode::Cutover, Mode::Candidate];

pub fn from_code(code: u64) -> Option<Mode> {
    ORDER.into_iter().find(|mode| mode.code() == code)
}

/// What a change from one mode to another is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Unchanged,
    /// One phase forward.
    Forward,
    /// More than one phase forward: skips the verification in between.
    Skip,
    /// Any number of phases back.
    Back,
}

pub fn step(from: Mode, to: Mode) -> Step {
    let (from, to) = (from.code(), to.code());
    if to == from {
        Step::Unchanged
    } else if to == from + 1 {
        Step::Forward
    } else if to > from {
        Step::Skip
    } else {
        Step::Back
    }
}

/// Why a change is not a migration step, if it is not: for the refusal.
pub fn refusal(from: Mode, to: Mode) -> Option<String> {
    match step(from, to) {
        Step::Skip => {
            let skipped: Vec<&str> = ORDER
                .iter()
                .filter(|m| m.code() > from.code() && m.code() < to.code())
                .map(|m| m.as_str())
                .collect();
            Some(format!(
                "{} -> {} skips {} (the migration goes legacy -> shadow -> cutover -> candidate, one step at a time)",
                from.as_str(),
                to.as_str(),
                skipped.join(" and ")
            ))
        }
        _ => None,
    }
}

/// Whether moving into `to` from `from` needs the operation to be READY:
/// every move forward into a mode where the candidate serves (cutover, and
/// candidate, which drops the verification). Going back never does: a
/// rollback must not wait for evidence.
pub fn needs_readiness(from: Mode, to: Mode) -> bool {
    matches!(step(from, to), Step::Forward | Step::Skip) && matches!(to, Mode::Cutover | Mode::Candidate)
}

/// Where `rollback` takes an operation: back to legacy serving, still
/// shadowed so the comparison goes on. `None`: legacy already serves it.
pub fn rollback_target(from: Mode) -> Option<Mode> {
    match from {
        Mode::Cutover | Mode::Candidate => Some(Mode::Shadow),
        Mode::Legacy | Mode::Shadow => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_migration_order() {
        assert_eq!(step(Mode::Legacy, Mode::Shadow), Step::Forward);
        assert_eq!(step(Mode::Shadow, Mode::Cutover), Step::Forward);
        assert_eq!(step(Mode::Cutover, Mode::Candidate), Step::Forward);
        assert_eq!(step(Mode::Legacy, Mode::Candidate), Step::Skip);
        assert_eq!(step(Mode::Shadow, Mode::Candidate), Step::Skip);
        assert_eq!(step(Mode::Candidate, Mode::Legacy), Step::Back);
        assert_eq!(step(Mode::Cutover, Mode::Cutover), Step::Unchanged);
        assert_eq!(
            refusal(Mode::Legacy, Mode::Candidate).unwrap(),
            "legacy -> candidate skips shadow and cutover (the migration goes legacy -> shadow -> cutover -> candidate, one step at a time)"
        );
        assert_eq!(refusal(Mode::Candidate, Mode::Legacy), None);
    }

    #[test]
    fn readiness_guards_moves_onto_the_candidate_only() {
        assert!(needs_readiness(Mode::Shadow, Mode::Cutover));
        assert!(needs_readiness(Mode::Cutover, Mode::Candidate));
        assert!(needs_readiness(Mode::Legacy, Mode::Cutover));
        assert!(!needs_readiness(Mode::Legacy, Mode::Shadow));
        assert!(!needs_readiness(Mode::Cutover, Mode::Shadow));
        assert!(!needs_readiness(Mode::Candidate, Mode::Cutover));
        assert_eq!(rollback_target(Mode::Candidate), Some(Mode::Shadow));
        assert_eq!(rollback_target(Mode::Shadow), None);
        for mode in ORDER {
            assert_eq!(from_code(mode.code()), Some(mode));
        }
        assert_eq!(from_code(4), None);
    }
}
