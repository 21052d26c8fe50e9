//! Holds the integration tests of outsourced; see `it/`.
