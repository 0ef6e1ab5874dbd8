//! The OpenID Connect provider at `/oidc`. So far: its applications (clients), with their types,
//! redirect URIs, hashed secrets and machine roles.

pub mod applications;

pub use self::applications::{AppType, Application, Applications, CreatedApplication, NewApplication, RedirectUri};
