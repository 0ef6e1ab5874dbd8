//! Django-compatible username and password validation.
//!
//! This module reproduces, for gatehouse, the checks Django applies when it creates a user or sets a
//! password (reference: `shared/reference/django.md`, section 8, and section 10 items 1-2):
//!
//! * [`Username::parse`]: `AbstractBaseUser.normalize_username` (NFKC) followed by the username
//!   form/model checks: required, `max_length=150` (code points) and `UnicodeUsernameValidator`
//!   (`^[\w.@+-]+\Z` with Python's Unicode `\w`).
//! * [`PasswordPolicy::validate`]: the four validators that Django's `startproject` template enables,
//!   in Django's order, reporting every failure like `validate_password` does:
//!   `UserAttributeSimilarityValidator`, `MinimumLengthValidator`, `CommonPasswordValidator` and
//!   `NumericPasswordValidator`. Codes and English messages are Django's.
//!
//! Login never normalises: Django's `ModelBackend` looks the username up exactly as typed (see
//! [`lookup_key`]).
//!
//! Python semantics that Rust's standard library does not share are reimplemented exactly:
//! `\w`/`\W` (letters and numbers, not Rust's `\w`), `str.isdigit` (a Numeric_Type table
//! generated from Python 3.11, `isdigit_table.rs`), `str.strip` (Python's whitespace set is Rust's
//! plus U+001C..=U+001F) and `difflib.SequenceMatcher.quick_ratio`.
//!
//! Unicode versions: the isdigit table is Unicode 14.0 (Python 3.11); the `regex`,
//! `unicode-normalization` and std lower-casing tables are newer. For every code point assigned in
//! Unicode 14 the letter/number class, NFKC, `lower()` and `isspace()` were checked equal to
//! Python 3.11 one character at a time; only characters assigned after Unicode 14 can differ.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::sync::LazyLock;

use flate2::read::GzDecoder;
use regex::Regex;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

mod isdigit_table;
#[cfg(test)]
mod tests;

// ------------------------------------------------------------------------------------------------
// Usernames
// ------------------------------------------------------------------------------------------------

/// `auth_user.username` is `varchar(150)`; Django counts code points.
pub const USERNAME_MAX_LENGTH: usize = 150;

/// Django's help text for the username field.
pub const USERNAME_HELP_TEXT: &str = "Required. 150 characters or fewer. Letters, digits and @/./+/-/_ only.";

/// Django's message when a username is already taken (not produced here: it needs the database).
pub const USERNAME_DUPLICATE_MESSAGE: &str = "A user with that username already exists.";

/// Python's Unicode `[\w.@+-]`: `\w` is `str.isalnum()` (letters `L*` and numbers `N*`) plus `_`.
/// Rust's `\w` differs (it accepts combining marks and joiners, rejects `²`), so it is not used.
static USERNAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern: covered by every username test, cannot fail at run time.
    Regex::new(r"^[\p{L}\p{N}_.@+\-]+\z").expect("constant username regex compiles")
});

/// Python's Unicode `\W+`, as used by `re.split(r"\W+", value)` in the similarity validator.
static NON_WORD_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern: covered by the similarity tests, cannot fail at run time.
    Regex::new(r"[^\p{L}\p{N}_]+").expect("constant non-word regex compiles")
});

/// Why a username was rejected. `Display` is Django's English message, [`UsernameError::code`]
/// is Django's error code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum UsernameError {
    /// Empty (after NFKC normalisation). Django forms: code `required`.
    #[error("This field is required.")]
    Empty,
    /// More than [`USERNAME_MAX_LENGTH`] code points after normalisation (`length` is the actual
    /// count). Django's `MaxLengthValidator`: code `max_length`.
    #[error("Ensure this value has at most 150 characters (it has {length}).")]
    TooLong {
        /// Length of the normalised username in code points.
        length: usize,
    },
    /// A character outside Unicode letters, numbers and `@.+-_`. Code `invalid`.
    #[error("Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.")]
    Invalid,
}

impl UsernameError {
    /// Django's error code: `required`, `max_length` or `invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            UsernameError::Empty => "required",
            UsernameError::TooLong { .. } => "max_length",
            UsernameError::Invalid => "invalid",
        }
    }
}

/// A username that Django would accept on creation: NFKC-normalised, 1..=150 code points, only
/// Unicode letters, numbers and `@.+-_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Normalise `raw` with NFKC (Django's `normalize_username`) and validate the result.
    ///
    /// When several checks fail, the first of required, max_length, invalid is returned; this is
    /// what Django's `UserCreationForm` shows (a form-field error suppresses the model validators).
    /// Surrounding whitespace is *not* stripped (Django's form field would strip it first;
    /// `create_user` does not): `" alice"` is rejected as invalid rather than silently changed.
    pub fn parse(raw: &str) -> Result<Username, UsernameError> {
        let normalized: String = raw.nfkc().collect();
        if normalized.is_empty() {
            return Err(UsernameError::Empty);
        }
        let length = normalized.chars().count();
        if length > USERNAME_MAX_LENGTH {
            return Err(UsernameError::TooLong { length });
        }
        if !USERNAME_RE.is_match(&normalized) {
            return Err(UsernameError::Invalid);
        }
        Ok(Username(normalized))
    }

    /// The normalised username, as it is stored in `auth_user.username`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised username as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Username {
    type Error = UsernameError;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Username::parse(raw)
    }
}

/// The key to look a user up with at login: the raw string, unchanged.
///
/// Django's `ModelBackend.authenticate` queries `username = <as typed>` with no NFKC normalisation,
/// no case folding and no stripping, so `"ｊｏｈｎ"` does not find `"john"`. Do not pass login input
/// through [`Username::parse`].
pub fn lookup_key(raw: &str) -> &str {
    raw
}

/// Whether Django's `UnicodeUsernameValidator` regex accepts `value` as it is (no normalisation,
/// no length check). Useful to inspect rows that were written without validation.
pub fn matches_username_regex(value: &str) -> bool {
    USERNAME_RE.is_match(value)
}

// ------------------------------------------------------------------------------------------------
// Python string semantics
// ------------------------------------------------------------------------------------------------

/// Python's `str.isspace()` for one character: Rust's `White_Space` set plus U+001C..=U+001F
/// (Python also counts the bidi classes B and S, which adds the four information separators).
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_whitespace)
}

/// Python 3.11's `str.isdigit()` for one character (Unicode Numeric_Type Decimal or Digit).
pub fn is_python_digit(c: char) -> bool {
    let cp = u32::from(c);
    isdigit_table::ISDIGIT_RANGES
        .binary_search_by(|&(start, end)| {
            if end < cp {
                std::cmp::Ordering::Less
            } else if start > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Python's `str.isdigit()`: true iff `s` is non-empty and every character is a digit in the sense
/// of [`is_python_digit`]. `"²"` and `"٣"` are digits, `"½"` and `"Ⅻ"` are not.
pub fn python_isdigit(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_python_digit)
}

/// `difflib.SequenceMatcher(a=a, b=b).quick_ratio()`: `2 * M / (len(a) + len(b))` where `M` is the
/// size of the multiset intersection of the two strings' code points; `1.0` when both are empty.
pub fn quick_ratio(a: &str, b: &str) -> f64 {
    let a_counts = char_counts(a);
    let a_len: usize = a_counts.values().sum();
    quick_ratio_counts(&a_counts, a_len, b)
}

fn char_counts(s: &str) -> std::collections::HashMap<char, usize> {
    let mut counts = std::collections::HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    counts
}

fn quick_ratio_counts(a_counts: &std::collections::HashMap<char, usize>, a_len: usize, b: &str) -> f64 {
    let b_counts = char_counts(b);
    let b_len: usize = b_counts.values().sum();
    let matches: usize = b_counts.iter().map(|(c, &nb)| a_counts.get(c).map_or(0, |&na| na.min(nb))).sum();
    let length = a_len + b_len;
    if length == 0 {
        1.0
    } else {
        // Same operation order as Python's `2.0 * matches / length`.
        2.0 * matches as f64 / length as f64
    }
}

// ------------------------------------------------------------------------------------------------
// Common password list
// ------------------------------------------------------------------------------------------------

/// Django 6.1.3's `common-passwords.txt.gz` (19 640 lower-case entries; BSD licence via Django).
static COMMON_PASSWORDS_GZ: &[u8] = include_bytes!("../django-common-passwords.txt.gz");

/// Number of entries in the embedded list.
pub const COMMON_PASSWORDS_COUNT: usize = 19_640;

static COMMON_PASSWORDS: LazyLock<Result<HashSet<String>, CommonPasswordsError>> = LazyLock::new(load_common_passwords);

/// The embedded common-password list could not be decoded (a corrupt build; never expected).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode the embedded common-password list: {0}")]
pub struct CommonPasswordsError(String);

fn load_common_passwords() -> Result<HashSet<String>, CommonPasswordsError> {
    let mut text = String::new();
    GzDecoder::new(COMMON_PASSWORDS_GZ).read_to_string(&mut text).map_err(|e| CommonPasswordsError(e.to_string()))?;
    // Django: `{x.strip() for x in gzip.open(path, "rt", encoding="utf-8")}`.
    Ok(text.split_inclusive('\n').map(|line| python_strip(line).to_owned()).collect())
}

/// The decoded common-password list (decompressed once, on first use).
///
/// [`PasswordPolicy::validate`] skips the common-password check if decoding failed; call this at
/// start-up to fail early instead.
pub fn common_passwords() -> Result<&'static HashSet<String>, CommonPasswordsError> {
    COMMON_PASSWORDS.as_ref().map_err(Clone::clone)
}

/// Django's `CommonPasswordValidator` test: `password.lower().strip() in passwords`.
pub fn is_common_password(password: &str) -> bool {
    match COMMON_PASSWORDS.as_ref() {
        Ok(set) => set.contains(python_strip(&password.to_lowercase())),
        Err(_) => false,
    }
}

// ------------------------------------------------------------------------------------------------
// Password policy
// ------------------------------------------------------------------------------------------------

/// Smallest `max_similarity` Django accepts.
pub const MIN_MAX_SIMILARITY: f64 = 0.1;

/// An invalid [`PasswordPolicy`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Django: `ValueError("max_similarity must be at least 0.1")`. NaN is rejected too (Django
    /// would accept it and then never report similarity).
    #[error("max_similarity must be at least 0.1 (got {0})")]
    MaxSimilarityTooLow(f64),
}

/// Which of Django's four standard password validators are enabled, with their options.
///
/// `Default` is Django's `startproject` setting (all four on, defaults); [`PasswordPolicy::none`] is
/// `global_settings` (`AUTH_PASSWORD_VALIDATORS = []`). The fields are public; a value built by hand
/// should be checked with [`PasswordPolicy::check`] (or built with [`PasswordPolicy::new`]), since
/// Django refuses `max_similarity < 0.1` at construction. An unchecked low value does not panic: it is
/// simply used as given.
#[derive(Clone, Debug, PartialEq)]
pub struct PasswordPolicy {
    /// `MinimumLengthValidator(min_length)`; `None` disables it. Default `Some(8)`.
    pub min_length: Option<usize>,
    /// `CommonPasswordValidator` with Django's list. Default `true`.
    pub reject_common: bool,
    /// `NumericPasswordValidator`. Default `true`.
    pub reject_numeric: bool,
    /// `UserAttributeSimilarityValidator(max_similarity)` over username, first name, last name and
    /// email; `None` disables it. Default `Some(0.7)`; must be at least 0.1.
    pub max_similarity: Option<f64>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: Some(8), reject_common: true, reject_numeric: true, max_similarity: Some(0.7) }
    }
}

/// The attributes the similarity validator compares against (Django's
/// `DEFAULT_USER_ATTRIBUTES`). Empty strings are skipped, as in Django.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserAttributes<'a> {
    /// `auth_user.username` (verbose name "username").
    pub username: &'a str,
    /// `auth_user.first_name` (verbose name "first name").
    pub first_name: &'a str,
    /// `auth_user.last_name` (verbose name "last name").
    pub last_name: &'a str,
    /// `auth_user.email` (verbose name "email address").
    pub email: &'a str,
}

/// One failed password validator: Django's error `code` and English `message`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PasswordViolation {
    /// `password_too_similar`, `password_too_short`, `password_too_common` or
    /// `password_entirely_numeric`.
    pub code: &'static str,
    /// Django's message with its parameters filled in.
    pub message: String,
}

impl fmt::Display for PasswordViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl PasswordPolicy {
    /// All validators off, like Django's `global_settings` (`AUTH_PASSWORD_VALIDATORS = []`).
    pub fn none() -> Self {
        PasswordPolicy { min_length: None, reject_common: false, reject_numeric: false, max_similarity: None }
    }

    /// A checked policy; fails like Django when `max_similarity < 0.1` (or is NaN).
    pub fn new(
        min_length: Option<usize>,
        reject_common: bool,
        reject_numeric: bool,
        max_similarity: Option<f64>,
    ) -> Result<Self, PasswordPolicyError> {
        let policy = PasswordPolicy { min_length, reject_common, reject_numeric, max_similarity };
        policy.check()?;
        Ok(policy)
    }

    /// This policy with another `max_similarity`, checked.
    pub fn with_max_similarity(mut self, max_similarity: Option<f64>) -> Result<Self, PasswordPolicyError> {
        self.max_similarity = max_similarity;
        self.check()?;
        Ok(self)
    }

    /// Django's construction-time check: `max_similarity` must be at least 0.1.
    pub fn check(&self) -> Result<(), PasswordPolicyError> {
        match self.max_similarity {
            Some(m) if m.is_nan() || m < MIN_MAX_SIMILARITY => Err(PasswordPolicyError::MaxSimilarityTooLow(m)),
            _ => Ok(()),
        }
    }

    /// Run every enabled validator, like Django's `validate_password`, and return all failures in
    /// Django's order: similarity, minimum length, common, numeric. `user` is `None` when there is
    /// no user yet (the similarity check then passes, as in Django).
    pub fn validate(&self, password: &str, user: Option<&UserAttributes<'_>>) -> Result<(), Vec<PasswordViolation>> {
        let mut violations = Vec::new();
        if let (Some(max_similarity), Some(user)) = (self.max_similarity, user)
            && let Some(verbose_name) = too_similar_to(password, user, max_similarity)
        {
            violations.push(PasswordViolation {
                code: "password_too_similar",
                message: format!("The password is too similar to the {verbose_name}."),
            });
        }
        if let Some(min_length) = self.min_length
            && password.chars().count() < min_length
        {
            violations.push(PasswordViolation {
                code: "password_too_short",
                message: format!(
                    "This password is too short. It must contain at least {min_length} {}.",
                    characters(min_length)
                ),
            });
        }
        if self.reject_common && is_common_password(password) {
            violations.push(PasswordViolation {
                code: "password_too_common",
                message: "This password is too common.".to_owned(),
            });
        }
        if self.reject_numeric && python_isdigit(password) {
            violations.push(PasswordViolation {
                code: "password_entirely_numeric",
                message: "This password is entirely numeric.".to_owned(),
            });
        }
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }

    /// Django's help texts for the enabled validators, in the same order
    /// (`password_validators_help_texts`).
    pub fn help_texts(&self) -> Vec<String> {
        let mut texts = Vec::new();
        if self.max_similarity.is_some() {
            texts.push("Your password can\u{2019}t be too similar to your other personal information.".to_owned());
        }
        if let Some(min_length) = self.min_length {
            texts.push(format!("Your password must contain at least {min_length} {}.", characters(min_length)));
        }
        if self.reject_common {
            texts.push("Your password can\u{2019}t be a commonly used password.".to_owned());
        }
        if self.reject_numeric {
            texts.push("Your password can\u{2019}t be entirely numeric.".to_owned());
        }
        texts
    }
}

/// English `ngettext` for "character": singular only for exactly 1.
fn characters(n: usize) -> &'static str {
    if n == 1 { "character" } else { "characters" }
}

/// Django's `exceeds_maximum_length_ratio`: skip parts far shorter than the password.
fn exceeds_maximum_length_ratio(pwd_len: usize, max_similarity: f64, value_len: usize) -> bool {
    let length_bound_similarity = max_similarity / 2.0 * pwd_len as f64;
    pwd_len >= value_len.saturating_mul(10) && (value_len as f64) < length_bound_similarity
}

/// `UserAttributeSimilarityValidator.validate`: the verbose name of the first attribute (in Django's
/// order) whose value, or one of its `\W+`-separated parts, is too similar to the password.
fn too_similar_to(password: &str, user: &UserAttributes<'_>, max_similarity: f64) -> Option<&'static str> {
    let password = password.to_lowercase();
    let pw_counts = char_counts(&password);
    let pw_len: usize = pw_counts.values().sum();
    let attributes = [
        (user.username, "username"),
        (user.first_name, "first name"),
        (user.last_name, "last name"),
        (user.email, "email address"),
    ];
    for (value, verbose_name) in attributes {
        if value.is_empty() {
            continue;
        }
        let value_lower = value.to_lowercase();
        // `re.split(r"\W+", value_lower) + [value_lower]`
        let parts = NON_WORD_RE.split(&value_lower).chain(std::iter::once(value_lower.as_str()));
        for part in parts {
            if exceeds_maximum_length_ratio(pw_len, max_similarity, part.chars().count()) {
                continue;
            }
            if quick_ratio_counts(&pw_counts, pw_len, part) >= max_similarity {
                return Some(verbose_name);
            }
        }
    }
    None
}
