//! Conformance suites for the store ports.
