//! Tokens and the webhook, in process: building an access token's claims, signing and
//! verifying per algorithm (RS256, ES256, EdDSA), and Hasura's auth hook decision through the
//! real router (GET and POST modes, and the anonymous path) without the network.
//!
//! `cargo bench --bench tokens`. The webhook figure is the work a valid-token request costs
//! beyond HTTP; `scripts/bench.sh` measures it over loopback against `/healthz`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse::accounts::{NewUser, Password};
use gatehouse::django::validators::Username;
use gatehouse::sessions::{ClientInfo, SessionKind};
use gatehouse::settings::{GlobalArgs, Settings};
use gatehouse::startup::Application;
use gatehouse::tokens::{SigningAlg, Subject, Tokens};
use tower::ServiceExt;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    global: GlobalArgs,
}

/// Settings as `gatehouse serve` builds them, on a fresh SQLite file and data directory.
fn settings(dir: &std::path::Path, alg: &str) -> Settings {
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let data_dir = dir.join("data").display().to_string();
    let argv = [
        "gatehouse",
        "--database-url",
        &url,
        "--data-dir",
        &data_dir,
        "--jwt-alg",
        alg,
        "--pbkdf2-iterations",
        "1000",
        "--allow-anonymous",
        "true",
        "--public-url",
        "http://gatehouse.bench",
    ];
    Settings::from_args(&Flags::parse_from(argv).global).expect("bench settings")
}

const ALGORITHMS: [(SigningAlg, &str); 3] =
    [(SigningAlg::Rs256, "RS256"), (SigningAlg::Es256, "ES256"), (SigningAlg::EdDsa, "EdDSA")];

/// A migrated application with one user and one live session, and that session's token.
struct Fixture {
    app: Application,
    tokens: Tokens,
    user: gatehouse::db::UserRow,
    session_id: String,
    token: String,
    _dir: tempfile::TempDir,
}

fn fixture(runtime: &tokio::runtime::Runtime, alg: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = settings(dir.path(), alg);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = Application::build_on(&settings, listener).await.expect("build application");
        let state = app.state().clone();
        let username = Username::parse("bench-user").expect("username");
        let new_user = NewUser::new(username, Some(Password::new("a long bench password".to_owned())));
        let user = state.accounts.create_user(new_user).await.expect("create user");
        let session = state.sessions.start(&user, &ClientInfo::default(), SessionKind::Api).await.expect("session");
        let token = state.tokens.issue(&user, &[], &session.session_id, session.expires_in).expect("token").token;
        Fixture { tokens: state.tokens.clone(), app, user, session_id: session.session_id, token, _dir: dir }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn claims_sign_verify(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("tokens");
    for (index, (alg, name)) in ALGORITHMS.into_iter().enumerate() {
        let f = fixture(&runtime, name);
        assert_eq!(f.tokens.keys().alg(), alg);
        let subject = Subject { user: &f.user, groups: &[], session_id: &f.session_id, session_expires_in: 86_400 };
        if index == 0 {
            group.bench_function("claims", |b| b.iter(|| f.tokens.draft(&subject, None)));
        }
        group.bench_function(BenchmarkId::new("sign", name), |b| {
            b.iter(|| f.tokens.sign(f.tokens.draft(&subject, None)).expect("sign"))
        });
        group.bench_function(BenchmarkId::new("verify", name), |b| {
            b.iter(|| f.tokens.verify_for_uncached(&f.token, &[]).expect("verify"))
        });
        group.bench_function(BenchmarkId::new("verify (seen before)", name), |b| {
            b.iter(|| f.tokens.verify(&f.token).expect("verify"))
        });
    }
    group.finish();
}

fn webhook(c: &mut Criterion) {
    let runtime = runtime();
    let f = fixture(&runtime, "RS256");
    let router = gatehouse::http::router(f.app.state().clone());
    let bearer = format!("Bearer {}", f.token);
    let post_body = serde_json::json!({ "headers": { "Authorization": bearer }, "request": null }).to_string();
    let call = |request: Request<Body>| {
        let response = runtime.block_on(router.clone().oneshot(request)).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    };
    let mut group = c.benchmark_group("webhook");
    group.bench_function("GET valid token", |b| {
        b.iter(|| {
            call(Request::get("/webhook/webhook").header(header::AUTHORIZATION, &bearer).body(Body::empty()).unwrap())
        })
    });
    group.bench_function("POST valid token", |b| {
        b.iter(|| {
            let request = Request::post("/webhook/webhook")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(post_body.clone()))
                .unwrap();
            call(request)
        })
    });
    group.bench_function("GET anonymous", |b| {
        b.iter(|| call(Request::get("/webhook/webhook").body(Body::empty()).unwrap()))
    });
    group.bench_function("GET /healthz", |b| b.iter(|| call(Request::get("/healthz").body(Body::empty()).unwrap())));
    group.finish();
}

criterion_group!(benches, claims_sign_verify, webhook);
criterion_main!(benches);
