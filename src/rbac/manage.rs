//! Managing resources, scopes and roles: the operations the admin API and the CLI share. Input
//! arrives as parsed domain types; the answers are rows or [`RbacError`]s.

use super::{Indicator, Rbac, RbacError, RoleName, RoleType, ScopeName};
use crate::db::{Page, PageRequest, ResourcePatch, ResourceRow, RolePatch, RoleRow, ScopeGrantRow, ScopeRow, UserRow};

const RESOURCE_TAKEN: &str = "An API resource with that indicator already exists.";
const SCOPE_TAKEN: &str = "This API resource already has a scope with that name.";
const ROLE_TAKEN: &str = "A role (Django group) with that name already exists.";

impl Rbac {
    pub async fn resource(&self, id: i32) -> Result<ResourceRow, RbacError> {
        self.db.resource(id).await?.ok_or(RbacError::NotFound("API resource"))
    }

    pub async fn resource_by_indicator(&self, indicator: &str) -> Result<ResourceRow, RbacError> {
        self.db.resource_by_indicator(indicator).await?.ok_or(RbacError::NotFound("API resource"))
    }

    pub async fn create_resource(&self, indicator: &Indicator, name: &str, ttl: i32) -> Result<ResourceRow, RbacError> {
        if indicator.as_str() == self.settings.management_indicator {
            return Err(RbacError::Conflict("That indicator is gatehouse's own admin API.".into()));
        }
        let row = self
            .db
            .insert_resource(indicator.as_str(), name, ttl)
            .await
            .map_err(|e| RbacError::conflict_on_unique(e, RESOURCE_TAKEN))?;
        self.resources_changed();
        Ok(row)
    }

    pub async fn update_resource(&self, id: i32, patch: &ResourcePatch) -> Result<ResourceRow, RbacError> {
        self.db.update_resource(id, patch).await?.ok_or(RbacError::NotFound("API resource"))
    }

    pub async fn set_default_resource(&self, id: i32, is_default: bool) -> Result<ResourceRow, RbacError> {
        self.db.set_default_resource(id, is_default).await?.ok_or(RbacError::NotFound("API resource"))
    }

    pub async fn delete_resource(&self, id: i32) -> Result<(), RbacError> {
        let deleted = self.db.delete_resource(id).await?;
        self.resources_changed();
        if deleted { Ok(()) } else { Err(RbacError::NotFound("API resource")) }
    }

    pub async fn scopes(&self, resource_id: i32) -> Result<Vec<ScopeRow>, RbacError> {
        self.resource(resource_id).await?;
        Ok(self.db.scopes_of_resource(resource_id).await?)
    }

    pub async fn create_scope(
        &self,
        resource_id: i32,
        name: &ScopeName,
        description: &str,
    ) -> Result<ScopeRow, RbacError> {
        self.resource(resource_id).await?;
        self.db
            .insert_scope(resource_id, name.as_str(), description)
            .await
            .map_err(|e| RbacError::conflict_on_unique(e, SCOPE_TAKEN))
    }

    /// The scope, if it belongs to the resource.
    async fn scope_of(&self, resource_id: i32, scope_id: i32) -> Result<ScopeRow, RbacError> {
        match self.db.scope(scope_id).await? {
            Some(scope) if scope.resource_id == resource_id => Ok(scope),
            _ => Err(RbacError::NotFound("scope")),
        }
    }

    pub async fn update_scope(
        &self,
        resource_id: i32,
        scope_id: i32,
        name: Option<&ScopeName>,
        description: Option<&str>,
    ) -> Result<ScopeRow, RbacError> {
        self.scope_of(resource_id, scope_id).await?;
        self.db
            .update_scope(scope_id, name.map(ScopeName::as_str), description)
            .await
            .map_err(|e| RbacError::conflict_on_unique(e, SCOPE_TAKEN))?
            .ok_or(RbacError::NotFound("scope"))
    }

    pub async fn delete_scope(&self, resource_id: i32, scope_id: i32) -> Result<(), RbacError> {
        self.scope_of(resource_id, scope_id).await?;
        self.db.delete_scope(scope_id).await?;
        Ok(())
    }

    /// The scope of a resource by name, for the CLI.
    pub async fn scope_by_name(&self, indicator: &str, name: &str) -> Result<ScopeRow, RbacError> {
        let resource = self.resource_by_indicator(indicator).await?;
        let scopes = self.db.scopes_of_resource(resource.id).await?;
        scopes.into_iter().find(|s| s.name == name).ok_or(RbacError::NotFound("scope"))
    }

    pub async fn roles(&self, page: PageRequest) -> Result<Page<RoleRow>, RbacError> {
        Ok(self.db.roles(page).await?)
    }

    pub async fn role(&self, id: i32) -> Result<RoleRow, RbacError> {
        self.db.role(id).await?.ok_or(RbacError::NotFound("role"))
    }

    pub async fn role_by_name(&self, name: &str) -> Result<RoleRow, RbacError> {
        self.db.role_by_name(name).await?.ok_or(RbacError::NotFound("role"))
    }

    /// Creates the Django group with its metadata and, optionally, its scopes.
    pub async fn create_role(
        &self,
        name: &RoleName,
        description: &str,
        role_type: RoleType,
        is_default: bool,
        scope_ids: &[i32],
    ) -> Result<RoleRow, RbacError> {
        self.check_scopes_exist(scope_ids).await?;
        let row = RoleRow {
            id: 0,
            name: name.as_str().to_owned(),
            description: description.to_owned(),
            role_type: role_type.as_str().to_owned(),
            is_default,
        };
        let role = self.db.insert_role(&row).await.map_err(|e| RbacError::conflict_on_unique(e, ROLE_TAKEN))?;
        self.db.add_role_scopes(role.id, scope_ids).await?;
        Ok(role)
    }

    pub async fn update_role(&self, id: i32, patch: &RolePatch) -> Result<RoleRow, RbacError> {
        self.db
            .update_role(id, patch)
            .await
            .map_err(|e| RbacError::conflict_on_unique(e, ROLE_TAKEN))?
            .ok_or(RbacError::NotFound("role"))
    }

    pub async fn delete_role(&self, id: i32) -> Result<(), RbacError> {
        if self.db.delete_role(id).await? { Ok(()) } else { Err(RbacError::NotFound("role")) }
    }

    pub async fn role_scopes(&self, id: i32) -> Result<Vec<ScopeGrantRow>, RbacError> {
        self.role(id).await?;
        Ok(self.db.role_scopes(id).await?)
    }

    async fn check_scopes_exist(&self, scope_ids: &[i32]) -> Result<(), RbacError> {
        for id in scope_ids {
            if self.db.scope(*id).await?.is_none() {
                return Err(RbacError::invalid("scopeIds", format!("There is no scope with id {id}.")));
            }
        }
        Ok(())
    }

    pub async fn add_role_scopes(&self, id: i32, scope_ids: &[i32]) -> Result<(), RbacError> {
        self.role(id).await?;
        self.check_scopes_exist(scope_ids).await?;
        Ok(self.db.add_role_scopes(id, scope_ids).await?)
    }

    pub async fn remove_role_scope(&self, id: i32, scope_id: i32) -> Result<(), RbacError> {
        self.role(id).await?;
        let removed = self.db.remove_role_scope(id, scope_id).await?;
        if removed { Ok(()) } else { Err(RbacError::NotFound("scope of this role")) }
    }

    pub async fn role_users(&self, id: i32, page: PageRequest) -> Result<Page<UserRow>, RbacError> {
        self.role(id).await?;
        Ok(self.db.role_users(id, page).await?)
    }

    async fn check_users_exist(&self, user_ids: &[i32]) -> Result<(), RbacError> {
        for id in user_ids {
            if self.db.user_by_id(*id).await?.is_none() {
                return Err(RbacError::invalid("userIds", format!("There is no user with id {id}.")));
            }
        }
        Ok(())
    }

    /// Adds users to a role. Machine roles belong to applications, never to users.
    pub async fn add_role_users(&self, id: i32, user_ids: &[i32]) -> Result<(), RbacError> {
        let role = self.role(id).await?;
        if role.role_type != RoleType::User.as_str() {
            return Err(RbacError::invalid("userIds", "A machine role cannot be assigned to users."));
        }
        self.check_users_exist(user_ids).await?;
        Ok(self.db.add_role_users(id, user_ids).await?)
    }

    pub async fn remove_role_user(&self, id: i32, user_id: i32) -> Result<(), RbacError> {
        self.role(id).await?;
        let removed = self.db.remove_user_from_group(user_id, id).await?;
        if removed { Ok(()) } else { Err(RbacError::NotFound("holder of this role")) }
    }

    pub async fn user(&self, id: i32) -> Result<UserRow, RbacError> {
        self.db.user_by_id(id).await?.ok_or(RbacError::NotFound("user"))
    }

    pub async fn user_roles(&self, user_id: i32) -> Result<Vec<RoleRow>, RbacError> {
        self.user(user_id).await?;
        Ok(self.db.user_roles(user_id).await?)
    }

    async fn check_user_roles(&self, role_ids: &[i32]) -> Result<(), RbacError> {
        for id in role_ids {
            match self.db.role(*id).await? {
                Some(role) if role.role_type == RoleType::User.as_str() => {}
                Some(_) => return Err(RbacError::invalid("roleIds", format!("Role {id} is a machine role."))),
                None => return Err(RbacError::invalid("roleIds", format!("There is no role with id {id}."))),
            }
        }
        Ok(())
    }

    /// Adds roles to a user (`replace`: makes them exactly these).
    pub async fn assign_user_roles(&self, user_id: i32, role_ids: &[i32], replace: bool) -> Result<(), RbacError> {
        self.user(user_id).await?;
        self.check_user_roles(role_ids).await?;
        if replace {
            return Ok(self.db.replace_user_roles(user_id, role_ids).await?);
        }
        for role_id in role_ids {
            self.db.add_user_to_group(user_id, *role_id).await?;
        }
        Ok(())
    }
}
