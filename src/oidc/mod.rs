//! The OpenID Connect provider at `/oidc`: its applications (clients), the discovery document,
//! the authorization-code flow with PKCE, resource indicators and client credentials
//! ([`flow`]), the hosted sign-in pages ([`pages`]) and the small cryptography they need.

pub mod applications;
pub mod crypto;
pub mod discovery;
pub mod flow;
pub mod pages;

pub use self::applications::{AppType, Application, Applications, CreatedApplication, NewApplication, RedirectUri};
pub use self::pages::Templates;

/// How the provider presents itself.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// `<public URL>/oidc`, exactly as clients derive it.
    pub issuer: String,
    /// The path of the public URL (`""` at the root), the prefix of form actions and cookie paths.
    pub public_path: String,
    /// Cookies get `Secure` when the public URL is `https:`.
    pub secure_cookies: bool,
    pub templates: Templates,
}
