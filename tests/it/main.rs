//! yunid's integration tests: every suite runs against a real server on SQLite and on PostgreSQL.

mod common;

mod core_flow;
