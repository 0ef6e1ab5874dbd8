//! Django's own rules, reimplemented exactly: password hashers, validators and schema facts.

pub mod hashers;
pub mod schema;
pub mod validators;
