//! ISO 8583 engine (in progress).
