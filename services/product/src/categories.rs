//! Categories: a tree through `parent_id`. Reads are public, writes are for admins.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use souk_common::error::{parse_id, unique_violation};
use souk_common::{AdminUser, ApiError, ApiResult, FieldError, Json};
use souk_contract::ErrorCode;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::openapi::{
    CATEGORY_ID, CategoryInUse, CategoryInvalid, CategoryUpdateInvalid, SlugTaken,
    SlugTakenOnUpdate,
};
use crate::validate::{self, double_option, not_null};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/categories", get(list).post(create))
        .route(
            "/api/v1/categories/{id}",
            get(show).patch(update).delete(remove),
        )
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// Null for a top-level category.
    #[schema(required = true)]
    pub parent_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct CategoryList {
    items: Vec<Category>,
}

/// Every category
///
/// The whole category tree as a flat list (a shop has few categories, so this is not paginated
/// and has no `next_cursor`): parents before their children, siblings by name.
#[utoipa::path(
    get,
    path = "/api/v1/categories",
    operation_id = "listCategories",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "All categories.", body = CategoryList),
    )
)]
#[tracing::instrument(skip_all)]
async fn list(State(state): State<AppState>) -> ApiResult<Json<CategoryList>> {
    let items = sqlx::query_as(
        "WITH RECURSIVE tree AS (
            SELECT id, name, slug, parent_id, ARRAY[name] AS path FROM categories
             WHERE parent_id IS NULL
            UNION ALL
            SELECT c.id, c.name, c.slug, c.parent_id, tree.path || c.name
              FROM categories c JOIN tree ON c.parent_id = tree.id)
         SELECT id, name, slug, parent_id FROM tree ORDER BY path, id",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(CategoryList { items }))
}

/// A category
///
/// One category by id (served by the product service).
#[utoipa::path(
    get,
    path = "/api/v1/categories/{id}",
    operation_id = "getCategory",
    security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = CATEGORY_ID)),
    responses(
        (status = 200, description = "The category.", body = Category),
    )
)]
#[tracing::instrument(skip_all)]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Category>> {
    let id = parse_id(&id, "category")?;
    sqlx::query_as("SELECT id, name, slug, parent_id FROM categories WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such category"))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = CategoryCreate)]
struct NewCategory {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
        examples("t-shirts")
    )]
    slug: String,
    #[serde(default)]
    parent_id: Option<Uuid>,
}

/// The 409 `slug_taken` detail.
pub const SLUG_TAKEN: &str = "a category with this slug already exists";
/// The 409 `category_in_use` detail.
pub const CATEGORY_IN_USE: &str =
    "the category still has sub-categories or products; move or archive them first";

fn slug_taken(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some("categories_slug_key") => ApiError::conflict(ErrorCode::SlugTaken, SLUG_TAKEN),
        _ => e.into(),
    }
}

fn unknown_parent() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::CategoryNotFound,
        "parent_id: no such category",
    );
    e.errors = vec![FieldError::new("parent_id", "no such category")];
    e
}

/// Serialises tree changes, so two concurrent moves cannot build a cycle between them.
async fn lock_tree(conn: &mut PgConnection) -> ApiResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('souk.product.categories'))")
        .execute(conn)
        .await?;
    Ok(())
}

async fn check_parent(conn: &mut PgConnection, parent: Uuid) -> ApiResult<()> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1)")
        .bind(parent)
        .fetch_one(conn)
        .await?;
    if exists {
        Ok(())
    } else {
        Err(unknown_parent())
    }
}

/// Create a category (admin)
///
/// `parent_id` (optional) must name an existing category, else 422 `category_not_found`.
/// Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    post,
    path = "/api/v1/categories",
    operation_id = "createCategory",
    security(("bearer" = ["admin"])),
    request_body(
        content = NewCategory,
        description = "The new category.",
        example = json!({
            "name": "T-shirts", "slug": "t-shirts", "parent_id": "0193a1f2-7c4e-7d3a-9b1e-2f5c8d9e0a1b"
        }),
    ),
    responses(
        (status = 201, description = "The new category.", body = Category),
        (status = 409, response = inline(SlugTaken)),
        (status = 422, response = inline(CategoryInvalid)),
    )
)]
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewCategory>,
) -> ApiResult<(StatusCode, Json<Category>)> {
    let mut errors = Vec::new();
    let name = validate::text("name", &body.name, 1, 100, &mut errors);
    let slug = validate::slug(&body.slug, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.db.begin().await?;
    lock_tree(&mut tx).await?;
    if let Some(parent) = body.parent_id {
        check_parent(&mut tx, parent).await?;
    }
    let category: Category = sqlx::query_as(
        "INSERT INTO categories (id, name, slug, parent_id) VALUES ($1, $2, $3, $4)
         RETURNING id, name, slug, parent_id",
    )
    .bind(Uuid::now_v7())
    .bind(&name)
    .bind(&slug)
    .bind(body.parent_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(slug_taken)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(category)))
}

#[derive(Deserialize, ToSchema)]
struct CategoryUpdate {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 64,
        pattern = "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
        examples("t-shirts")
    )]
    slug: Option<Option<String>>,
    /// `null` makes it top-level.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    parent_id: Option<Option<Uuid>>,
}

/// Change a category (admin)
///
/// Absent fields are left as they are; `name` and `slug` cannot be null; `parent_id: null`
/// makes it a top-level category. Moving a category under itself or one of its sub-categories
/// is 422 (field `parent_id`). Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    patch,
    path = "/api/v1/categories/{id}",
    operation_id = "updateCategory",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = CATEGORY_ID)),
    request_body(content = CategoryUpdate, description = "The fields to change."),
    responses(
        (status = 200, description = "The updated category.", body = Category),
        (status = 409, response = inline(SlugTakenOnUpdate)),
        (status = 422, response = inline(CategoryUpdateInvalid)),
    )
)]
#[tracing::instrument(skip_all)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<CategoryUpdate>,
) -> ApiResult<Json<Category>> {
    let id = parse_id(&id, "category")?;
    let mut errors = Vec::new();
    let name = not_null("name", body.name, &mut errors)
        .map(|v| validate::text("name", &v, 1, 100, &mut errors));
    let slug = not_null("slug", body.slug, &mut errors).map(|v| validate::slug(&v, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.db.begin().await?;
    lock_tree(&mut tx).await?;
    if let Some(Some(parent)) = body.parent_id {
        check_parent(&mut tx, parent).await?;
        // The new parent must not be this category or one of its descendants.
        let cycle: bool = sqlx::query_scalar(
            "WITH RECURSIVE sub(id) AS (
                SELECT $1::uuid
                UNION
                SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id)
             SELECT EXISTS (SELECT 1 FROM sub WHERE id = $2)",
        )
        .bind(id)
        .bind(parent)
        .fetch_one(&mut *tx)
        .await?;
        if cycle {
            return Err(ApiError::invalid_field(
                "parent_id",
                "cannot be the category itself or one of its sub-categories",
            ));
        }
    }
    let category: Option<Category> = sqlx::query_as(
        "UPDATE categories SET name = COALESCE($2, name), slug = COALESCE($3, slug),
            parent_id = CASE WHEN $4 THEN $5 ELSE parent_id END, updated_at = now()
         WHERE id = $1 RETURNING id, name, slug, parent_id",
    )
    .bind(id)
    .bind(name)
    .bind(slug)
    .bind(body.parent_id.is_some())
    .bind(body.parent_id.flatten())
    .fetch_optional(&mut *tx)
    .await
    .map_err(slug_taken)?;
    let category = category.ok_or_else(|| ApiError::not_found("no such category"))?;
    tx.commit().await?;
    // A move changes which products a category's listing holds.
    state.cache.forget_all();
    Ok(Json(category))
}

/// Delete a category (admin)
///
/// Deletes an empty category. While it has sub-categories or products (archived ones included)
/// the answer is 409 `category_in_use`. Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    delete,
    path = "/api/v1/categories/{id}",
    operation_id = "deleteCategory",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = CATEGORY_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 409, response = inline(CategoryInUse)),
    )
)]
#[tracing::instrument(skip_all)]
async fn remove(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "category")?;
    let mut tx = state.db.begin().await?;
    lock_tree(&mut tx).await?;
    let deleted = sqlx::query("DELETE FROM categories WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await;
    match deleted {
        Ok(r) if r.rows_affected() == 0 => Err(ApiError::not_found("no such category")),
        Ok(_) => {
            tx.commit().await?;
            state.cache.forget_all();
            Ok(StatusCode::NO_CONTENT)
        }
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Err(ApiError::conflict(
            ErrorCode::CategoryInUse,
            CATEGORY_IN_USE,
        )),
        Err(e) => Err(e.into()),
    }
}
