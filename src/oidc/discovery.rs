//! The discovery document (`/oidc/.well-known/openid-configuration`), built from the issuer and
//! the algorithms really in use. The paths are Logto's (node-oidc-provider's defaults), which the
//! Logto SDK and issuer-based clients find the same way.

use serde_json::{Value, json};

use crate::tokens::SigningAlg;

/// The provider's paths below the issuer (`<public URL>/oidc`).
pub const AUTHORIZATION_PATH: &str = "/auth";
pub const TOKEN_PATH: &str = "/token";
pub const JWKS_PATH: &str = "/jwks";
pub const USERINFO_PATH: &str = "/me";
pub const END_SESSION_PATH: &str = "/session/end";
pub const INTROSPECTION_PATH: &str = "/token/introspection";
pub const REVOCATION_PATH: &str = "/token/revocation";

/// The OIDC scopes the provider understands beside the API resources' own scopes.
pub const OIDC_SCOPES: [&str; 5] = ["openid", "offline_access", "profile", "email", "roles"];

/// The document for `issuer` (exactly `<public URL>/oidc`, no trailing slash: clients compare it
/// to the URL they derived it from), signing with `algs`.
pub fn document(issuer: &str, algs: &[SigningAlg], resource_scopes: &[String]) -> Value {
    let endpoint = |path: &str| format!("{issuer}{path}");
    let mut algs: Vec<&str> = algs.iter().map(|alg| alg_name(*alg)).collect();
    algs.dedup();
    let mut scopes: Vec<String> = OIDC_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    scopes.extend(resource_scopes.iter().filter(|s| !OIDC_SCOPES.contains(&s.as_str())).cloned());
    json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint(AUTHORIZATION_PATH),
        "token_endpoint": endpoint(TOKEN_PATH),
        "jwks_uri": endpoint(JWKS_PATH),
        "userinfo_endpoint": endpoint(USERINFO_PATH),
        "end_session_endpoint": endpoint(END_SESSION_PATH),
        "introspection_endpoint": endpoint(INTROSPECTION_PATH),
        "revocation_endpoint": endpoint(REVOCATION_PATH),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "scopes_supported": scopes,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
            "name", "username", "picture", "email", "email_verified", "roles",
        ],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": algs,
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}

fn alg_name(alg: SigningAlg) -> &'static str {
    match alg {
        SigningAlg::Rs256 => "RS256",
        SigningAlg::Es256 => "ES256",
        SigningAlg::EdDsa => "EdDSA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_meets_what_the_logto_sdk_and_openid_client_need() {
        let doc = document("https://auth.example/oidc", &[SigningAlg::Es256], &["read:user".into(), "openid".into()]);
        assert_eq!(doc["issuer"], "https://auth.example/oidc");
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "end_session_endpoint",
            "revocation_endpoint",
            "jwks_uri",
            "introspection_endpoint",
        ] {
            assert!(doc[field].as_str().unwrap().starts_with("https://auth.example/oidc/"), "{field}");
        }
        assert_eq!(doc["jwks_uri"], "https://auth.example/oidc/jwks");
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["ES256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        let scopes = doc["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!("read:user")) && scopes.contains(&json!("offline_access")));
        assert_eq!(scopes.iter().filter(|s| *s == "openid").count(), 1);
    }
}
