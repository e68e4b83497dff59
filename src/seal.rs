//! Sips-style seal (in progress).
