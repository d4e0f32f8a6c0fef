//! Unit tests of the fleet source.
