//! The OpenID Connect provider at `/oidc`. So far: its applications (clients), with their types,
//! redirect URIs, hashed secrets and machine roles; and, not yet routed, the code flow's cryptography and
//! the discovery document.

pub mod applications;
pub mod crypto;
pub mod discovery;

pub use self::applications::{AppType, Application, Applications, CreatedApplication, NewApplication, RedirectUri};
