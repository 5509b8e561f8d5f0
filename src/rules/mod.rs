pub mod engine;
pub mod time_profile;
