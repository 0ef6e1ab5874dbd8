//! `gatehouse app …`: the OIDC provider's applications.

use clap::Subcommand;

use super::Failure;
use crate::oidc::{AppType, Applications, NewApplication, RedirectUri};
use crate::rbac::{Rbac, RbacError};

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Register an application; a web or machine application's secret is printed this once
    Create {
        #[arg(long)]
        name: String,
        /// spa, native, web or machine
        #[arg(long = "type", value_parser = ["spa", "native", "web", "machine"])]
        app_type: String,
        /// A redirect URI, matched exactly (repeatable)
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A post-logout redirect URI, matched exactly (repeatable)
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A third-party application: users are asked to consent
        #[arg(long)]
        third_party: bool,
    },
    /// List applications
    List,
    /// Replace a web or machine application's secret and print the new one
    RotateSecret { id: String },
    /// Delete an application
    Delete { id: String },
    /// Give machine roles to a machine application
    AddRole { id: String, roles: Vec<String> },
}

fn uris(list: &[String]) -> Result<Vec<RedirectUri>, Failure> {
    list.iter().map(|u| RedirectUri::parse(u).map_err(|e| Failure::Usage(format!("{u:?}: {e}")))).collect()
}

pub async fn app(rbac: &Rbac, command: AppCommand) -> Result<(), Failure> {
    let apps = Applications::new(rbac.db().clone());
    match command {
        AppCommand::Create { name, app_type, redirect_uris, post_logout_redirect_uris, third_party } => {
            let new = NewApplication {
                name,
                app_type: AppType::parse(&app_type).map_err(Failure::Usage)?,
                redirect_uris: uris(&redirect_uris)?,
                post_logout_redirect_uris: uris(&post_logout_redirect_uris)?,
                is_third_party: third_party,
            };
            let created = apps.create(&new).await?;
            super::rbac::audit(rbac, "admin.application.create", format!("application {}", created.application.id))
                .await?;
            println!("Created {} application {:?}.", app_type, created.application.name);
            println!("client_id: {}", created.application.id);
            if let Some(secret) = created.secret {
                println!("client_secret: {secret}");
                println!("The secret is shown only now; gatehouse keeps only its digest.");
            }
        }
        AppCommand::List => {
            println!("{:<22} {:<8} {:<24} redirect_uris", "client_id", "type", "name");
            for a in apps.list().await? {
                println!("{:<22} {:<8} {:<24} {}", a.id, a.app_type.as_str(), a.name, a.redirect_uris.join(" "));
            }
        }
        AppCommand::RotateSecret { id } => {
            let secret = apps.rotate_secret(&id).await?;
            super::rbac::audit(rbac, "admin.application.secret", format!("application {id}")).await?;
            println!("client_secret: {secret}");
        }
        AppCommand::Delete { id } => {
            apps.delete(&id).await?;
            super::rbac::audit(rbac, "admin.application.delete", format!("application {id}")).await?;
            println!("Deleted application {id}.");
        }
        AppCommand::AddRole { id, roles } => {
            let mut ids = Vec::new();
            for name in &roles {
                ids.push(rbac.role_by_name(name).await?.id);
            }
            apps.add_roles(&id, &ids).await.map_err(|e| match e {
                RbacError::Invalid { message, .. } => Failure::Usage(message),
                other => other.into(),
            })?;
            super::rbac::audit(rbac, "admin.application.roles.add", format!("application {id} roles {ids:?}")).await?;
            println!("Application {id} holds {}.", roles.join(", "));
        }
    }
    Ok(())
}
