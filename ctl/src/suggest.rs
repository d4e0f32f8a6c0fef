//! `suggest`: placeholder.
use crate::cli::SuggestArgs;
use crate::Run;
pub fn run(_args: &SuggestArgs) -> Run {
    Err(crate::error::Error::io("todo"))
}
