//! An unreachable database: 503 with `Retry-After` everywhere (never a 500 or a 401), the
//! webhook answering from sessions it checked shortly before (stale-if-error), and recovery
//! without a restart.
//!
//! The outage is a TCP proxy between gatehouse and the shared PostgreSQL server that the test
//! cuts (its port closed, every connection through it dropped, as a restarting server does)
//! and restores; the server itself is never touched. `scripts/fault-postgres-restart.sh`
//! restarts a real, private PostgreSQL under load.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN_SECRET, TestApp, TestDb, spawn_app_at_own_url};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP proxy on a fixed local port that can be cut and restored.
struct Proxy {
    address: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Proxy { address: listener.local_addr().unwrap(), upstream, tasks: Arc::default() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes the port and drops every connection through it.
    async fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        // Until the listener is really closed, a connection could still get through.
        while TcpStream::connect(self.address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn restore(&self) {
        self.serve(TcpListener::bind(self.address).await.expect("bind the proxy's port again"));
    }
}

/// `url` with its host and port replaced by `address`.
fn through(url: &str, address: SocketAddr) -> String {
    let mut url = url::Url::parse(url).expect("database URL");
    url.set_host(Some(&address.ip().to_string())).unwrap();
    url.set_port(Some(address.port())).unwrap();
    url.to_string()
}

fn upstream_of(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("database URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host.is_empty() || host.starts_with('/') { "127.0.0.1" } else { host };
    std::net::ToSocketAddrs::to_socket_addrs(&(host, url.port().unwrap_or(5432))).unwrap().next().unwrap()
}

/// gatehouse on the shared PostgreSQL server, through a proxy the test controls.
async fn app_behind_proxy(extra: &[&str]) -> Option<(TestApp, Proxy)> {
    let db = TestDb::postgres().await?;
    let proxy = Proxy::start(upstream_of(&db.url)).await;
    let proxied = through(&db.url, proxy.address);
    let mut flags = vec!["--database-url", proxied.as_str(), "--db-acquire-timeout", "1"];
    flags.extend_from_slice(extra);
    let app = spawn_app_at_own_url(db, &flags, true).await;
    Some((app, proxy))
}

struct Tokens {
    access: String,
    refresh: String,
}

async fn sign_up(app: &TestApp, username: &str) -> Tokens {
    let response = app.post_json("/webhook/signup", &json!({"username": username, "password": PASSWORD})).await;
    assert_eq!(response.status(), 200, "sign-up of {username}");
    let body: Value = response.json().await.unwrap();
    Tokens {
        access: body["token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

const PASSWORD: &str = "an outage-proof passphrase";

async fn webhook(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new().get(app.url("/webhook/webhook")).bearer_auth(token).send().await.expect("webhook request")
}

/// 503, a numeric `Retry-After`, and the JSON error every client can read.
async fn assert_unavailable(what: &str, response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(retry_after.as_deref().is_some_and(|v| v.parse::<u64>().is_ok()), "{what}: Retry-After {retry_after:?}");
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let kind = body["errors"][0]["type"].as_str().or(body["error"].as_str()).or(body["status"].as_str());
    assert!(matches!(kind, Some("ServiceUnavailable" | "temporarily_unavailable" | "unavailable")), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_503_everywhere_and_the_server_recovers_by_itself() {
    let Some((app, proxy)) = app_behind_proxy(&[]).await else { return };
    let checked = sign_up(&app, "checked").await;
    let unchecked = sign_up(&app, "unchecked").await;
    let ended = sign_up(&app, "ended").await;
    assert_eq!(webhook(&app, &checked.access).await.status(), 200);
    assert_eq!(webhook(&app, &ended.access).await.status(), 200);
    let logout = reqwest::Client::new().post(app.url("/webhook/logout")).bearer_auth(&ended.access).send().await;
    assert_eq!(logout.unwrap().status(), 200);

    proxy.cut().await;
    // Past the liveness cache's second and the resource list's five: only stale-if-error is left.
    tokio::time::sleep(Duration::from_millis(5_500)).await;

    let allowed = webhook(&app, &checked.access).await;
    assert_eq!(allowed.status(), 200, "a session checked shortly before the outage is still accepted");
    let body: Value = allowed.json().await.unwrap();
    assert_eq!(body["X-Hasura-Role"], "user");
    assert_eq!(webhook(&app, &ended.access).await.status(), 401, "a session ended before the outage stays ended");
    assert_unavailable("webhook, session never checked", webhook(&app, &unchecked.access).await).await;

    let client = reqwest::Client::new();
    let login = app.post_json("/webhook/login", &json!({"username": "checked", "password": PASSWORD})).await;
    assert_unavailable("login", login).await;
    let signup = app.post_json("/webhook/signup", &json!({"username": "newcomer", "password": PASSWORD})).await;
    assert_unavailable("signup", signup).await;
    let refresh = app.post_json("/webhook/refresh", &json!({"refresh_token": checked.refresh})).await;
    assert_unavailable("refresh", refresh).await;
    let sessions = client.get(app.url("/webhook/sessions")).bearer_auth(&checked.access).send().await.unwrap();
    assert_unavailable("session list", sessions).await;
    let logout = client.post(app.url("/webhook/logout")).bearer_auth(&unchecked.access).send().await.unwrap();
    assert_unavailable("logout", logout).await;
    let users = client.get(app.url("/api/users")).bearer_auth(ADMIN_SECRET).send().await.unwrap();
    assert_unavailable("admin API", users).await;
    let discovery = client.get(app.url("/oidc/.well-known/openid-configuration")).send().await.unwrap();
    assert_unavailable("OIDC discovery", discovery).await;
    let token = client
        .post(app.url("/oidc/token"))
        .basic_auth("some-client", Some("some-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_unavailable("OIDC token endpoint", token).await;
    assert_unavailable("readiness", client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(client.get(app.url("/healthz")).send().await.unwrap().status(), 200, "the process is alive");

    proxy.restore().await;
    let mut recovered = false;
    for _ in 0..100 {
        let login = app.post_json("/webhook/login", &json!({"username": "checked", "password": PASSWORD})).await;
        if login.status() == 200 {
            recovered = true;
            break;
        }
        assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE, "while recovering");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "gatehouse did not recover once the database was reachable again");
    assert_eq!(webhook(&app, &unchecked.access).await.status(), 200);
    assert_eq!(webhook(&app, &ended.access).await.status(), 401);
    sign_up(&app, "newcomer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stale_if_error_the_webhook_refuses_with_503_once_its_cache_has_expired() {
    let Some((app, proxy)) = app_behind_proxy(&["--session-stale-if-error", "0"]).await else { return };
    let checked = sign_up(&app, "checked").await;
    assert_eq!(webhook(&app, &checked.access).await.status(), 200);
    proxy.cut().await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_unavailable("webhook without stale-if-error", webhook(&app, &checked.access).await).await;
}
