pub mod time_profile;
