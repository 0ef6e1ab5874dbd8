//! Applications, Logto's four client types: `spa` and `native` (public: no secret, PKCE
//! required), `web` (confidential: `client_secret_basic` or `client_secret_post`) and `machine`
//! (client credentials only, holding machine roles). Secrets are 256 random bits, shown once and
//! stored as SHA-256 digests.

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::{ApplicationRow, Db, DjangoTime, RoleRow};
use crate::rbac::{RbacError, RoleType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    Spa,
    Native,
    Web,
    Machine,
}

impl AppType {
    /// Also accepts Logto's names (`SPA`, `Native`, `Traditional`, `MachineToMachine`).
    pub fn parse(text: &str) -> Result<AppType, String> {
        match text {
            "spa" | "SPA" => Ok(AppType::Spa),
            "native" | "Native" => Ok(AppType::Native),
            "web" | "Traditional" => Ok(AppType::Web),
            "machine" | "MachineToMachine" => Ok(AppType::Machine),
            _ => Err("An application type is spa, native, web or machine.".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Spa => "spa",
            AppType::Native => "native",
            AppType::Web => "web",
            AppType::Machine => "machine",
        }
    }

    /// Confidential clients authenticate with a secret; public ones cannot keep one.
    pub fn has_secret(self) -> bool {
        matches!(self, AppType::Web | AppType::Machine)
    }
}

/// A redirect URI, matched exactly: an absolute URI without fragment (RFC 6749 §3.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(text: &str) -> Result<RedirectUri, String> {
        let valid = text.len() <= 2048
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
            && url::Url::parse(text).is_ok_and(|url| url.fragment().is_none() && !url.cannot_be_a_base());
        if !valid {
            return Err("A redirect URI is an absolute URI without a fragment, at most 2048 characters.".into());
        }
        Ok(RedirectUri(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug)]
pub struct NewApplication {
    pub name: String,
    pub app_type: AppType,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub is_third_party: bool,
}

/// An application as the admin API shows it; the secret never appears here.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub app_type: AppType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub is_third_party: bool,
    pub created_at: String,
}

/// A new application with its secret, which is shown this once.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApplication {
    #[serde(flatten)]
    pub application: Application,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn uri_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn json_list(uris: &[RedirectUri]) -> String {
    serde_json::to_string(&uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>()).expect("strings serialize")
}

impl TryFrom<ApplicationRow> for Application {
    type Error = RbacError;

    fn try_from(row: ApplicationRow) -> Result<Self, RbacError> {
        Ok(Application {
            app_type: AppType::parse(&row.app_type).map_err(|m| RbacError::invalid("type", m))?,
            redirect_uris: uri_list(&row.redirect_uris),
            post_logout_redirect_uris: uri_list(&row.post_logout_redirect_uris),
            created_at: row.created_at.0.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            id: row.id,
            name: row.name,
            is_third_party: row.is_third_party,
        })
    }
}

fn random_alphanumeric(len: usize) -> String {
    rand::rngs::OsRng.sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// 21 characters of `[a-z0-9]`, each uniformly drawn: about 108 bits.
fn random_client_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..21).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect()
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(Clone, Debug)]
pub struct Applications {
    db: Db,
}

impl Applications {
    pub fn new(db: Db) -> Applications {
        Applications { db }
    }

    pub async fn create(&self, new: &NewApplication) -> Result<CreatedApplication, RbacError> {
        if new.app_type == AppType::Machine
            && !(new.redirect_uris.is_empty() && new.post_logout_redirect_uris.is_empty())
        {
            return Err(RbacError::invalid("redirectUris", "A machine application has no redirect URIs."));
        }
        let secret = new.app_type.has_secret().then(|| random_alphanumeric(43));
        let row = ApplicationRow {
            id: random_client_id(),
            name: new.name.clone(),
            app_type: new.app_type.as_str().to_owned(),
            secret_digest: secret.as_deref().map(digest),
            redirect_uris: json_list(&new.redirect_uris),
            post_logout_redirect_uris: json_list(&new.post_logout_redirect_uris),
            is_third_party: new.is_third_party,
            created_at: DjangoTime::now(),
        };
        self.db.insert_application(&row).await?;
        Ok(CreatedApplication { application: row.try_into()?, secret })
    }

    pub async fn list(&self) -> Result<Vec<Application>, RbacError> {
        self.db.applications().await?.into_iter().map(Application::try_from).collect()
    }

    pub async fn get(&self, id: &str) -> Result<Application, RbacError> {
        self.row(id).await?.try_into()
    }

    async fn row(&self, id: &str) -> Result<ApplicationRow, RbacError> {
        self.db.application(id).await?.ok_or(RbacError::NotFound("application"))
    }

    /// Changes the name and redirect URIs that are given.
    pub async fn update(
        &self,
        id: &str,
        name: Option<String>,
        redirect_uris: Option<Vec<RedirectUri>>,
        post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    ) -> Result<Application, RbacError> {
        let mut row = self.row(id).await?;
        let adds_uris = redirect_uris.as_ref().is_some_and(|u| !u.is_empty())
            || post_logout_redirect_uris.as_ref().is_some_and(|u| !u.is_empty());
        if row.app_type == AppType::Machine.as_str() && adds_uris {
            return Err(RbacError::invalid("redirectUris", "A machine application has no redirect URIs."));
        }
        if let Some(name) = name {
            row.name = name;
        }
        if let Some(uris) = redirect_uris {
            row.redirect_uris = json_list(&uris);
        }
        if let Some(uris) = post_logout_redirect_uris {
            row.post_logout_redirect_uris = json_list(&uris);
        }
        if !self.db.update_application(&row).await? {
            return Err(RbacError::NotFound("application"));
        }
        row.try_into()
    }

    /// A new secret for a confidential application; the old one stops working at once.
    pub async fn rotate_secret(&self, id: &str) -> Result<String, RbacError> {
        let app = self.get(id).await?;
        if !app.app_type.has_secret() {
            return Err(RbacError::Conflict(format!(
                "A {} application is public: it has no secret.",
                app.app_type.as_str()
            )));
        }
        let secret = random_alphanumeric(43);
        if !self.db.set_application_secret(id, &digest(&secret)).await? {
            return Err(RbacError::NotFound("application"));
        }
        Ok(secret)
    }

    pub async fn delete(&self, id: &str) -> Result<(), RbacError> {
        if self.db.delete_application(id).await? { Ok(()) } else { Err(RbacError::NotFound("application")) }
    }

    /// The application when `secret` is its secret (compared in constant time).
    pub async fn authenticate(&self, id: &str, secret: &str) -> Result<Option<Application>, RbacError> {
        let Some(row) = self.db.application(id).await? else { return Ok(None) };
        let matches =
            row.secret_digest.as_deref().is_some_and(|d| bool::from(d.as_bytes().ct_eq(digest(secret).as_bytes())));
        if matches { Ok(Some(row.try_into()?)) } else { Ok(None) }
    }

    pub async fn roles(&self, id: &str) -> Result<Vec<RoleRow>, RbacError> {
        self.row(id).await?;
        Ok(self.db.application_roles(id).await?)
    }

    /// Gives machine roles to a machine application.
    pub async fn add_roles(&self, id: &str, role_ids: &[i32]) -> Result<(), RbacError> {
        let app = self.get(id).await?;
        if app.app_type != AppType::Machine {
            return Err(RbacError::invalid("roleIds", "Only machine applications hold roles."));
        }
        for role_id in role_ids {
            match self.db.role(*role_id).await? {
                Some(role) if role.role_type == RoleType::Machine.as_str() => {}
                Some(_) => return Err(RbacError::invalid("roleIds", format!("Role {role_id} is a user role."))),
                None => return Err(RbacError::invalid("roleIds", format!("There is no role with id {role_id}."))),
            }
        }
        Ok(self.db.add_application_roles(id, role_ids).await?)
    }

    pub async fn remove_role(&self, id: &str, role_id: i32) -> Result<(), RbacError> {
        self.row(id).await?;
        let removed = self.db.remove_application_role(id, role_id).await?;
        if removed { Ok(()) } else { Err(RbacError::NotFound("role of this application")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_take_ours_and_logtos_names() {
        assert_eq!(AppType::parse("Traditional"), Ok(AppType::Web));
        assert_eq!(AppType::parse("MachineToMachine"), Ok(AppType::Machine));
        assert!(AppType::parse("desktop").is_err());
        assert!(AppType::Web.has_secret() && !AppType::Spa.has_secret() && !AppType::Native.has_secret());
    }

    #[test]
    fn redirect_uris_are_absolute_without_fragments() {
        assert!(RedirectUri::parse("https://app.example/callback").is_ok());
        assert!(RedirectUri::parse("http://localhost:3000/cb?x=1").is_ok());
        assert!(RedirectUri::parse("io.example.app://callback").is_ok());
        for bad in ["/callback", "https://app.example/cb#x", "https://app.example/a b", "mailto:x@y", ""] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }
}
