use std::fmt;

/// A plaintext password on its way to a hasher. It has no `Display`, and its `Debug` is
/// redacted, so it cannot end up in a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(plaintext: impl Into<String>) -> Self {
        Password(plaintext.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_plaintext() {
        let shown = format!("{:?}", Password::new("hunter22"));
        assert!(!shown.contains("hunter22"), "{shown}");
    }
}
