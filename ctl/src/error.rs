//! What can go wrong in a command, as one typed error: a kind (stable, for
//! `-o json` and scripts) and a message that names the file, the field or
//! the operation. The kind decides the exit status.

use std::fmt;

/// Why a command did not do what was asked. The names (`Kind::name`) are
/// part of the `-o json` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The configuration does not validate (the filter would refuse it).
    InvalidConfig,
    /// A file could not be read or written, or is not what it should be.
    Io,
    /// Envoy's admin endpoint (or Prometheus) did not answer, or answered
    /// something unusable.
    Unreachable,
    /// The command names an operation the configuration does not have.
    UnknownOperation,
    /// The command names some members of a group but not all.
    GroupSplit,
    /// The mode change is not a step of the migration.
    InvalidTransition,
    /// An operation is not READY by the readiness rule.
    NotReady,
    /// More than one operation or group without `--allow-batch`.
    Batch,
    /// The file changed since it was read (another operator's change).
    Stale,
    /// Envoy refused the new configuration and keeps the previous one.
    Refused,
    /// Envoy did not report the new revision active within `--timeout`.
    NotConfirmed,
    /// `status --exit-code`: at least one operation is not ready.
    NotReadyStatus,
    /// `status --exit-code`: Envoy's admin endpoint did not answer.
    UnreachableStatus,
    /// `lint` found errors (or warnings, with `--strict`).
    Lint,
    /// `git` failed.
    Git,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::InvalidConfig => "invalid_config",
            Kind::Io => "io",
            Kind::Unreachable => "unreachable",
            Kind::UnknownOperation => "unknown_operation",
            Kind::GroupSplit => "group_split",
            Kind::InvalidTransition => "invalid_transition",
            Kind::NotReady => "not_ready",
            Kind::Batch => "batch",
            Kind::Stale => "stale",
            Kind::Refused => "refused",
            Kind::NotConfirmed => "not_confirmed",
            Kind::NotReadyStatus => "not_ready",
            Kind::UnreachableStatus => "unreachable",
            Kind::Lint => "lint",
            Kind::Git => "git",
        }
    }
}

/// Exit statuses (README, "Exit status"). 2 is clap's for usage errors.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    // 2: usage errors, clap's own exit status.
    /// `status --exit-code`: Envoy answered, some operation is not ready.
    pub const NOT_READY: u8 = 3;
    /// `status --exit-code`: Envoy's admin endpoint did not answer.
    pub const UNREACHABLE: u8 = 4;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn io(message: impl Into<String>) -> Error {
        Error::new(Kind::Io, message)
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidConfig, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Error {
        Error::new(Kind::Unreachable, message)
    }

    /// Prefixes the message, e.g. with the file it is about.
    pub fn context(mut self, prefix: impl fmt::Display) -> Error {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
