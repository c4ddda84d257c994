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
use uuid::Uuid;

use crate::AppState;
use crate::validate::{self, double_option, not_null};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/categories", get(list).post(create))
        .route(
            "/api/v1/categories/{id}",
            get(show).patch(update).delete(remove),
        )
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Category {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub parent_id: Option<Uuid>,
}

#[derive(Serialize)]
struct CategoryList {
    items: Vec<Category>,
}

/// Every category (a shop has few), parents before children, then by name.
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

#[derive(Deserialize)]
struct NewCategory {
    name: String,
    slug: String,
    #[serde(default)]
    parent_id: Option<Uuid>,
}

fn slug_taken(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some("categories_slug_key") => ApiError::conflict(
            ErrorCode::SlugTaken,
            "a category with this slug already exists",
        ),
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

#[derive(Deserialize)]
struct CategoryUpdate {
    #[serde(default, deserialize_with = "double_option")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    slug: Option<Option<String>>,
    /// `null` makes it a top-level category.
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<Uuid>>,
}

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

/// 409 `category_in_use` while it has sub-categories or products (archived ones included).
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
            "the category still has sub-categories or products; move or archive them first",
        )),
        Err(e) => Err(e.into()),
    }
}
