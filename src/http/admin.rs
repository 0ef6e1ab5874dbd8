//! The admin API under `/api`, named after Logto's Management API: API resources and scopes,
//! roles (Django groups) with their scopes and users, users, and the custom-claims scripts.
//!
//! A caller is an admin with `Authorization: Bearer <GATEHOUSE_ADMIN_SECRET>`, or with an access
//! token of a live session for the admin API's resource (`<public URL>/api`) holding its scope
//! `all` (active superusers). Every change writes an audit record. Lists take `page` (from 1)
//! and `page_size` (1–100, default 20) and report the total in a `Total-Number` header.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::body::{Fields, json_object};
use super::error::{ApiError, field_error};
use super::hasura::Signup;
use crate::accounts::{AccountError, Password};
use crate::db::{
    AuditEvent, Page, PageRequest, ResourcePatch, ResourceRow, RolePatch, RoleRow, ScopeGrantRow, ScopeRow, UserRow,
};
use crate::oidc::{AppType, CreatedApplication, NewApplication, RedirectUri};
use crate::rbac::custom_claims::{CustomClaimsConfig, PutError, TokenType, script_input};
use crate::rbac::script::{ClaimsScript, ScriptError};
use crate::rbac::{ADMIN_SCOPE, DEFAULT_RESOURCE_TTL, Indicator, RbacError, RoleName, RoleType, ScopeName, parse_ttl};

/// Scripts travel in these bodies, so they are larger than the auth endpoints' limit.
const ADMIN_BODY_LIMIT: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(super::swagger::openapi))
        .route("/resources", get(list_resources).post(create_resource))
        .route("/resources/{id}", get(get_resource).patch(update_resource).delete(delete_resource))
        .route("/resources/{id}/is-default", patch(set_default_resource))
        .route("/resources/{id}/scopes", get(list_scopes).post(create_scope))
        .route("/resources/{id}/scopes/{scope_id}", patch(update_scope).delete(delete_scope))
        .route("/roles", get(list_roles).post(create_role))
        .route("/roles/{id}", get(get_role).patch(update_role).delete(delete_role))
        .route("/roles/{id}/scopes", get(list_role_scopes).post(add_role_scopes))
        .route("/roles/{id}/scopes/{scope_id}", axum::routing::delete(remove_role_scope))
        .route("/roles/{id}/users", get(list_role_users).post(add_role_users))
        .route("/roles/{id}/users/{user_id}", axum::routing::delete(remove_role_user))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/is-suspended", patch(suspend_user))
        .route("/users/{id}/password", patch(set_user_password))
        .route("/users/{id}/roles", get(list_user_roles).post(add_user_roles).put(replace_user_roles))
        .route("/users/{id}/roles/{role_id}", axum::routing::delete(remove_user_role))
        .route("/applications", get(list_applications).post(create_application))
        .route("/applications/{id}", get(get_application).patch(update_application).delete(delete_application))
        .route("/applications/{id}/secret", axum::routing::post(rotate_application_secret))
        .route("/applications/{id}/roles", get(list_application_roles).post(add_application_roles))
        .route("/applications/{id}/roles/{role_id}", axum::routing::delete(remove_application_role))
        .route("/audit-events", get(list_audit_events))
        .route("/configs/jwt-customizer", get(list_claims_configs))
        .route("/configs/jwt-customizer/test", axum::routing::post(test_claims_script))
        .route(
            "/configs/jwt-customizer/{token_type}",
            get(get_claims_config).put(put_claims_config).patch(patch_claims_config).delete(delete_claims_config),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(super::hasura::method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "There is no such admin API endpoint.")
}

/// An authorized admin: who, for the audit log.
struct Admin {
    user_id: Option<i32>,
    session_id: Option<String>,
    ip: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        authorize(state, &parts.headers, peer).await
    }
}

async fn authorize(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Result<Admin, ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = value.and_then(super::hasura::bearer_token).ok_or_else(|| {
        unauthorized("Send `Authorization: Bearer <admin secret or access token for the admin API>`.")
    })?;
    let ip = peer.ip().to_string();
    if let Some(expected) = &state.admin.secret_digest {
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(given.ct_eq(expected)) {
            return Ok(Admin { user_id: None, session_id: None, ip });
        }
    }
    let session = match state.verify(token).await {
        Ok(session) => session,
        Err(super::VerifyError::Db(db)) => return Err(AccountError::Db(db).into()),
        Err(super::VerifyError::Token(_)) => return Err(unauthorized("The credential is not valid.")),
    };
    if !state.sessions.is_live(&session.session_id).await.map_err(AccountError::from)? {
        return Err(unauthorized("The session of this token has ended."));
    }
    let for_admin_api = session.audience.as_deref() == Some(state.rbac.settings().management_indicator.as_str());
    if !for_admin_api || !session.scopes.iter().any(|s| s == ADMIN_SCOPE) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "This token does not grant the admin API: ask for resource {} with scope {ADMIN_SCOPE}.",
                state.rbac.settings().management_indicator
            ),
        ));
    }
    Ok(Admin { user_id: session.subject.parse().ok(), session_id: Some(session.session_id), ip })
}

/// Records an admin change; the change stands even if the record cannot be written.
async fn audit(state: &AppState, admin: &Admin, kind: &str, detail: String) {
    let db = state.rbac.db();
    let event = AuditEvent::new(kind, &detail)
        .by(admin.user_id.map_or("admin-secret".to_owned(), |id| format!("admin:{id}")))
        .about(admin.user_id)
        .session(admin.session_id.as_deref())
        .from_ip(Some(&admin.ip));
    if let Err(err) = db.audit_event(&event).await {
        tracing::error!(error = %err, kind, "could not write an audit record");
    }
}

/// An id in the path; anything that is not one names nothing.
fn id(text: &str) -> Result<i32, ApiError> {
    text.parse().map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "NotFound", "There is nothing with that id."))
}

fn page(query: &Option<String>) -> Result<PageRequest, ApiError> {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let number = |name: &'static str, default: i64, max: i64| -> Result<i64, ApiError> {
        match query.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::fields(vec![field_error(
                    name,
                    "invalid",
                    format!("{name} must be an integer from 1 to {max}."),
                )])),
            },
        }
    };
    let size = number("page_size", 20, 100)?;
    let page = number("page", 1, 1_000_000)?;
    Ok(PageRequest { limit: size, offset: (page - 1) * size })
}

fn paged<T: Serialize>(page: Page<T>) -> Response {
    let mut response = Json(page.items).into_response();
    response.headers_mut().insert("total-number", HeaderValue::from(page.total));
    response
}

fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceView {
    id: i32,
    name: String,
    indicator: String,
    access_token_ttl: i32,
    is_default: bool,
}

impl From<ResourceRow> for ResourceView {
    fn from(r: ResourceRow) -> Self {
        ResourceView {
            id: r.id,
            name: r.name,
            indicator: r.indicator,
            access_token_ttl: r.access_token_ttl,
            is_default: r.is_default,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeView {
    id: i32,
    resource_id: i32,
    name: String,
    description: String,
}

impl From<ScopeRow> for ScopeView {
    fn from(s: ScopeRow) -> Self {
        ScopeView { id: s.id, resource_id: s.resource_id, name: s.name, description: s.description }
    }
}

fn role_scope_view(g: ScopeGrantRow) -> Value {
    json!({
        "id": g.scope_id,
        "resourceId": g.resource_id,
        "name": g.scope_name,
        "description": g.scope_description,
        "resource": { "id": g.resource_id, "name": g.resource_name, "indicator": g.indicator },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleView {
    id: i32,
    name: String,
    description: String,
    #[serde(rename = "type")]
    role_type: String,
    is_default: bool,
}

impl From<RoleRow> for RoleView {
    fn from(r: RoleRow) -> Self {
        RoleView {
            id: r.id,
            name: r.name,
            description: r.description,
            role_type: r.role_type,
            is_default: r.is_default,
        }
    }
}

fn rfc3339(time: &crate::db::DjangoTime) -> String {
    time.0.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn user_view(u: UserRow) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "primaryEmail": if u.email.is_empty() { Value::Null } else { Value::String(u.email.clone()) },
        "firstName": u.first_name,
        "lastName": u.last_name,
        "isSuspended": !u.is_active,
        "isStaff": u.is_staff,
        "isSuperuser": u.is_superuser,
        "hasPassword": crate::django::hashers::is_usable(&u.password),
        "lastSignInAt": u.last_login.as_ref().map(rfc3339),
        "createdAt": rfc3339(&u.date_joined),
    })
}

fn paged_map<T, V: Serialize>(page: Page<T>, view: impl Fn(T) -> V) -> Response {
    paged(Page { items: page.items.into_iter().map(view).collect::<Vec<_>>(), total: page.total })
}

/// The JSON object body of an admin request (after the caller is authorized: extractors run
/// in order, and [`Admin`] comes first in every handler).
struct JsonBody(Map<String, Value>);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        Ok(JsonBody(json_object(&parts.headers, body, ADMIN_BODY_LIMIT).await?))
    }
}

fn parsed<T>(fields: &mut Fields, name: &'static str, result: Result<T, String>) -> Option<T> {
    result.map_err(|message| fields.push(field_error(name, "invalid", message))).ok()
}

type Q = RawQuery;

async fn list_resources(State(s): State<AppState>, _: Admin, RawQuery(q): Q) -> ApiResult {
    let page = page(&q)?;
    Ok(paged_map(s.rbac.db().resources(page).await.map_err(RbacError::from)?, ResourceView::from))
}

type ApiResult = Result<Response, ApiError>;

async fn create_resource(State(s): State<AppState>, admin: Admin, JsonBody(b): JsonBody) -> ApiResult {
    let object = b;
    let mut fields = Fields::default();
    let name = fields.required(&object, "name");
    let indicator = fields.required(&object, "indicator");
    let indicator =
        if indicator.is_empty() { None } else { parsed(&mut fields, "indicator", Indicator::parse(&indicator)) };
    let ttl =
        fields.optional_integer(&object, "accessTokenTtl").map(|t| parsed(&mut fields, "accessTokenTtl", parse_ttl(t)));
    check_name(&mut fields, "name", &name, 128);
    fields.finish()?;
    let (Some(indicator), ttl) = (indicator, ttl.flatten().unwrap_or(DEFAULT_RESOURCE_TTL)) else {
        return Err(ApiError::invalid_body("indicator is invalid"));
    };
    let resource = s.rbac.create_resource(&indicator, &name, ttl).await?;
    audit(&s, &admin, "admin.resource.create", format!("resource {} {}", resource.id, resource.indicator)).await;
    Ok(created(ResourceView::from(resource)))
}

/// A display name: present, without control characters, at most `max` characters.
fn check_name(fields: &mut Fields, name: &'static str, value: &str, max: usize) {
    if value.chars().count() > max || value.chars().any(char::is_control) {
        fields.push(field_error(name, "invalid", format!("At most {max} characters, without control characters.")));
    }
}

async fn get_resource(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    Ok(Json(ResourceView::from(s.rbac.resource(id(&i)?).await?)).into_response())
}

async fn update_resource(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let resource_id = id(&i)?;
    let object = b;
    let mut fields = Fields::default();
    let name = object.contains_key("name").then(|| fields.required(&object, "name"));
    if let Some(name) = &name {
        check_name(&mut fields, "name", name, 128);
    }
    let ttl = fields
        .optional_integer(&object, "accessTokenTtl")
        .and_then(|t| parsed(&mut fields, "accessTokenTtl", parse_ttl(t)));
    fields.finish()?;
    let resource = s.rbac.update_resource(resource_id, &ResourcePatch { name, access_token_ttl: ttl }).await?;
    audit(&s, &admin, "admin.resource.update", format!("resource {resource_id}")).await;
    Ok(Json(ResourceView::from(resource)).into_response())
}

async fn delete_resource(State(s): State<AppState>, admin: Admin, Path(i): Path<String>) -> ApiResult {
    let resource_id = id(&i)?;
    s.rbac.delete_resource(resource_id).await?;
    audit(&s, &admin, "admin.resource.delete", format!("resource {resource_id}")).await;
    Ok(no_content())
}

async fn set_default_resource(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let resource_id = id(&i)?;
    let object = b;
    let mut fields = Fields::default();
    let is_default = fields.optional_bool(&object, "isDefault");
    if is_default.is_none() && fields.errors.is_empty() {
        fields.push(field_error("isDefault", "required", "This field is required."));
    }
    fields.finish()?;
    let is_default = is_default.unwrap_or(false);
    let resource = s.rbac.set_default_resource(resource_id, is_default).await?;
    audit(&s, &admin, "admin.resource.default", format!("resource {resource_id} is_default={is_default}")).await;
    Ok(Json(ResourceView::from(resource)).into_response())
}

async fn list_scopes(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    let scopes = s.rbac.scopes(id(&i)?).await?;
    Ok(Json(scopes.into_iter().map(ScopeView::from).collect::<Vec<_>>()).into_response())
}

fn scope_fields(
    object: &Map<String, Value>,
    name_required: bool,
) -> Result<(Option<ScopeName>, Option<String>), ApiError> {
    let mut fields = Fields::default();
    let name = match (object.contains_key("name"), name_required) {
        (false, false) => None,
        _ => {
            let name = fields.required(object, "name");
            if name.is_empty() { None } else { parsed(&mut fields, "name", ScopeName::parse(&name)) }
        }
    };
    let description = object.contains_key("description").then(|| fields.optional(object, "description"));
    if let Some(description) = &description {
        check_name(&mut fields, "description", description, 1000);
    }
    fields.finish()?;
    Ok((name, description))
}

async fn create_scope(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let resource_id = id(&i)?;
    let (name, description) = scope_fields(&b, true)?;
    let Some(name) = name else { return Err(ApiError::invalid_body("name is invalid")) };
    let scope = s.rbac.create_scope(resource_id, &name, description.as_deref().unwrap_or("")).await?;
    audit(&s, &admin, "admin.scope.create", format!("scope {} {} of resource {resource_id}", scope.id, scope.name))
        .await;
    Ok(created(ScopeView::from(scope)))
}

async fn update_scope(
    State(s): State<AppState>,
    admin: Admin,
    Path((i, scope_id)): Path<(String, String)>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let (resource_id, scope_id) = (id(&i)?, id(&scope_id)?);
    let (name, description) = scope_fields(&b, false)?;
    let scope = s.rbac.update_scope(resource_id, scope_id, name.as_ref(), description.as_deref()).await?;
    audit(&s, &admin, "admin.scope.update", format!("scope {scope_id} of resource {resource_id}")).await;
    Ok(Json(ScopeView::from(scope)).into_response())
}

async fn delete_scope(
    State(s): State<AppState>,
    admin: Admin,
    Path((i, scope_id)): Path<(String, String)>,
) -> ApiResult {
    let (resource_id, scope_id) = (id(&i)?, id(&scope_id)?);
    s.rbac.delete_scope(resource_id, scope_id).await?;
    audit(&s, &admin, "admin.scope.delete", format!("scope {scope_id} of resource {resource_id}")).await;
    Ok(no_content())
}

async fn list_roles(State(s): State<AppState>, _: Admin, RawQuery(q): Q) -> ApiResult {
    let page = page(&q)?;
    Ok(paged_map(s.rbac.roles(page).await?, RoleView::from))
}

async fn create_role(State(s): State<AppState>, admin: Admin, JsonBody(b): JsonBody) -> ApiResult {
    let object = b;
    let mut fields = Fields::default();
    let name = fields.required(&object, "name");
    let name = if name.is_empty() { None } else { parsed(&mut fields, "name", RoleName::parse(&name)) };
    let description = fields.optional(&object, "description");
    check_name(&mut fields, "description", &description, 1000);
    let role_type = match object.get("type") {
        None | Some(Value::Null) => Some(RoleType::User),
        Some(Value::String(text)) => parsed(&mut fields, "type", RoleType::parse(text)),
        Some(_) => parsed(&mut fields, "type", Err("A role type is user or machine.".into())),
    };
    let is_default = fields.optional_bool(&object, "isDefault").unwrap_or(false);
    let scope_ids = if object.contains_key("scopeIds") { fields.id_list(&object, "scopeIds") } else { Vec::new() };
    fields.finish()?;
    let (Some(name), Some(role_type)) = (name, role_type) else { return Err(ApiError::invalid_body("invalid role")) };
    let role = s.rbac.create_role(&name, &description, role_type, is_default, &scope_ids).await?;
    audit(&s, &admin, "admin.role.create", format!("role {} {}", role.id, role.name)).await;
    Ok(created(RoleView::from(role)))
}

async fn get_role(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    Ok(Json(RoleView::from(s.rbac.role(id(&i)?).await?)).into_response())
}

async fn update_role(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let role_id = id(&i)?;
    let object = b;
    let mut fields = Fields::default();
    let name = match object.contains_key("name") {
        true => {
            let name = fields.required(&object, "name");
            if name.is_empty() { None } else { parsed(&mut fields, "name", RoleName::parse(&name)) }
        }
        false => None,
    };
    let description = object.contains_key("description").then(|| fields.optional(&object, "description"));
    if let Some(description) = &description {
        check_name(&mut fields, "description", description, 1000);
    }
    let is_default = fields.optional_bool(&object, "isDefault");
    if object.contains_key("type") {
        fields.push(field_error("type", "read_only", "A role's type cannot change; make a new role."));
    }
    fields.finish()?;
    let patch = RolePatch { name: name.map(|n| n.as_str().to_owned()), description, is_default };
    let role = s.rbac.update_role(role_id, &patch).await?;
    audit(&s, &admin, "admin.role.update", format!("role {role_id}")).await;
    Ok(Json(RoleView::from(role)).into_response())
}

async fn delete_role(State(s): State<AppState>, admin: Admin, Path(i): Path<String>) -> ApiResult {
    let role_id = id(&i)?;
    s.rbac.delete_role(role_id).await?;
    audit(&s, &admin, "admin.role.delete", format!("role {role_id}")).await;
    Ok(no_content())
}

async fn list_role_scopes(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    let scopes = s.rbac.role_scopes(id(&i)?).await?;
    Ok(Json(scopes.into_iter().map(role_scope_view).collect::<Vec<_>>()).into_response())
}

fn ids_of(object: &Map<String, Value>, name: &'static str) -> Result<Vec<i32>, ApiError> {
    let mut fields = Fields::default();
    let ids = fields.id_list(object, name);
    fields.finish()?;
    Ok(ids)
}

async fn add_role_scopes(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let role_id = id(&i)?;
    let scope_ids = ids_of(&b, "scopeIds")?;
    s.rbac.add_role_scopes(role_id, &scope_ids).await?;
    audit(&s, &admin, "admin.role.scopes.add", format!("role {role_id} scopes {scope_ids:?}")).await;
    let scopes = s.rbac.role_scopes(role_id).await?;
    Ok(created(scopes.into_iter().map(role_scope_view).collect::<Vec<_>>()))
}

async fn remove_role_scope(
    State(s): State<AppState>,
    admin: Admin,
    Path((i, scope_id)): Path<(String, String)>,
) -> ApiResult {
    let (role_id, scope_id) = (id(&i)?, id(&scope_id)?);
    s.rbac.remove_role_scope(role_id, scope_id).await?;
    audit(&s, &admin, "admin.role.scopes.remove", format!("role {role_id} scope {scope_id}")).await;
    Ok(no_content())
}

async fn list_role_users(State(s): State<AppState>, _: Admin, Path(i): Path<String>, RawQuery(q): Q) -> ApiResult {
    let (role_id, page) = (id(&i)?, page(&q)?);
    Ok(paged_map(s.rbac.role_users(role_id, page).await?, user_view))
}

async fn add_role_users(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let role_id = id(&i)?;
    let user_ids = ids_of(&b, "userIds")?;
    s.rbac.add_role_users(role_id, &user_ids).await?;
    audit(&s, &admin, "admin.role.users.add", format!("role {role_id} users {user_ids:?}")).await;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_role_user(
    State(s): State<AppState>,
    admin: Admin,
    Path((i, user_id)): Path<(String, String)>,
) -> ApiResult {
    let (role_id, user_id) = (id(&i)?, id(&user_id)?);
    s.rbac.remove_role_user(role_id, user_id).await?;
    audit(&s, &admin, "admin.role.users.remove", format!("role {role_id} user {user_id}")).await;
    Ok(no_content())
}

async fn list_users(State(s): State<AppState>, _: Admin, RawQuery(q): Q) -> ApiResult {
    let page = page(&q)?;
    Ok(paged_map(s.rbac.db().users_page(page).await.map_err(RbacError::from)?, user_view))
}

/// The audit log, newest first; `kind` filters.
async fn list_audit_events(State(s): State<AppState>, _: Admin, RawQuery(q): Q) -> ApiResult {
    let page = page(&q)?;
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let kind = query.get("kind").map(String::as_str).filter(|k| !k.is_empty());
    let events = s.rbac.db().audit_events(page, kind).await.map_err(RbacError::from)?;
    Ok(paged_map(events, audit_view))
}

fn audit_view(e: crate::db::AuditRow) -> Value {
    json!({
        "id": e.id,
        "at": rfc3339(&e.at),
        "kind": e.kind,
        "actor": e.actor,
        "outcome": e.outcome,
        "userId": e.user_id,
        "sessionId": e.session_id,
        "ip": e.ip,
        "detail": e.detail,
    })
}

async fn create_user(State(s): State<AppState>, admin: Admin, JsonBody(b): JsonBody) -> ApiResult {
    let signup = Signup::parse(&b, &s, false)?;
    let user = s.accounts.create_user(signup.new_user).await?;
    s.rbac.assign_default_roles(user.id).await.map_err(RbacError::from)?;
    audit(&s, &admin, "admin.user.create", format!("user {} {}", user.id, user.username)).await;
    Ok(created(user_view(user)))
}

async fn get_user(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    Ok(Json(user_view(s.rbac.user(id(&i)?).await?)).into_response())
}

async fn suspend_user(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let user_id = id(&i)?;
    let object = b;
    let user = s.rbac.user(user_id).await?;
    let mut fields = Fields::default();
    let suspended = fields.optional_bool(&object, "isSuspended");
    if suspended.is_none() && fields.errors.is_empty() {
        fields.push(field_error("isSuspended", "required", "This field is required."));
    }
    fields.finish()?;
    let suspended = suspended.unwrap_or(false);
    s.accounts.set_active(&user.username, !suspended).await?;
    audit(&s, &admin, "admin.user.suspend", format!("user {} is_active={}", user.id, !suspended)).await;
    Ok(Json(user_view(s.rbac.user(user.id).await?)).into_response())
}

async fn set_user_password(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let user_id = id(&i)?;
    let object = b;
    let user = s.rbac.user(user_id).await?;
    let mut fields = Fields::default();
    let password = fields.required(&object, "password");
    fields.finish()?;
    s.accounts.set_password(&user.username, &Password::new(password)).await?;
    audit(&s, &admin, "admin.user.password", format!("user {}", user.id)).await;
    Ok(Json(user_view(s.rbac.user(user.id).await?)).into_response())
}

async fn list_user_roles(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    let roles = s.rbac.user_roles(id(&i)?).await?;
    Ok(Json(roles.into_iter().map(RoleView::from).collect::<Vec<_>>()).into_response())
}

async fn assign_roles(s: AppState, admin: Admin, i: String, b: Map<String, Value>, replace: bool) -> ApiResult {
    let user_id = id(&i)?;
    let role_ids = ids_of(&b, "roleIds")?;
    s.rbac.assign_user_roles(user_id, &role_ids, replace).await?;
    let kind = if replace { "admin.user.roles.replace" } else { "admin.user.roles.add" };
    audit(&s, &admin, kind, format!("user {user_id} roles {role_ids:?}")).await;
    let roles = s.rbac.user_roles(user_id).await?;
    Ok(Json(roles.into_iter().map(RoleView::from).collect::<Vec<_>>()).into_response())
}

async fn add_user_roles(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    assign_roles(s, admin, i, b, false).await
}

async fn replace_user_roles(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    assign_roles(s, admin, i, b, true).await
}

async fn remove_user_role(
    State(s): State<AppState>,
    admin: Admin,
    Path((i, role_id)): Path<(String, String)>,
) -> ApiResult {
    let (user_id, role_id) = (id(&i)?, id(&role_id)?);
    s.rbac.user(user_id).await?;
    s.rbac.remove_role_user(role_id, user_id).await?;
    audit(&s, &admin, "admin.user.roles.remove", format!("user {user_id} role {role_id}")).await;
    Ok(no_content())
}

/// A list of redirect URIs in a body; `None` when the field is absent.
fn redirect_uris(fields: &mut Fields, object: &Map<String, Value>, name: &'static str) -> Option<Vec<RedirectUri>> {
    let items = match object.get(name) {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) if items.len() <= 32 => items,
        Some(Value::Array(_)) => {
            fields.push(field_error(name, "too_long", "At most 32 URIs."));
            return None;
        }
        Some(_) => {
            fields.push(field_error(name, "invalid_type", "This field must be a list of URIs."));
            return None;
        }
    };
    let parsed: Result<Vec<RedirectUri>, String> = items
        .iter()
        .map(|item| item.as_str().ok_or_else(|| "Each URI must be a string.".to_owned()))
        .map(|uri| uri.and_then(RedirectUri::parse))
        .collect();
    parsed.map_err(|message| fields.push(field_error(name, "invalid", message))).ok()
}

async fn list_applications(State(s): State<AppState>, _: Admin) -> ApiResult {
    Ok(Json(s.applications.list().await?).into_response())
}

async fn create_application(State(s): State<AppState>, admin: Admin, JsonBody(b): JsonBody) -> ApiResult {
    let mut fields = Fields::default();
    let name = fields.required(&b, "name");
    check_name(&mut fields, "name", &name, 128);
    let app_type = match b.get("type") {
        Some(Value::String(text)) => parsed(&mut fields, "type", AppType::parse(text)),
        None | Some(Value::Null) => {
            fields.push(field_error("type", "required", "This field is required."));
            None
        }
        Some(_) => parsed(&mut fields, "type", Err("An application type is spa, native, web or machine.".into())),
    };
    let uris = redirect_uris(&mut fields, &b, "redirectUris").unwrap_or_default();
    let post_logout = redirect_uris(&mut fields, &b, "postLogoutRedirectUris").unwrap_or_default();
    let is_third_party = fields.optional_bool(&b, "isThirdParty").unwrap_or(false);
    fields.finish()?;
    let Some(app_type) = app_type else { return Err(ApiError::invalid_body("type is invalid")) };
    let new =
        NewApplication { name, app_type, redirect_uris: uris, post_logout_redirect_uris: post_logout, is_third_party };
    let created = s.applications.create(&new).await?;
    audit(&s, &admin, "admin.application.create", format!("application {}", created.application.id)).await;
    Ok(created_response(created))
}

fn created_response(body: CreatedApplication) -> Response {
    let mut response = created(body);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn get_application(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    Ok(Json(s.applications.get(&i).await?).into_response())
}

async fn update_application(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let mut fields = Fields::default();
    let name = b.contains_key("name").then(|| fields.required(&b, "name"));
    if let Some(name) = &name {
        check_name(&mut fields, "name", name, 128);
    }
    let uris = redirect_uris(&mut fields, &b, "redirectUris");
    let post_logout = redirect_uris(&mut fields, &b, "postLogoutRedirectUris");
    if b.contains_key("type") {
        fields.push(field_error("type", "read_only", "An application's type cannot change; make a new one."));
    }
    fields.finish()?;
    let app = s.applications.update(&i, name, uris, post_logout).await?;
    audit(&s, &admin, "admin.application.update", format!("application {i}")).await;
    Ok(Json(app).into_response())
}

async fn delete_application(State(s): State<AppState>, admin: Admin, Path(i): Path<String>) -> ApiResult {
    s.applications.delete(&i).await?;
    audit(&s, &admin, "admin.application.delete", format!("application {i}")).await;
    Ok(no_content())
}

async fn rotate_application_secret(State(s): State<AppState>, admin: Admin, Path(i): Path<String>) -> ApiResult {
    let secret = s.applications.rotate_secret(&i).await?;
    audit(&s, &admin, "admin.application.secret", format!("application {i}")).await;
    let mut response = Json(json!({ "secret": secret })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn list_application_roles(State(s): State<AppState>, _: Admin, Path(i): Path<String>) -> ApiResult {
    let roles = s.applications.roles(&i).await?;
    Ok(Json(roles.into_iter().map(RoleView::from).collect::<Vec<_>>()).into_response())
}

async fn add_application_roles(
    State(s): State<AppState>,
    admin: Admin,
    Path(i): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let role_ids = ids_of(&b, "roleIds")?;
    s.applications.add_roles(&i, &role_ids).await?;
    audit(&s, &admin, "admin.application.roles.add", format!("application {i} roles {role_ids:?}")).await;
    let roles = s.applications.roles(&i).await?;
    Ok(created(roles.into_iter().map(RoleView::from).collect::<Vec<_>>()))
}

async fn remove_application_role(
    State(s): State<AppState>,
    admin: Admin,
    Path((i, role_id)): Path<(String, String)>,
) -> ApiResult {
    let role_id = id(&role_id)?;
    s.applications.remove_role(&i, role_id).await?;
    audit(&s, &admin, "admin.application.roles.remove", format!("application {i} role {role_id}")).await;
    Ok(no_content())
}

fn token_type(text: &str) -> Result<TokenType, ApiError> {
    TokenType::parse(text).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", "The token type is access-token or client-credentials.")
    })
}

async fn list_claims_configs(State(s): State<AppState>, _: Admin) -> ApiResult {
    let mut list = Vec::new();
    for kind in [TokenType::AccessToken, TokenType::ClientCredentials] {
        if let Some(config) = s.rbac.custom_claims().config(kind).await.map_err(RbacError::from)? {
            list.push(json!({ "key": kind.config_key(), "value": config }));
        }
    }
    Ok(Json(list).into_response())
}

async fn get_claims_config(State(s): State<AppState>, _: Admin, Path(t): Path<String>) -> ApiResult {
    let config = s.rbac.custom_claims().config(token_type(&t)?).await.map_err(RbacError::from)?;
    let config = config.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No script is configured."))?;
    Ok(Json(config).into_response())
}

/// Reads a configuration; with `base`, absent fields keep their value there (PATCH).
fn claims_config(
    object: &Map<String, Value>,
    base: Option<CustomClaimsConfig>,
) -> Result<CustomClaimsConfig, ApiError> {
    let mut fields = Fields::default();
    let mut config = base.clone().unwrap_or_default();
    if base.is_none() || object.contains_key("script") {
        config.script = fields.required(object, "script");
    }
    match object.get("environmentVariables") {
        None => {}
        Some(Value::Null) => config.environment_variables.clear(),
        Some(Value::Object(vars)) => {
            match vars.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect() {
                Some(vars) => config.environment_variables = vars,
                None => fields.push(field_error("environmentVariables", "invalid_type", "Values must be strings.")),
            }
        }
        Some(_) => fields.push(field_error("environmentVariables", "invalid_type", "This field must be an object.")),
    }
    if let Some(block) = fields.optional_bool(object, "blockIssuanceOnError") {
        config.block_issuance_on_error = block;
    }
    fields.finish()?;
    Ok(config)
}

async fn store_claims_config(s: &AppState, admin: &Admin, kind: TokenType, config: CustomClaimsConfig) -> ApiResult {
    match s.rbac.custom_claims().put(kind, &config).await {
        Ok(()) => {}
        Err(PutError::Invalid { field, message }) => {
            return Err(ApiError::fields(vec![field_error(field, "invalid", message)]));
        }
        Err(PutError::Db(db)) => return Err(RbacError::from(db).into()),
    }
    audit(s, admin, "admin.custom_claims.put", format!("{} script", kind.as_str())).await;
    Ok(Json(config).into_response())
}

async fn put_claims_config(
    State(s): State<AppState>,
    admin: Admin,
    Path(t): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let kind = token_type(&t)?;
    let config = claims_config(&b, None)?;
    store_claims_config(&s, &admin, kind, config).await
}

async fn patch_claims_config(
    State(s): State<AppState>,
    admin: Admin,
    Path(t): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult {
    let kind = token_type(&t)?;
    let object = b;
    let current = s.rbac.custom_claims().config(kind).await.map_err(RbacError::from)?;
    let current =
        current.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No script is configured."))?;
    let config = claims_config(&object, Some(current))?;
    store_claims_config(&s, &admin, kind, config).await
}

async fn delete_claims_config(State(s): State<AppState>, admin: Admin, Path(t): Path<String>) -> ApiResult {
    let kind = token_type(&t)?;
    if !s.rbac.custom_claims().delete(kind).await.map_err(RbacError::from)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No script is configured."));
    }
    audit(&s, &admin, "admin.custom_claims.delete", format!("{} script", kind.as_str())).await;
    Ok(no_content())
}

/// `POST /api/configs/jwt-customizer/test`: runs a script on a sample `token` and `context`
/// (or the real context of `userId`) without storing it. Script failures are 403 `denied`
/// and 422 for the others, with the kind as `code`.
async fn test_claims_script(State(s): State<AppState>, _: Admin, JsonBody(b): JsonBody) -> ApiResult {
    let object = b;
    let config = claims_config(&object, None)?;
    let mut fields = Fields::default();
    let user_id = fields.optional_integer(&object, "userId");
    let mut sample = |name: &'static str| match object.get(name) {
        None | Some(Value::Null) => json!({}),
        Some(value @ Value::Object(_)) => value.clone(),
        Some(_) => {
            fields.push(field_error(name, "invalid_type", "This field must be an object."));
            Value::Null
        }
    };
    let (token, mut context) = (sample("token"), sample("context"));
    if let Some(kind) = object.get("tokenType").filter(|v| !v.is_null())
        && kind.as_str().and_then(TokenType::parse).is_none()
    {
        fields.push(field_error("tokenType", "invalid", "The token type is access-token or client-credentials."));
    }
    fields.finish()?;
    if let Some(user_id) = user_id {
        let user = s.rbac.user(i32::try_from(user_id).map_err(|_| RbacError::NotFound("user"))?).await?;
        context = json!({ "user": s.rbac.user_context(&user).await.map_err(RbacError::from)? });
    }
    let script = config.validate(s.rbac.custom_claims().limits()).await.map_err(|(field, message)| ApiError {
        retry_after: None,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        errors: vec![script_error_item("syntax", message, Some(field))],
    })?;
    run_test(&script, script_input(&config, token, context)).await
}

fn script_error_item(code: &'static str, message: String, field: Option<&'static str>) -> super::error::ErrorItem {
    super::error::ErrorItem { kind: "ScriptFailed", message, field, code: Some(code) }
}

async fn run_test(script: &ClaimsScript, input: Value) -> ApiResult {
    match script.run(input).await {
        Ok(claims) => Ok(Json(claims).into_response()),
        Err(ScriptError::Denied(message)) => Err(ApiError {
            retry_after: None,
            status: StatusCode::FORBIDDEN,
            errors: vec![super::error::ErrorItem { kind: "AccessDenied", message, field: None, code: Some("denied") }],
        }),
        Err(ScriptError::Busy) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The script runners are busy; try again shortly.",
        )),
        Err(err) => Err(ApiError {
            retry_after: None,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: vec![script_error_item(err.kind(), err.to_string(), None)],
        }),
    }
}
