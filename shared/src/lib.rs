//! `exporter`: the library behind the export service's Lambda functions.
//!
//! [`domain`] is pure (requests, calendar arithmetic, listing rules); [`ports`] are the traits the
//! functions depend on; [`adapters`] implement them on AWS and are the only code that knows a
//! wire format; [`config`] reads typed configuration from the environment.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod ports;
pub mod render;
