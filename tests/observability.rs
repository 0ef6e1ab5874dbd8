//! Request ids, `/metrics`, request logs, and how the server treats slow clients and shutdown,
//! over real HTTP and raw TCP against the real server on an ephemeral port.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestApp, TestDb, insert_user_with_hash, spawn_app, spawn_app_with, spawn_app_with_settings};
use gatehouse::startup::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "a long passphrase";

fn request_id(response: &reqwest::Response) -> String {
    response.headers().get("x-request-id").expect("X-Request-Id on every answer").to_str().unwrap().to_owned()
}

fn is_generated(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_made_or_echoed() {
    let app = spawn_app(TestDb::sqlite()).await;
    let client = reqwest::Client::new();

    let made = client.get(app.url("/healthz")).send().await.unwrap();
    assert!(is_generated(&request_id(&made)), "{}", request_id(&made));
    let other = client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(request_id(&made), request_id(&other), "each request gets its own");

    let echoed = client.get(app.url("/healthz")).header("X-Request-Id", "edge-7f3a:42").send().await.unwrap();
    assert_eq!(request_id(&echoed), "edge-7f3a:42");

    for insane in ["has spaces in it", &"x".repeat(129), "tab\there"] {
        let replaced = client.get(app.url("/healthz")).header("X-Request-Id", insane).send().await.unwrap();
        assert!(is_generated(&request_id(&replaced)), "{insane:?} replaced by {}", request_id(&replaced));
    }
    let two = client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "first")
        .header("X-Request-Id", "second")
        .send()
        .await
        .unwrap();
    assert!(is_generated(&request_id(&two)), "two ids are one too many");

    // Errors, unknown paths and the OIDC provider's HTML pages too.
    let bad_login = client
        .post(app.url("/webhook/login"))
        .header("X-Request-Id", "bad-login")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), StatusCode::BAD_REQUEST);
    assert_eq!(request_id(&bad_login), "bad-login");
    let unknown = client.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(is_generated(&request_id(&unknown)));
    let page = client.get(app.url("/oidc/auth?client_id=nobody")).send().await.unwrap();
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(is_generated(&request_id(&page)));
}

/// The value of one sample in OpenMetrics text, by metric name and exact label set.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let found: BTreeMap<&str, &str> = label_text
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, quoted) = pair.split_once('=')?;
                Some((key, quoted.trim_matches('"')))
            })
            .collect();
        (metric == name && found == wanted).then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(app: &TestApp) -> String {
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    response.text().await.unwrap()
}

async fn metrics_count_what_happened(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("alice", PASSWORD).await;
    let before = scrape(&app).await;
    assert_eq!(sample(&before, "gatehouse_password_hashes_total", &[]), Some(0.0));
    assert_eq!(sample(&before, "gatehouse_password_hash_queue_waiting", &[]), Some(0.0));
    assert_eq!(sample(&before, "gatehouse_password_hashes_in_progress", &[]), Some(0.0));

    let failed = app.post_json("/webhook/login", &json!({"username": "alice", "password": "wrong"})).await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let signed_in = app.post_json("/webhook/login", &json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let body: Value = signed_in.json().await.unwrap();
    let refresh = app.post_json("/webhook/refresh", &json!({"refresh_token": body["refresh_token"]})).await;
    assert_eq!(refresh.status(), StatusCode::OK);
    let token = body["token"].as_str().unwrap();
    for _ in 0..2 {
        let hook = reqwest::Client::new().get(app.url("/webhook/webhook")).bearer_auth(token).send().await.unwrap();
        assert_eq!(hook.status(), StatusCode::OK);
    }
    let deleted = reqwest::Client::new()
        .delete(app.url("/webhook/sessions/some-raw-session-id"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let deleted_status = deleted.status().as_u16().to_string();
    assert_eq!(reqwest::get(app.url("/no/such/page/123")).await.unwrap().status(), StatusCode::NOT_FOUND);

    let text = scrape(&app).await;
    let outcome = |outcome| sample(&text, "gatehouse_sign_ins_total", &[("outcome", outcome)]);
    assert_eq!(outcome("failure"), Some(1.0));
    assert_eq!(outcome("success"), Some(1.0));
    assert_eq!(outcome("rate_limited"), None, "no series until it happens");

    // One verification per login; the user was made outside the server.
    assert_eq!(sample(&text, "gatehouse_password_hashes_total", &[]), Some(2.0));
    assert_eq!(sample(&text, "gatehouse_password_hash_wait_seconds_count", &[]), Some(2.0));
    assert_eq!(sample(&text, "gatehouse_password_hashes_in_progress", &[]), Some(0.0));

    let requests = |method, route, status| {
        sample(&text, "gatehouse_http_requests_total", &[("method", method), ("route", route), ("status", status)])
    };
    assert_eq!(requests("POST", "/webhook/login", "401"), Some(1.0));
    assert_eq!(requests("POST", "/webhook/login", "200"), Some(1.0));
    assert_eq!(requests("GET", "/webhook/webhook", "200"), Some(2.0));
    assert_eq!(requests("DELETE", "/webhook/sessions/{id}", &deleted_status), Some(1.0), "the route template");
    assert_eq!(requests("GET", "unmatched", "404"), Some(1.0));
    assert!(!text.contains("some-raw-session-id") && !text.contains("/no/such/page"), "no raw path is a label");
    let login_latency = sample(
        &text,
        "gatehouse_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/webhook/login"), ("status", "200")],
    );
    assert_eq!(login_latency, Some(1.0));

    let issued = |kind, alg| sample(&text, "gatehouse_tokens_issued_total", &[("kind", kind), ("alg", alg)]);
    assert_eq!(issued("access", "RS256"), Some(2.0), "login and refresh");
    assert_eq!(issued("refresh", "opaque"), Some(2.0), "the session's first token and its rotation");

    let lookups = |result| sample(&text, "gatehouse_session_cache_lookups_total", &[("result", result)]).unwrap_or(0.0);
    assert!(lookups("miss") >= 1.0, "the first webhook call asked the database");
    assert!(lookups("hit") + lookups("miss") >= 2.0, "every webhook call looked in the cache");
}

on_both_backends!(metrics_count_requests_sign_ins_hashes_and_tokens, super::metrics_count_what_happened);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_sign_in_is_counted_as_such() {
    let app = spawn_app_with(TestDb::sqlite(), &["--login-max-failures", "1"]).await;
    for expected in [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS] {
        let response = app.post_json("/webhook/login", &json!({"username": "nobody", "password": "wrong"})).await;
        assert_eq!(response.status(), expected);
    }
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "gatehouse_sign_ins_total", &[("outcome", "failure")]), Some(1.0));
    assert_eq!(sample(&text, "gatehouse_sign_ins_total", &[("outcome", "rate_limited")]), Some(1.0));
    assert_eq!(sample(&text, "gatehouse_password_hashes_total", &[]), Some(1.0), "a fake hash for the unknown user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_guards_the_metrics() {
    use sha2::Digest;
    let db = TestDb::sqlite();
    let mut settings = db.settings(&[]);
    let token = "a-metrics-token-for-prometheus";
    settings.http.server.metrics_token_digest = Some(sha2::Sha256::digest(token).into());
    let app = spawn_app_with_settings(db, settings).await;
    let client = reqwest::Client::new();
    let refused = client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["type"], "Unauthorized");
    let wrong = client.get(app.url("/metrics")).bearer_auth("not-the-metrics-token").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let allowed = client.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(allowed.text().await.unwrap().contains("gatehouse_http_requests_total"));
}

/// Reads until the server closes the connection (or `limit` passes); what it sent first.
async fn read_until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected_while_others_are_served() {
    let app = spawn_app_with(TestDb::sqlite(), &["--header-timeout", "1"]).await;
    let stream = TcpStream::connect(app.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: gatehouse.test\r\n").await.unwrap();
    let trickle = tokio::spawn(async move {
        // One header line every 200 ms: each write is progress, none completes the headers.
        for n in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(format!("X-Slow-{n}: y\r\n").as_bytes()).await.is_err() {
                return n;
            }
        }
        100
    });
    // Meanwhile a normal client on another connection is answered.
    let normal = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(normal.status(), StatusCode::OK);

    let answer = read_until_closed(&mut reader, Duration::from_secs(15)).await;
    let answer = answer.expect("the slow client was disconnected");
    assert!(!answer.contains("200 OK"), "never served: {answer:?}");
    trickle.abort();

    // An idle keep-alive connection is closed too, after the same time.
    let stream = TcpStream::connect(app.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut reader, Duration::from_secs(15)).await.expect("idle connection closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

/// Sends a POST to /webhook/login with a declared length and the first bytes of the body,
/// then `trickle` more bytes, one per interval; returns what the server answered.
async fn slow_upload(app: &TestApp, interval: Duration) -> String {
    let stream = TcpStream::connect(app.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /webhook/login HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/json\r\n\
                X-Request-Id: slow-upload\r\nContent-Length: 1000\r\n\r\n{\"username\": ";
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(interval).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let answer = read_until_closed(&mut reader, Duration::from_secs(20)).await.expect("the upload was cut");
    trickle.abort();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_are_cut_with_a_json_error() {
    let app =
        spawn_app_with(TestDb::sqlite(), &["--body-timeout", "1", "--request-timeout", "3", "--header-timeout", "2"])
            .await;
    // Stalled: nothing more arrives.
    let stalled = slow_upload(&app, Duration::from_secs(60)).await;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled:?}");
    assert!(
        stalled.contains("\"RequestTimeout\"") && stalled.to_ascii_lowercase().contains("x-request-id: slow-upload")
    );
    // Trickled: always some progress, but the whole request has a deadline.
    let trickled = slow_upload(&app, Duration::from_millis(200)).await;
    assert!(trickled.starts_with("HTTP/1.1 503"), "{trickled:?}");
    assert!(trickled.contains("\"Timeout\""), "{trickled:?}");
    // A body larger than the route takes is refused after its first 16 KiB, the rest unread.
    let stream = TcpStream::connect(app.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /webhook/login HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/json\r\n\
                Content-Length: 2097152\r\n\r\n";
    writer.write_all(head.as_bytes()).await.unwrap();
    writer.write_all(&[b' '; 20 * 1024]).await.unwrap();
    let refused = read_until_closed(&mut reader, Duration::from_secs(20)).await.expect("refused");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused:?}");
    assert!(refused.contains("larger than 16384 bytes"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_login_in_flight_then_stops() {
    use gatehouse::django::hashers::{HasherConfig, make_password};
    // A hash expensive enough to still be running when shutdown begins.
    let iterations = 2_000_000;
    let db = TestDb::sqlite();
    let settings = db.settings(&["--pbkdf2-iterations", &iterations.to_string()]);
    let app = Application::build(&settings).await.unwrap();
    let address = app.local_addr().unwrap();
    let hashing = app.state().accounts.hashing().clone();
    let hash = make_password(PASSWORD, &HasherConfig { pbkdf2_iterations: iterations });
    insert_user_with_hash(&db.connect().await, "alice", &hash).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let login = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{address}/webhook/login"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
    });
    let started = async {
        while hashing.metrics().in_progress.get() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), started).await.expect("the login's hash started");
    stop.send(()).unwrap();

    let answered = login.await.unwrap().expect("the login in flight was answered");
    assert_eq!(answered.status(), StatusCode::OK);
    let body: Value = answered.json().await.unwrap();
    assert!(body["token"].is_string());
    tokio::time::timeout(Duration::from_secs(30), server).await.expect("the server stopped").unwrap().unwrap();
    assert!(TcpStream::connect(address).await.is_err(), "no longer listening");
}

/// Collects what the JSON log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_request_and_never_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    gatehouse::telemetry::init_with_writer(gatehouse::settings::LogFormat::Json, "info", move || writer.clone());
    // Stored with fewer iterations than the server wants: the login upgrades the hash and logs it.
    let app = spawn_app_with(TestDb::sqlite(), &["--pbkdf2-iterations", "1001"]).await;
    app.create_user("alice", PASSWORD).await;
    let login = reqwest::Client::new()
        .post(app.url("/webhook/login?code=query-secret"))
        .header("X-Request-Id", "log-test-login")
        .header("Cookie", "session=cookie-secret")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let body: Value = login.json().await.unwrap();
    let (access, refresh) = (body["token"].as_str().unwrap(), body["refresh_token"].as_str().unwrap());
    let hook = reqwest::Client::new()
        .get(app.url("/webhook/webhook"))
        .header("X-Request-Id", "log-test-hook")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), StatusCode::OK);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let of = |id: &str| lines.iter().filter(|line| line["span"]["request_id"] == id).cloned().collect::<Vec<_>>();
    let login_lines = of("log-test-login");
    assert!(
        login_lines.iter().any(|line| line["message"] == "upgraded the stored password hash"),
        "a line from inside the handler carries the request id: {login_lines:?}"
    );
    let answered = login_lines.iter().find(|line| line["message"] == "answered").expect("one line per request");
    assert_eq!(answered["status"], 200);
    assert_eq!(answered["span"]["route"], "/webhook/login");
    assert_eq!(answered["span"]["method"], "POST");
    assert!(answered["latency_ms"].is_u64());
    let hook_lines = of("log-test-hook");
    assert_eq!(hook_lines.iter().filter(|line| line["message"] == "answered").count(), 1);
    for secret in [PASSWORD, access, refresh, "query-secret", "cookie-secret"] {
        assert!(!text.contains(secret), "{secret:?} leaked into the logs");
    }
}
