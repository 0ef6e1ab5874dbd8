//! Property-based fuzzing (proptest) of the parsers that see attacker-controlled input: Django
//! password hashes, bearer tokens, and the Hasura webhook's POST body. cargo-fuzz would need a
//! nightly toolchain; these run on stable, inside `cargo test`, with small fixed budgets.
//!
//! Budgets: the case counts below keep the whole file to a few seconds; raise them locally with
//! `PROPTEST_CASES=5000 cargo test --test fuzz` (the environment variable overrides them).

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use common::{TestApp, TestDb, spawn_app_with};
use gatehouse::django::hashers::{HasherConfig, make_password, verify};
use gatehouse::tokens::Tokens;
use proptest::prelude::*;
use sha2::Digest;

const PASSWORD: &str = "correct horse ☃";

/// Cases per property; `PROPTEST_CASES` overrides it.
fn budget(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn hasher_config() -> HasherConfig {
    HasherConfig { pbkdf2_iterations: 1_000 }
}

/// One hash of [`PASSWORD`] per format gatehouse reads, at the lowest costs it accepts, so that
/// hundreds of verifications take seconds (Django's defaults take 0.3 s each). Each is checked
/// to verify before it is mutated.
fn cheap_hashes() -> Vec<String> {
    let salt = "abcdefghijklmnopqrstuv";
    let md5 = |text: &str| hex::encode(<md5::Md5 as Digest>::digest(text.as_bytes()));
    let sha1 = |text: &str| hex::encode(<sha1::Sha1 as Digest>::digest(text.as_bytes()));

    let mut argon2_hash = [0u8; 32];
    let params = argon2::Params::new(8, 1, 1, Some(32)).expect("argon2 params");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(PASSWORD.as_bytes(), salt.as_bytes(), &mut argon2_hash)
        .expect("argon2");
    let argon2 = format!(
        "argon2$argon2id$v=19$m=8,t=1,p=1${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(argon2_hash)
    );

    let mut scrypt_hash = [0u8; 64];
    scrypt::scrypt(
        PASSWORD.as_bytes(),
        salt.as_bytes(),
        &scrypt::Params::new(4, 1, 1, 64).expect("params"),
        &mut scrypt_hash,
    )
    .expect("scrypt");
    let scrypt = format!("scrypt$16${salt}$1$1${}", STANDARD.encode(scrypt_hash));

    let bcrypt_plain = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    let sha256_hex = hex::encode(sha2::Sha256::digest(PASSWORD.as_bytes()));
    let bcrypt_sha256 = bcrypt::hash(sha256_hex, 4).expect("bcrypt");

    let hashes = vec![
        make_password(PASSWORD, &hasher_config()),
        format!("pbkdf2_sha1$1000${salt}${}", pbkdf2_sha1(salt)),
        argon2,
        scrypt,
        format!("bcrypt${bcrypt_plain}"),
        format!("bcrypt_sha256${bcrypt_sha256}"),
        format!("md5${salt}${}", md5(&format!("{salt}{PASSWORD}"))),
        format!("sha1${salt}${}", sha1(&format!("{salt}{PASSWORD}"))),
        md5(PASSWORD),
        format!("sha1$${}", sha1(PASSWORD)),
    ];
    for encoded in &hashes {
        let verified = verify(PASSWORD, encoded, &hasher_config()).unwrap_or_else(|e| panic!("{encoded}: {e}"));
        assert!(verified.valid, "{encoded} does not verify its own password");
    }
    hashes
}

fn pbkdf2_sha1(salt: &str) -> String {
    let mut out = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(PASSWORD.as_bytes(), salt.as_bytes(), 1_000, &mut out);
    STANDARD.encode(out)
}

/// One edit of a string. Inserted and replacing characters are never ASCII digits: a mutation
/// may break a cost parameter but never raise it (a bcrypt cost of 19 would take a minute).
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let character = prop_oneof![
        prop::sample::select(vec!['$', '=', ',', '+', '/', '.', 'a', 'Z', '_', '-', ' ', '\0', '☃', 'é']),
        any::<char>().prop_filter("not a digit", |c| !c.is_ascii_digit()),
    ];
    prop_oneof![
        (any::<usize>(), character.clone()).prop_map(|(at, c)| Mutation::Replace(at, c)),
        (any::<usize>(), character).prop_map(|(at, c)| Mutation::Insert(at, c)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(original: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = original.chars().collect();
    for mutation in mutations {
        match *mutation {
            Mutation::Replace(at, c) if !chars.is_empty() => {
                let at = at % chars.len();
                chars[at] = c;
            }
            Mutation::Insert(at, c) => chars.insert(at % (chars.len() + 1), c),
            Mutation::Delete(at) if !chars.is_empty() => {
                chars.remove(at % chars.len());
            }
            Mutation::Truncate(at) => chars.truncate(at % (chars.len() + 1)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(budget(512))]

    /// Arbitrary text in `auth_user.password` is refused, never a panic.
    #[test]
    fn arbitrary_stored_hashes_never_verify(encoded in "\\PC{0,200}", password in "\\PC{0,40}") {
        let outcome = verify(&password, &encoded, &hasher_config());
        prop_assert!(!outcome.is_ok_and(|v| v.valid), "{encoded:?} verified {password:?}");
    }

    /// An algorithm name with an arbitrary (digit-free, so cheap) rest.
    #[test]
    fn arbitrary_hashes_of_known_formats_never_verify(
        algorithm in prop::sample::select(vec!["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt", "bcrypt_sha256", "scrypt", "md5", "sha1", "unsalted_md5", "unsalted_sha1", "!"]),
        rest in "[^0-9]{0,120}",
        password in "\\PC{0,40}",
    ) {
        let encoded = format!("{algorithm}${rest}");
        let outcome = verify(&password, &encoded, &hasher_config());
        prop_assert!(!outcome.is_ok_and(|v| v.valid), "{encoded:?} verified {password:?}");
    }
}

proptest! {
    #![proptest_config(budget(256))]

    /// A real hash, edited: never a panic, and never a match for a wrong password. (With the
    /// right password an edit may still verify, as Django's does: bcrypt ignores some bits.)
    #[test]
    fn mutated_hashes_never_verify_a_wrong_password(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(mutation(), 1..4),
        wrong in "\\PC{0,40}",
    ) {
        let hashes = cheap_hashes_cached();
        let original = which.get(hashes);
        let mutated = apply(original, &edits);
        let _ = verify(PASSWORD, &mutated, &hasher_config());
        prop_assume!(wrong != PASSWORD);
        let outcome = verify(&wrong, &mutated, &hasher_config());
        prop_assert!(!outcome.is_ok_and(|v| v.valid), "{mutated:?} verified the wrong password {wrong:?}");
        let outcome = verify(&wrong, original, &hasher_config());
        prop_assert!(!outcome.is_ok_and(|v| v.valid), "{original:?} verified the wrong password {wrong:?}");
    }
}

fn cheap_hashes_cached() -> &'static [String] {
    static HASHES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    HASHES.get_or_init(cheap_hashes)
}

#[test]
fn every_cheap_hash_format_verifies() {
    assert_eq!(cheap_hashes().len(), 10);
}

/// A running server with a user, a valid access token for it, and the server's own verifier.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
    token: String,
    tokens: Tokens,
    client: reqwest::Client,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (app, token) = runtime.block_on(async {
            let app = spawn_app_with(TestDb::sqlite(), &[]).await;
            app.create_user("fuzz-user", "a long enough password 1").await;
            let token = app.login("fuzz-user", "a long enough password 1").await;
            (app, token)
        });
        let tokens = Tokens::new(app.keys(), app.settings.claims.clone());
        tokens.verify(&token).expect("the fresh token verifies");
        Fixture { runtime, app, token, tokens, client: reqwest::Client::new() }
    })
}

impl Fixture {
    /// The webhook's answer (status, body) to `request`.
    fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        self.runtime.block_on(async {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        })
    }
}

proptest! {
    #![proptest_config(budget(512))]

    /// Arbitrary text as a token: refused, never a panic.
    #[test]
    fn arbitrary_tokens_are_refused(token in "\\PC{0,300}") {
        prop_assert!(fixture().tokens.verify(&token).is_err());
    }

    /// A real token with any edit (in the header, the claims or the signature) is refused.
    #[test]
    fn tampered_tokens_are_refused(edits in prop::collection::vec(mutation(), 1..4)) {
        let fixture = fixture();
        let tampered = apply(&fixture.token, &edits);
        prop_assume!(tampered != fixture.token);
        prop_assert!(fixture.tokens.verify(&tampered).is_err(), "accepted {tampered:?}");
    }

    /// Claims re-encoded with other values but the original signature are refused.
    #[test]
    fn re_signed_claims_are_refused(claims in prop::collection::btree_map("[a-z_-]{1,12}", "\\PC{0,20}", 0..6)) {
        let fixture = fixture();
        let mut parts = fixture.token.splitn(3, '.');
        let (header, _, signature) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let forged = format!("{header}.{payload}.{signature}");
        prop_assert!(fixture.tokens.verify(&forged).is_err());
    }
}

proptest! {
    #![proptest_config(budget(128))]

    /// Any Authorization header at the webhook (GET mode): allow or deny, never a server error;
    /// a blank one is no credential (the anonymous role), anything else denies.
    #[test]
    fn webhook_get_authorization_headers(value in "[ -~]{0,200}", prefix in prop::sample::select(vec!["", "Bearer ", "bearer  ", "Basic "])) {
        let fixture = fixture();
        let header = format!("{prefix}{value}");
        let request = fixture.client.get(fixture.app.url("/webhook/webhook")).header("authorization", header.as_str());
        let (status, body) = fixture.send(request);
        let forwarded = serde_json::Map::from_iter([("Authorization".to_owned(), serde_json::Value::from(header.as_str()))]);
        prop_assert_eq!(status, expected_webhook_status(fixture, &forwarded), "{:?} -> {}", header, body);
    }

    /// Arbitrary bytes as the webhook's POST body: 200 or 401, never anything else.
    #[test]
    fn webhook_post_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let fixture = fixture();
        let request = fixture.client.post(fixture.app.url("/webhook/webhook")).body(body);
        let (status, text) = fixture.send(request);
        prop_assert_eq!(status, 401, "{}", text);
    }

    /// Arbitrary JSON shaped like Hasura's (headers with any names and values, any request),
    /// with the real token sometimes among the headers: exactly Hasura's contract decides.
    #[test]
    fn webhook_post_arbitrary_json(
        headers in prop::collection::btree_map("[A-Za-z-]{1,20}", json_value(), 0..6),
        request in json_value(),
        with_token in any::<bool>(),
    ) {
        let fixture = fixture();
        let mut headers: serde_json::Map<String, serde_json::Value> = headers.into_iter().collect();
        if with_token {
            headers.retain(|name, _| !name.eq_ignore_ascii_case("authorization") && !name.eq_ignore_ascii_case("x-hasura-role"));
            headers.insert("Authorization".into(), format!("Bearer {}", fixture.token).into());
        }
        let body = serde_json::json!({ "headers": headers, "request": request });
        let (status, text) = fixture.send(fixture.client.post(fixture.app.url("/webhook/webhook")).json(&body));
        prop_assert_eq!(status, expected_webhook_status(fixture, &headers), "{:?} -> {}", body, text);
    }
}

/// What Hasura's contract asks of the webhook for these forwarded headers: the real token
/// allows; any other credential (or a value that is not a string) denies; no credential is the
/// anonymous role when that is on and no other role is asked for.
fn expected_webhook_status(fixture: &Fixture, headers: &serde_json::Map<String, serde_json::Value>) -> u16 {
    let header = |name: &str| {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str().unwrap_or("\0").trim())
    };
    match header("authorization").filter(|a| !a.is_empty()) {
        Some(authorization) if authorization == format!("Bearer {}", fixture.token) => 200,
        Some(_) => 401,
        None => {
            let anonymous = &fixture.tokens.settings().roles.anonymous_role;
            let role = header("x-hasura-role").filter(|r| !r.is_empty());
            if fixture.app.settings.hasura.allow_anonymous && role.is_none_or(|r| r == anonymous) { 200 } else { 401 }
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        "\\PC{0,30}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
