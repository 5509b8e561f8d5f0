//! edgerec: one process that turns a small Linux box with a disk into a network video recorder.
//! Data flows source → ingest → store (one writer per storage) → readers (export, HTTP).

pub mod archive;
pub mod auth;
pub mod bookmark;
pub mod camera;
pub mod clocks;
pub mod config;
pub mod error;
pub mod events;
pub mod evidence;
/// Test hooks; only with the `fault-injection` feature, never in a production build.
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fsutil;
pub mod http;
pub mod incident;
pub mod ingest;
pub mod live;
pub mod logs;
pub mod media;
pub mod motion;
pub mod mp4;
pub mod pull;
pub mod recorder;
pub mod recording;
pub mod rules;
pub mod service;
pub mod shutdown;
pub mod source;
pub mod sqlite;
pub mod status;
pub mod store;
pub mod sysinfo;
pub mod time;

pub use error::{Error, ErrorKind};
