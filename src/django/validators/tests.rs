//! Unit tests. Every expected value marked "Python" or "Django" below was produced by running
//! Python 3.11.7 (Unicode 14.0) with real Django 5.2.19, whose validators are the same code as
//! 6.1's (Django 6.x needs Python 3.12+, not on this machine); the values are embedded verbatim.

use super::*;

fn s(v: &str) -> String {
    v.to_owned()
}

/// Concatenate each `(piece, count)` repeated `count` times.
fn rep(parts: &[(&str, usize)]) -> String {
    parts.iter().map(|(p, n)| p.repeat(*n)).collect()
}

fn user<'a>(username: &'a str, first_name: &'a str, last_name: &'a str, email: &'a str) -> UserAttributes<'a> {
    UserAttributes { username, first_name, last_name, email }
}

fn codes(r: &Result<(), Vec<PasswordViolation>>) -> Vec<&'static str> {
    match r {
        Ok(()) => Vec::new(),
        Err(v) => v.iter().map(|x| x.code).collect(),
    }
}

fn messages(r: &Result<(), Vec<PasswordViolation>>) -> Vec<String> {
    match r {
        Ok(()) => Vec::new(),
        Err(v) => v.iter().map(|x| x.message.clone()).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Usernames
// ---------------------------------------------------------------------------------------------

struct UCase {
    input: String,
    /// Python: `unicodedata.normalize("NFKC", input)`.
    nfkc: String,
    /// Python: `re.fullmatch(r"[\w.@+-]+", nfkc) is not None`.
    python_match: bool,
    /// Django: error codes of `User._meta.get_field("username").run_validators(nfkc)` (model order:
    /// `invalid` before `max_length`), or `["required"]` for an empty value.
    codes: &'static [&'static str],
    /// Django: the messages of those errors.
    messages: &'static [&'static str],
}

fn username_cases() -> Vec<UCase> {
    vec![
        UCase { input: s("alice"), nfkc: s("alice"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("Alice.Smith+tag@example.com"),
            nfkc: s("Alice.Smith+tag@example.com"),
            python_match: true,
            codes: &[],
            messages: &[],
        },
        UCase { input: s("-_.+@"), nfkc: s("-_.+@"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("josé"), nfkc: s("josé"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("jose\u{301}"), nfkc: s("josé"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("x\u{301}"),
            nfkc: s("x\u{301}"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("李小龙"), nfkc: s("李小龙"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("山田_太郎"), nfkc: s("山田_太郎"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("a\u{200D}b"),
            nfkc: s("a\u{200D}b"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("²"), nfkc: s("2"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("user²"), nfkc: s("user2"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("½"),
            nfkc: s("1⁄2"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("Ⅻ"), nfkc: s("XII"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("ⅷ"), nfkc: s("viii"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("ｆｕｌｌｗｉｄｔｈ"), nfkc: s("fullwidth"), python_match: true, codes: &[], messages: &[]
        },
        UCase { input: s("ＡＢＣ１２"), nfkc: s("ABC12"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("john doe"),
            nfkc: s("john doe"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("a/b"),
            nfkc: s("a/b"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("😀"),
            nfkc: s("😀"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("user😀"),
            nfkc: s("user😀"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: rep(&[("a", 150)]), nfkc: rep(&[("a", 150)]), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: rep(&[("a", 151)]),
            nfkc: rep(&[("a", 151)]),
            python_match: true,
            codes: &["max_length"],
            messages: &["Ensure this value has at most 150 characters (it has 151)."],
        },
        UCase {
            input: rep(&[("x", 149), ("ﬁ", 1)]),
            nfkc: rep(&[("x", 149), ("f", 1), ("i", 1)]),
            python_match: true,
            codes: &["max_length"],
            messages: &["Ensure this value has at most 150 characters (it has 151)."],
        },
        UCase { input: rep(&[("é", 150)]), nfkc: rep(&[("é", 150)]), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: rep(&[("e\u{301}", 150)]),
            nfkc: rep(&[("é", 150)]),
            python_match: true,
            codes: &[],
            messages: &[],
        },
        UCase {
            input: s(""),
            nfkc: s(""),
            python_match: false,
            codes: &["required"],
            messages: &["This field is required."],
        },
        UCase { input: s("ﬁ"), nfkc: s("fi"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("иван"), nfkc: s("иван"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("محمد"), nfkc: s("محمد"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("नमस\u{94D}त\u{947}"),
            nfkc: s("नमस\u{94D}त\u{947}"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("٣٤٥"), nfkc: s("٣٤٥"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("a\u{9}b"),
            nfkc: s("a\u{9}b"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("alice\u{A}"),
            nfkc: s("alice\u{A}"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("\u{A0}alice"),
            nfkc: s(" alice"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("a\u{0}b"),
            nfkc: s("a\u{0}b"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("ǅ"), nfkc: s("Dž"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("〇"), nfkc: s("〇"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("①"), nfkc: s("1"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("𝟘"), nfkc: s("0"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("x·y"),
            nfkc: s("x·y"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("ᵃ"), nfkc: s("a"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("ー"), nfkc: s("ー"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("ก\u{E34}"),
            nfkc: s("ก\u{E34}"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("Ωmega"), nfkc: s("Ωmega"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("Ⅳ"), nfkc: s("IV"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("O'Brien"),
            nfkc: s("O'Brien"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("a,b"),
            nfkc: s("a,b"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("a#b"),
            nfkc: s("a#b"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("ªº"), nfkc: s("ao"), python_match: true, codes: &[], messages: &[] },
        UCase {
            input: s("⁄"),
            nfkc: s("⁄"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase {
            input: s("\u{3000}a"),
            nfkc: s(" a"),
            python_match: false,
            codes: &["invalid"],
            messages: &[
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ],
        },
        UCase { input: s("𠀀"), nfkc: s("𠀀"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("İ"), nfkc: s("İ"), python_match: true, codes: &[], messages: &[] },
        UCase { input: s("ẞ"), nfkc: s("ẞ"), python_match: true, codes: &[], messages: &[] },
    ]
}

#[test]
fn usernames_match_python_and_django() {
    let cases = username_cases();
    assert!(cases.len() >= 15);
    for case in &cases {
        let normalized: String = case.input.nfkc().collect();
        assert_eq!(normalized, case.nfkc, "NFKC of {:?}", case.input);
        assert_eq!(matches_username_regex(&case.nfkc), case.python_match, "regex on {:?}", case.nfkc);
        // The form-level precedence: required, then max_length, then invalid.
        let expected = ["required", "max_length", "invalid"].into_iter().find(|code| case.codes.contains(code));
        match (Username::parse(&case.input), expected) {
            (Ok(username), None) => {
                assert_eq!(username.as_str(), case.nfkc);
                assert!(username.as_str().chars().count() <= USERNAME_MAX_LENGTH);
            }
            (Err(err), Some(code)) => {
                assert_eq!(err.code(), code, "code for {:?}", case.input);
                let index = case.codes.iter().position(|c| *c == code).unwrap_or(usize::MAX);
                assert_eq!(err.to_string(), case.messages[index], "message for {:?}", case.input);
            }
            (got, want) => panic!("{:?}: got {got:?}, Django says {want:?}", case.input),
        }
    }
}

#[test]
fn username_specific_cases() {
    assert_eq!(Username::parse("\u{216B}").map(Username::into_string), Ok("XII".to_owned()));
    assert_eq!(Username::parse("\u{FF41}\u{FF42}").map(Username::into_string), Ok("ab".to_owned()));
    assert_eq!(Username::parse(""), Err(UsernameError::Empty));
    assert_eq!(Username::parse(&"a".repeat(150)).map(|u| u.as_str().len()), Ok(150));
    assert_eq!(Username::parse(&"a".repeat(151)), Err(UsernameError::TooLong { length: 151 }));
    // Length is measured after NFKC: 150 x "e" + U+0301 is 300 code points raw, 150 normalised.
    assert!(Username::parse(&"e\u{301}".repeat(150)).is_ok());
    // A 151-char value that is also invalid reports max_length first (form behaviour).
    assert_eq!(Username::parse(&" ".repeat(151)).map_err(|e| e.code()), Err("max_length"));
    assert_eq!(Username::parse("a b"), Err(UsernameError::Invalid));
    assert_eq!(UsernameError::Empty.code(), "required");
    assert_eq!(UsernameError::Empty.to_string(), "This field is required.");
    assert_eq!(
        UsernameError::TooLong { length: 200 }.to_string(),
        "Ensure this value has at most 150 characters (it has 200)."
    );
    assert_eq!(
        UsernameError::Invalid.to_string(),
        "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
    );
    assert_eq!(Username::try_from("bob").map(|u| u.to_string()), Ok("bob".to_owned()));
    // Trailing newline: Python's `\Z` (Rust `\z`) does not allow it, unlike `$`.
    assert!(!matches_username_regex("alice\n"));
}

#[test]
fn lookup_does_not_normalise() {
    assert_eq!(lookup_key("\u{FF4A}ohn"), "\u{FF4A}ohn");
    assert_eq!(lookup_key(" Alice "), " Alice ");
}

// ---------------------------------------------------------------------------------------------
// Python string helpers
// ---------------------------------------------------------------------------------------------

#[test]
fn isdigit_matches_python() {
    // Python: `s.isdigit()`.
    let cases: &[(&str, bool)] = &[
        ("123", true),
        ("²", true),
        ("٣", true),
        ("½", false),
        ("Ⅻ", false),
        ("１２", true),
        ("", false),
        ("12a", false),
        ("²³¹", true),
        ("𝟘", true),
        ("①", true),
        ("一", false),
        ("๑", true),
        (" 1", false),
        ("1\u{A}", false),
    ];
    for (input, expected) in cases {
        assert_eq!(python_isdigit(input), *expected, "isdigit({input:?})");
    }
}

#[test]
fn isdigit_table_is_well_formed() {
    let ranges = isdigit_table::ISDIGIT_RANGES;
    let mut total = 0u32;
    let mut previous_end: Option<u32> = None;
    for &(start, end) in ranges {
        assert!(start <= end && end <= 0x10FFFF);
        if let Some(prev) = previous_end {
            assert!(start > prev.saturating_add(1), "ranges must be sorted and merged");
        }
        previous_end = Some(end);
        total += end - start + 1;
    }
    assert_eq!(total, isdigit_table::ISDIGIT_CODE_POINTS);
    assert!(is_python_digit('0') && is_python_digit('9') && !is_python_digit('/'));
    assert!(!is_python_digit(':') && is_python_digit('\u{1D7FF}') && !is_python_digit('\u{10FFFF}'));
}

#[test]
fn quick_ratio_matches_difflib() {
    // Python: `difflib.SequenceMatcher(a=a, b=b).quick_ratio()`.
    let cases: &[(&str, &str, f64)] = &[
        ("alice123", "alice", 0.7692307692307693),
        ("alice123", "alice@example.com", 0.4),
        ("alice123", "example", 0.4),
        ("", "", 1.0),
        ("abc", "", 0.0),
        ("aab", "abb", 0.6666666666666666),
        ("σίσυφος", "σισυφοσ", 0.7142857142857143),
        ("password", "drowssap", 1.0),
    ];
    for (a, b, expected) in cases {
        assert_eq!(quick_ratio(a, b), *expected, "quick_ratio({a:?}, {b:?})");
    }
}

#[test]
fn python_strip_and_whitespace() {
    assert_eq!(python_strip("  x  "), "x");
    assert_eq!(python_strip("\u{1c}\u{1d}x\u{1e}\u{1f}"), "x");
    assert_eq!(python_strip("\u{85}\u{a0}\u{3000}x\u{2028}"), "x");
    assert_eq!(python_strip("\u{200b}x"), "\u{200b}x");
    assert_eq!(python_strip(""), "");
}

// ---------------------------------------------------------------------------------------------
// Common password list
// ---------------------------------------------------------------------------------------------

#[test]
fn common_list_loads() {
    let set = common_passwords().expect("embedded list decodes");
    assert_eq!(set.len(), COMMON_PASSWORDS_COUNT);
    assert_eq!(set.len(), 19_640);
    assert!(set.contains("password"));
    assert!(set.contains("123456"));
    assert!(!set.contains(""));
    assert!(set.iter().all(|p| *p == p.to_lowercase() && python_strip(p) == p));
    assert!(is_common_password("  PassWord  "));
    assert!(is_common_password("PASSWORD\n"));
    assert!(!is_common_password("correct horse battery staple"));
}

// ---------------------------------------------------------------------------------------------
// Password validators
// ---------------------------------------------------------------------------------------------

struct PCase {
    password: &'static str,
    user: Option<UserAttributes<'static>>,
    min_length: usize,
    max_similarity: f64,
    /// Django: codes of `validate_password(password, User(**user), [the four validators])`.
    codes: &'static [&'static str],
    /// Django: the messages of those errors.
    messages: &'static [&'static str],
}

#[test]
fn passwords_match_django() {
    let cases = [
        PCase {
            password: "alice123",
            user: Some(UserAttributes { username: "alice", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar", "password_too_common"],
            messages: &["The password is too similar to the username.", "This password is too common."],
        },
        PCase {
            password: "alice123",
            user: Some(UserAttributes { username: "", first_name: "", last_name: "", email: "alice@example.com" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar", "password_too_common"],
            messages: &["The password is too similar to the email address.", "This password is too common."],
        },
        PCase {
            password: "alice123",
            user: Some(UserAttributes {
                username: "alice",
                first_name: "Alice",
                last_name: "Liddell",
                email: "alice@example.com",
            }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar", "password_too_common"],
            messages: &["The password is too similar to the username.", "This password is too common."],
        },
        PCase {
            password: "alice123",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "Liddell!!",
            user: Some(UserAttributes {
                username: "alice",
                first_name: "Alice",
                last_name: "Liddell",
                email: "alice@example.com",
            }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the last name."],
        },
        PCase {
            password: "johnsmith1985",
            user: Some(UserAttributes {
                username: "jsmith",
                first_name: "John",
                last_name: "Smith",
                email: "john.smith@example.org",
            }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &[],
            messages: &[],
        },
        PCase {
            password: "smith.john@example.org",
            user: Some(UserAttributes {
                username: "jsmith",
                first_name: "John",
                last_name: "Smith",
                email: "john.smith@example.org",
            }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the email address."],
        },
        PCase {
            password: "correct horse battery staple",
            user: Some(UserAttributes {
                username: "alice",
                first_name: "Alice",
                last_name: "Liddell",
                email: "alice@example.com",
            }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &[],
            messages: &[],
        },
        PCase {
            password: "a long passphrase with al inside",
            user: Some(UserAttributes { username: "al", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &[],
            messages: &[],
        },
        PCase {
            password: "1234",
            user: Some(UserAttributes { username: "1234", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar", "password_too_short", "password_too_common", "password_entirely_numeric"],
            messages: &[
                "The password is too similar to the username.",
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric.",
            ],
        },
        PCase {
            password: "password",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "  PassWord  ",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "\u{3000}password\u{3000}",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "\u{1C}password\u{1F}",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "\u{85}password",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "\u{200B}password",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &[],
            messages: &[],
        },
        PCase {
            password: "PASSWORD",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "12345678",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_common", "password_entirely_numeric"],
            messages: &["This password is too common.", "This password is entirely numeric."],
        },
        PCase {
            password: "²³¹²³¹²³",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_entirely_numeric"],
            messages: &["This password is entirely numeric."],
        },
        PCase {
            password: "½½½½½½½½", user: None, min_length: 8, max_similarity: 0.7, codes: &[], messages: &[]
        },
        PCase {
            password: "٣٤٥٦٧٨٩٠١",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_entirely_numeric"],
            messages: &["This password is entirely numeric."],
        },
        PCase {
            password: "",
            user: None,
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_short"],
            messages: &["This password is too short. It must contain at least 8 characters."],
        },
        PCase {
            password: "",
            user: Some(UserAttributes { username: "", first_name: "", last_name: "", email: "alice@" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar", "password_too_short"],
            messages: &[
                "The password is too similar to the email address.",
                "This password is too short. It must contain at least 8 characters.",
            ],
        },
        PCase {
            password: "",
            user: Some(UserAttributes { username: "alice", first_name: "", last_name: "", email: "" }),
            min_length: 1,
            max_similarity: 0.7,
            codes: &["password_too_short"],
            messages: &["This password is too short. It must contain at least 1 character."],
        },
        PCase {
            password: "x",
            user: None,
            min_length: 1,
            max_similarity: 0.7,
            codes: &["password_too_common"],
            messages: &["This password is too common."],
        },
        PCase {
            password: "short",
            user: None,
            min_length: 12,
            max_similarity: 0.7,
            codes: &["password_too_short"],
            messages: &["This password is too short. It must contain at least 12 characters."],
        },
        PCase {
            password: "Tr0ub4dor&3",
            user: None,
            min_length: 12,
            max_similarity: 0.7,
            codes: &["password_too_short"],
            messages: &["This password is too short. It must contain at least 12 characters."],
        },
        PCase {
            password: "ΣΙΣΥΦΟΣ",
            user: Some(UserAttributes { username: "", first_name: "σίσυφος", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar", "password_too_short"],
            messages: &[
                "The password is too similar to the first name.",
                "This password is too short. It must contain at least 8 characters.",
            ],
        },
        PCase {
            password: "İstanbul2024",
            user: Some(UserAttributes { username: "i\u{307}stanbul", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the username."],
        },
        PCase {
            password: "zebra-giraffe",
            user: Some(UserAttributes { username: "zebra", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.1,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the username."],
        },
        PCase {
            password: "qwertyuiop-asdf",
            user: Some(UserAttributes { username: "qwertyuiop-asdf", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 1.0,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the username."],
        },
        PCase {
            password: "qwertyuiop-asdf",
            user: Some(UserAttributes { username: "qwertyuiop-asdfg", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 1.0,
            codes: &[],
            messages: &[],
        },
        PCase {
            password: "mysecretpw99",
            user: Some(UserAttributes { username: "mysecretpw9", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.9,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the username."],
        },
        PCase {
            password: "Xy7#kLm2pQ",
            user: Some(UserAttributes { username: "xy7", first_name: "", last_name: "", email: "kLm2pQ@x.io" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_similar"],
            messages: &["The password is too similar to the email address."],
        },
        PCase {
            password: "😀😀😀😀😀😀😀😀",
            user: Some(UserAttributes { username: "😀", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &[],
            messages: &[],
        },
        PCase {
            password: "李小龙李小龙",
            user: Some(UserAttributes { username: "李小龙", first_name: "", last_name: "", email: "" }),
            min_length: 8,
            max_similarity: 0.7,
            codes: &["password_too_short"],
            messages: &["This password is too short. It must contain at least 8 characters."],
        },
    ];
    for case in &cases {
        let policy =
            PasswordPolicy::new(Some(case.min_length), true, true, Some(case.max_similarity)).expect("valid policy");
        let result = policy.validate(case.password, case.user.as_ref());
        assert_eq!(codes(&result), case.codes, "codes for {:?} / {:?}", case.password, case.user);
        assert_eq!(messages(&result), case.messages, "messages for {:?}", case.password);
    }
}

#[test]
fn similarity_validator() {
    let policy =
        PasswordPolicy { min_length: None, reject_common: false, reject_numeric: false, ..PasswordPolicy::default() };
    let alice = user("alice", "", "", "alice@example.com");
    let r = policy.validate("alice123", Some(&alice));
    assert_eq!(codes(&r), ["password_too_similar"]);
    assert_eq!(messages(&r), ["The password is too similar to the username."]);
    // Email only: the "alice" part of the address matches (the whole address alone would not).
    let r = policy.validate("alice123", Some(&user("", "", "", "alice@example.com")));
    assert_eq!(messages(&r), ["The password is too similar to the email address."]);
    assert_eq!(
        messages(&policy.validate("Liddell!!", Some(&user("", "", "Liddell", "")))),
        ["The password is too similar to the last name."]
    );
    assert_eq!(
        messages(&policy.validate("Alice!!", Some(&user("", "Alice", "", "")))),
        ["The password is too similar to the first name."]
    );
    // No user: passes. Unrelated password: passes.
    assert!(policy.validate("alice123", None).is_ok());
    assert!(policy.validate("correct horse battery staple", Some(&alice)).is_ok());
    // Short part far shorter than a long password is skipped.
    assert!(policy.validate("a long passphrase with al inside", Some(&user("al", "", "", ""))).is_ok());
    assert!(exceeds_maximum_length_ratio(20, 0.7, 2));
    assert!(!exceeds_maximum_length_ratio(19, 0.7, 2));
    assert!(!exceeds_maximum_length_ratio(0, 0.7, 0));
    // Only one similarity error even if several attributes match.
    let r = policy.validate("alice", Some(&user("alice", "alice", "alice", "alice")));
    assert_eq!(codes(&r), ["password_too_similar"]);
    // Disabled.
    assert!(PasswordPolicy::none().validate("alice", Some(&alice)).is_ok());
}

#[test]
fn min_length_validator() {
    let policy = PasswordPolicy {
        reject_common: false,
        reject_numeric: false,
        max_similarity: None,
        ..PasswordPolicy::default()
    };
    assert_eq!(
        messages(&policy.validate("abcdefg", None)),
        ["This password is too short. It must contain at least 8 characters."]
    );
    assert!(policy.validate("abcdefgh", None).is_ok());
    // Code points, not bytes: 8 two-byte characters pass.
    assert!(policy.validate(&"\u{e9}".repeat(8), None).is_ok());
    assert!(policy.validate(&"\u{e9}".repeat(7), None).is_err());
    let one = PasswordPolicy { min_length: Some(1), ..policy.clone() };
    assert_eq!(
        messages(&one.validate("", None)),
        ["This password is too short. It must contain at least 1 character."]
    );
    let zero = PasswordPolicy { min_length: Some(0), ..policy };
    assert!(zero.validate("", None).is_ok());
}

#[test]
fn common_validator() {
    let policy =
        PasswordPolicy { min_length: None, reject_numeric: false, max_similarity: None, ..PasswordPolicy::default() };
    let r = policy.validate("  PassWord  ", None);
    assert_eq!(codes(&r), ["password_too_common"]);
    assert_eq!(messages(&r), ["This password is too common."]);
    assert!(policy.validate("\u{200b}password", None).is_ok());
    assert!(policy.validate("Xy7#kLm2pQ-unusual", None).is_ok());
}

#[test]
fn numeric_validator() {
    let policy =
        PasswordPolicy { min_length: None, reject_common: false, max_similarity: None, ..PasswordPolicy::default() };
    let r = policy.validate("90210475", None);
    assert_eq!(codes(&r), ["password_entirely_numeric"]);
    assert_eq!(messages(&r), ["This password is entirely numeric."]);
    assert!(policy.validate("\u{b2}\u{b3}", None).is_err());
    assert!(policy.validate("\u{bd}", None).is_ok());
    assert!(policy.validate("\u{216b}", None).is_ok());
    assert!(policy.validate("", None).is_ok());
    assert!(policy.validate("1234 5678", None).is_ok());
}

#[test]
fn all_four_reported_together_in_django_order() {
    let r = PasswordPolicy::default().validate("1234", Some(&user("1234", "", "", "")));
    assert_eq!(
        codes(&r),
        ["password_too_similar", "password_too_short", "password_too_common", "password_entirely_numeric"]
    );
    assert_eq!(
        messages(&r),
        [
            "The password is too similar to the username.",
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric.",
        ]
    );
    let first = r.err().and_then(|v| v.into_iter().next()).expect("violations");
    let json = serde_json::to_string(&first).expect("serialises");
    assert_eq!(json, r#"{"code":"password_too_similar","message":"The password is too similar to the username."}"#);
}

#[test]
fn policy_defaults_and_max_similarity_check() {
    let d = PasswordPolicy::default();
    assert_eq!((d.min_length, d.reject_common, d.reject_numeric, d.max_similarity), (Some(8), true, true, Some(0.7)));
    let n = PasswordPolicy::none();
    assert_eq!((n.min_length, n.reject_common, n.reject_numeric, n.max_similarity), (None, false, false, None));
    assert!(n.validate("", Some(&user("x", "", "", "x@"))).is_ok());
    assert!(n.help_texts().is_empty());
    assert_eq!(d.help_texts().len(), 4);
    assert_eq!(d.help_texts()[1], "Your password must contain at least 8 characters.");

    // Django (Python): ValueError("max_similarity must be at least 0.1") for 0.09.
    assert_eq!(
        PasswordPolicy::new(Some(8), true, true, Some(0.09)),
        Err(PasswordPolicyError::MaxSimilarityTooLow(0.09))
    );
    assert!(PasswordPolicy::default().with_max_similarity(Some(0.0)).is_err());
    assert!(PasswordPolicy::default().with_max_similarity(Some(-1.0)).is_err());
    assert!(PasswordPolicy::default().with_max_similarity(Some(f64::NAN)).is_err());
    assert!(PasswordPolicy::default().with_max_similarity(Some(0.1)).is_ok());
    assert!(PasswordPolicy::default().with_max_similarity(None).is_ok());
    assert!(PasswordPolicy::default().check().is_ok());
    let bad = PasswordPolicy { max_similarity: Some(0.01), ..PasswordPolicy::default() };
    assert!(bad.check().is_err());
    // An unchecked bad value still does not panic.
    assert!(bad.validate("whatever-long-password", Some(&user("w", "", "", ""))).is_err());
}

#[test]
fn no_panics_on_odd_input() {
    let policy = PasswordPolicy::default();
    let long = "\u{1F600}".repeat(10_000);
    let inputs = ["", "\0", "\u{10FFFF}", "\u{FDFA}", "\u{130}\u{3A3}", long.as_str(), "@@@", "_"];
    for a in inputs {
        let _ = Username::parse(a);
        for b in inputs {
            let _ = policy.validate(a, Some(&user(b, b, b, b)));
        }
    }
    // U+FDFA expands to 18 code points under NFKC, and contains spaces.
    assert_eq!(Username::parse("\u{FDFA}"), Err(UsernameError::Invalid));
}
