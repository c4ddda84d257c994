//! The catalog through the gateway: products, categories, listing (filters, search, sort,
//! keyset pages), admin-only writes, bad input, and the listing's index use.

use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use crate::helpers::App;

pub async fn create_category(
    app: &App,
    token: &str,
    name: &str,
    slug: &str,
    parent: Option<&str>,
) -> String {
    let res = app
        .post(
            "/api/v1/categories",
            Some(token),
            json!({"name": name, "slug": slug, "parent_id": parent}),
        )
        .await;
    res.expect(201, None)["id"].as_str().unwrap().to_owned()
}

/// Creates a product as `token` (an admin) and answers its JSON.
pub async fn create_product(
    app: &App,
    token: &str,
    sku: &str,
    price: i64,
    stock: i64,
    categories: &[&str],
) -> Value {
    let res = app
        .post(
            "/api/v1/products",
            Some(token),
            json!({
                "sku": sku, "name": format!("Product {sku}"), "description": "A fine thing",
                "price_cents": price, "currency": "usd", "category_ids": categories, "stock": stock
            }),
        )
        .await;
    res.expect(201, None).clone()
}

/// The ids of a listing page, in order.
pub(crate) fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admin_manages_products_and_customers_cannot_write() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let shoes = create_category(&app, &admin.token, "Shoes", "shoes", None).await;

    let body = json!({"sku": "SH-1", "name": "Runner", "description": "Light running shoe",
        "price_cents": 4999, "currency": "usd", "category_ids": [shoes], "stock": 7});
    app.post("/api/v1/products", None, body.clone())
        .await
        .expect(401, Some("unauthorized"));
    app.post("/api/v1/products", Some(&customer.token), body.clone())
        .await
        .expect(403, Some("forbidden"));
    let created = app
        .post("/api/v1/products", Some(&admin.token), body.clone())
        .await;
    let product = created.expect(201, None).clone();
    assert_eq!(product["sku"], "SH-1");
    assert_eq!(product["price_cents"], 4999);
    assert_eq!(product["currency"], "usd");
    assert_eq!(product["stock"], 7);
    assert_eq!(product["active"], true);
    assert_eq!(product["category_ids"], json!([shoes]));
    for field in ["id", "name", "description", "created_at", "updated_at"] {
        assert!(product.get(field).is_some(), "{field} missing: {product}");
    }
    let id = product["id"].as_str().unwrap();
    let path = format!("/api/v1/products/{id}");

    // SKU unique.
    app.post("/api/v1/products", Some(&admin.token), body.clone())
        .await
        .expect(409, Some("sku_taken"));

    // Anyone reads.
    let got = app.get(&path, None).await;
    assert_eq!(got.expect(200, None)["name"], "Runner");

    // Customer writes are 403 everywhere; anonymous ones 401.
    app.patch(&path, Some(&customer.token), json!({"price_cents": 1}))
        .await
        .expect(403, Some("forbidden"));
    app.put(
        &format!("{path}/stock"),
        Some(&customer.token),
        json!({"stock": 1}),
    )
    .await
    .expect(403, Some("forbidden"));
    app.delete(&path, Some(&customer.token))
        .await
        .expect(403, Some("forbidden"));
    app.delete(&path, None)
        .await
        .expect(401, Some("unauthorized"));
    app.post(
        "/api/v1/categories",
        Some(&customer.token),
        json!({"name": "X", "slug": "x"}),
    )
    .await
    .expect(403, Some("forbidden"));

    // Admin edits.
    let patched = app
        .patch(
            &path,
            Some(&admin.token),
            json!({"price_cents": 3999, "name": "Runner 2", "category_ids": []}),
        )
        .await;
    let patched = patched.expect(200, None);
    assert_eq!(patched["price_cents"], 3999);
    assert_eq!(patched["name"], "Runner 2");
    assert_eq!(patched["sku"], "SH-1");
    assert_eq!(patched["category_ids"], json!([]));
    app.patch(&path, Some(&admin.token), json!({"price_cents": -1}))
        .await
        .expect(422, Some("validation_failed"));
    app.patch(&path, Some(&admin.token), json!({"name": null}))
        .await
        .expect(422, Some("validation_failed"));
    let stock = app
        .put(
            &format!("{path}/stock"),
            Some(&admin.token),
            json!({"stock": 12}),
        )
        .await;
    assert_eq!(stock.expect(200, None)["stock"], 12);
    app.put(
        &format!("{path}/stock"),
        Some(&admin.token),
        json!({"stock": -1}),
    )
    .await
    .expect(422, Some("validation_failed"));
    let other = create_product(&app, &admin.token, "SH-2", 100, 1, &[]).await;
    app.patch(&path, Some(&admin.token), json!({"sku": other["sku"]}))
        .await
        .expect(409, Some("sku_taken"));

    // Archive, not delete: hidden from the list, still readable, idempotent.
    app.delete(&path, Some(&admin.token))
        .await
        .expect(204, None);
    app.delete(&path, Some(&admin.token))
        .await
        .expect(204, None);
    assert_eq!(
        app.get(&path, None).await.expect(200, None)["active"],
        false
    );
    let list = app.get("/api/v1/products", None).await;
    assert_eq!(
        ids(list.expect(200, None)),
        vec![other["id"].as_str().unwrap().to_owned()]
    );
    // ...and can be brought back.
    let back = app
        .patch(&path, Some(&admin.token), json!({"active": true}))
        .await;
    assert_eq!(back.expect(200, None)["active"], true);

    // Unknown and malformed ids are 404.
    app.get(&format!("/api/v1/products/{}", uuid::Uuid::now_v7()), None)
        .await
        .expect(404, Some("not_found"));
    app.get("/api/v1/products/not-a-uuid", None)
        .await
        .expect(404, Some("not_found"));
    app.delete(
        &format!("/api/v1/products/{}", uuid::Uuid::now_v7()),
        Some(&admin.token),
    )
    .await
    .expect(404, Some("not_found"));

    // One currency per shop; unknown categories are refused.
    let mut eur = body.clone();
    eur["sku"] = json!("EU-1");
    eur["currency"] = json!("eur");
    let res = app.post("/api/v1/products", Some(&admin.token), eur).await;
    assert_eq!(
        res.expect(422, Some("validation_failed"))["errors"][0]["field"],
        "currency"
    );
    let mut unknown_cat = body.clone();
    unknown_cat["sku"] = json!("UC-1");
    unknown_cat["category_ids"] = json!([uuid::Uuid::now_v7()]);
    app.post("/api/v1/products", Some(&admin.token), unknown_cat)
        .await
        .expect(422, Some("category_not_found"));
}

#[tokio::test]
async fn categories_form_a_tree() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let t = Some(admin.token.as_str());
    let clothes = create_category(&app, &admin.token, "Clothes", "clothes", None).await;
    let shirts = create_category(&app, &admin.token, "Shirts", "shirts", Some(&clothes)).await;
    let list = app.get("/api/v1/categories", None).await;
    let items = list.expect(200, None)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], clothes.as_str());
    assert_eq!(items[1]["parent_id"], clothes.as_str());
    assert_eq!(items[1]["slug"], "shirts");

    app.post(
        "/api/v1/categories",
        t,
        json!({"name": "Again", "slug": "shirts"}),
    )
    .await
    .expect(409, Some("slug_taken"));
    app.post(
        "/api/v1/categories",
        t,
        json!({"name": "Bad", "slug": "Not A Slug"}),
    )
    .await
    .expect(422, Some("validation_failed"));
    app.post(
        "/api/v1/categories",
        t,
        json!({"name": "Orphan", "slug": "orphan", "parent_id": uuid::Uuid::now_v7()}),
    )
    .await
    .expect(422, Some("category_not_found"));
    // No cycles: a category cannot move under itself or its descendants.
    app.patch(
        &format!("/api/v1/categories/{clothes}"),
        t,
        json!({"parent_id": shirts}),
    )
    .await
    .expect(422, Some("validation_failed"));
    app.patch(
        &format!("/api/v1/categories/{clothes}"),
        t,
        json!({"parent_id": clothes}),
    )
    .await
    .expect(422, Some("validation_failed"));
    let renamed = app
        .patch(
            &format!("/api/v1/categories/{shirts}"),
            t,
            json!({"name": "Tees", "parent_id": null}),
        )
        .await;
    let renamed = renamed.expect(200, None);
    assert_eq!(renamed["name"], "Tees");
    assert_eq!(renamed["parent_id"], Value::Null);
    app.patch(
        &format!("/api/v1/categories/{shirts}"),
        t,
        json!({"parent_id": clothes}),
    )
    .await
    .expect(200, None);

    // In use: children or products.
    app.delete(&format!("/api/v1/categories/{clothes}"), t)
        .await
        .expect(409, Some("category_in_use"));
    create_product(&app, &admin.token, "TEE-1", 1500, 3, &[&shirts]).await;
    app.delete(&format!("/api/v1/categories/{shirts}"), t)
        .await
        .expect(409, Some("category_in_use"));
    let empty = create_category(&app, &admin.token, "Empty", "empty", None).await;
    app.delete(&format!("/api/v1/categories/{empty}"), None)
        .await
        .expect(401, Some("unauthorized"));
    app.delete(&format!("/api/v1/categories/{empty}"), t)
        .await
        .expect(204, None);
    app.delete(&format!("/api/v1/categories/{empty}"), t)
        .await
        .expect(404, Some("not_found"));
}

#[tokio::test]
async fn listing_filters_searches_sorts_and_pages() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let tk = &admin.token;
    let home = create_category(&app, tk, "Home", "home", None).await;
    let kitchen = create_category(&app, tk, "Kitchen", "kitchen", Some(&home)).await;
    let garden = create_category(&app, tk, "Garden", "garden", None).await;

    let mut all = Vec::new();
    for i in 0..10i64 {
        let cat = match i % 3 {
            0 => home.as_str(),
            1 => kitchen.as_str(),
            _ => garden.as_str(),
        };
        let p = create_product(
            &app,
            tk,
            &format!("SKU-{i}"),
            1000 + (i % 5) * 100,
            5,
            &[cat],
        )
        .await;
        all.push(p);
    }
    let kettle = app
        .post(
            "/api/v1/products",
            Some(tk),
            json!({"sku": "KET-1", "name": "Copper kettle",
            "description": "Boils water on any stove", "price_cents": 2500, "currency": "usd",
            "category_ids": [kitchen], "stock": 2}),
        )
        .await
        .expect(201, None)
        .clone();
    let archived = create_product(&app, tk, "OLD-1", 10, 1, &[&kitchen]).await;
    app.delete(
        &format!("/api/v1/products/{}", archived["id"].as_str().unwrap()),
        Some(tk),
    )
    .await
    .expect(204, None);

    // Default sort is newest first, archived hidden.
    let list = app.get("/api/v1/products", None).await;
    let body = list.expect(200, None);
    let got = ids(body);
    assert_eq!(got.len(), 11);
    assert_eq!(got[0], kettle["id"].as_str().unwrap());
    assert_eq!(body["next_cursor"], Value::Null);
    assert!(!got.contains(&archived["id"].as_str().unwrap().to_owned()));

    // A category includes its sub-categories.
    let home_list = app
        .get(&format!("/api/v1/products?category={home}"), None)
        .await;
    assert_eq!(ids(home_list.expect(200, None)).len(), 4 + 3 + 1);
    let kitchen_list = app
        .get(
            &format!("/api/v1/products?category={kitchen}&limit=100"),
            None,
        )
        .await;
    assert_eq!(ids(kitchen_list.expect(200, None)).len(), 3 + 1);
    let nothing = app
        .get(
            &format!("/api/v1/products?category={}", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(ids(nothing.expect(200, None)).len(), 0);

    // Text search (stemmed: "boiling" finds "Boils").
    for q in ["kettle", "boiling", "copper%20kettle"] {
        let found = app.get(&format!("/api/v1/products?q={q}"), None).await;
        assert_eq!(
            ids(found.expect(200, None)),
            vec![kettle["id"].as_str().unwrap().to_owned()],
            "q={q}"
        );
    }
    let none = app.get("/api/v1/products?q=submarine", None).await;
    assert!(ids(none.expect(200, None)).is_empty());

    // Price range, inclusive.
    let range = app
        .get("/api/v1/products?min_price=1200&max_price=1300", None)
        .await;
    let body = range.expect(200, None).clone();
    assert_eq!(ids(&body).len(), 4);
    for p in body["items"].as_array().unwrap() {
        let price = p["price_cents"].as_i64().unwrap();
        assert!((1200..=1300).contains(&price));
    }

    // Sorts.
    let asc = app
        .get("/api/v1/products?sort=price_asc&limit=100", None)
        .await;
    let prices: Vec<i64> = asc.expect(200, None)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price_cents"].as_i64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    assert_eq!(*prices.last().unwrap(), 2500);
    let desc = app.get("/api/v1/products?sort=price_desc", None).await;
    assert_eq!(desc.expect(200, None)["items"][0]["price_cents"], 2500);

    // Keyset pages stay correct while products are added between pages.
    for sort in ["newest", "price_asc", "price_desc"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/v1/products?sort={sort}&limit=4");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = app.get(&path, None).await;
            let body = page.expect(200, None).clone();
            seen.extend(ids(&body));
            pages += 1;
            if pages == 1 {
                // Added mid-way: never shows up twice or shifts what comes next.
                create_product(&app, tk, &format!("MID-{sort}"), 1000, 1, &[]).await;
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{sort}: duplicates across pages");
        for p in all.iter().chain([&kettle]) {
            assert!(
                seen.contains(&p["id"].as_str().unwrap().to_owned()),
                "{sort}: a product was skipped"
            );
        }
    }

    // Malformed filters, sorts, limits and cursors are 422 problem+json, never 500.
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=%21%21",
        "cursor=eyJ4IjoxfQ",
        "sort=cheapest",
        "min_price=-1",
        "max_price=1.5",
        "min_price=ten",
        "category=not-a-uuid",
    ] {
        let res = app.get(&format!("/api/v1/products?{bad}"), None).await;
        res.expect(422, Some("validation_failed"));
    }
    // A cursor from one sort does not work with another.
    let first = app
        .get("/api/v1/products?sort=price_asc&limit=2", None)
        .await;
    let c = first.expect(200, None)["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!("/api/v1/products?sort=newest&cursor={c}"), None)
        .await
        .expect(422, Some("validation_failed"));
}

/// Through the gateway; the service's own checks of each field, of malformed and mistyped
/// bodies are in services/product/tests/validation.rs (in-process, no database).
#[tokio::test]
async fn bad_input_is_problem_json() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let raw = |body: &'static str| {
        app.http
            .post(app.url("/api/v1/products"))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body(body)
    };
    // Unknown fields are ignored (API.md).
    let extra = app
        .send(raw(r#"{"sku":"X-1","name":"A","description":"","price_cents":5,"currency":"usd","stock":1,"colour":"red","active":false}"#))
        .await;
    let extra = extra.expect(201, None);
    assert!(extra.get("colour").is_none());
    assert_eq!(
        extra["active"], true,
        "create takes no `active`; it is ignored like any unknown field"
    );
    // Not JSON at all.
    let text = app
        .send(
            app.http
                .post(app.url("/api/v1/products"))
                .bearer_auth(&admin.token)
                .header("content-type", "text/plain")
                .body("hi"),
        )
        .await;
    text.expect(415, Some("unsupported_media_type"));
    // Over 1 MiB.
    let big = format!(
        r#"{{"sku":"B","name":"B","description":"{}","price_cents":1,"currency":"usd","stock":1}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let res = app
        .send(
            app.http
                .post(app.url("/api/v1/products"))
                .bearer_auth(&admin.token)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_eq!(res.status.as_u16(), 413);
}

/// Seeds 10,000 products and checks that every listing statement the service runs uses an
/// index on `products` rather than a sequential scan. The plans are printed (run with
/// `--nocapture`) and summarised in `services/product/src/listing.rs`.
#[tokio::test]
async fn listing_queries_use_indexes() {
    use souk_product::listing::{Sort, statement};
    let app = App::spawn().await;
    let admin = app.admin().await;
    let cat = create_category(&app, &admin.token, "Bulk", "bulk", None).await;
    let cat: uuid::Uuid = cat.parse().unwrap();
    let db = app.db("product").await;
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_cents, currency, stock, active)
         SELECT gen_random_uuid(), 'BULK-' || n, 'Item ' || n || ' ' || (ARRAY['lamp','chair','table','mug','rug'])[1 + n % 5],
                'Bulk seeded product number ' || n, (n * 37) % 100000, 'usd', n % 50, n % 20 <> 0
         FROM generate_series(1, 10000) AS n",
    )
    .execute(&db)
    .await
    .unwrap();
    // Ten categories (ours and nine more), a tenth of the products in each.
    sqlx::query(
        "INSERT INTO categories (id, name, slug)
         SELECT gen_random_uuid(), 'Cat ' || n, 'cat-' || n FROM generate_series(1, 9) AS n",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO product_categories (product_id, category_id)
         SELECT p.id, c.id FROM products p
         JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM categories) c
           ON c.k = substring(p.sku FROM 6)::int % 10
         WHERE p.sku LIKE 'BULK-%'",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("ANALYZE products").execute(&db).await.unwrap();
    sqlx::query("ANALYZE product_categories")
        .execute(&db)
        .await
        .unwrap();
    let all_categories: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM categories")
        .fetch_all(&db)
        .await
        .unwrap();
    // The service plans with real values; so must the check.
    sqlx::query("SET plan_cache_mode = force_custom_plan")
        .execute(&db)
        .await
        .unwrap();

    struct Case {
        name: &'static str,
        sort: Sort,
        q: Option<&'static str>,
        min: Option<i64>,
        max: Option<i64>,
        cats: Option<Vec<uuid::Uuid>>,
        cursor: Option<(i64, uuid::Uuid)>,
    }
    let base = || Case {
        name: "",
        sort: Sort::Newest,
        q: None,
        min: None,
        max: None,
        cats: None,
        cursor: None,
    };
    let cases = vec![
        Case {
            name: "newest",
            ..base()
        },
        Case {
            name: "newest, page 2",
            cursor: Some((0, uuid::Uuid::max())),
            ..base()
        },
        Case {
            name: "newest, price range",
            min: Some(1000),
            max: Some(5000),
            ..base()
        },
        Case {
            name: "price_asc",
            sort: Sort::PriceAsc,
            ..base()
        },
        Case {
            name: "price_asc, narrow range",
            sort: Sort::PriceAsc,
            min: Some(1000),
            max: Some(1200),
            ..base()
        },
        Case {
            name: "price_desc, page 2",
            sort: Sort::PriceDesc,
            cursor: Some((50000, uuid::Uuid::nil())),
            ..base()
        },
        Case {
            name: "category",
            cats: Some(vec![cat]),
            ..base()
        },
        // Category + price order: from the links' (category, price, product) index.
        Case {
            name: "category, price_asc",
            sort: Sort::PriceAsc,
            cats: Some(vec![cat]),
            ..base()
        },
        Case {
            name: "category, price range, price_desc, page 2",
            sort: Sort::PriceDesc,
            min: Some(1000),
            max: Some(50000),
            cats: Some(vec![cat]),
            cursor: Some((40000, uuid::Uuid::nil())),
            ..base()
        },
        Case {
            name: "category with ten sub-categories, price_asc",
            sort: Sort::PriceAsc,
            min: Some(1000),
            cats: Some(all_categories.clone()),
            ..base()
        },
        // A frequent term walks the newest index; a rare one goes through the GIN index.
        Case {
            name: "search, frequent term",
            q: Some("lamp"),
            ..base()
        },
        Case {
            name: "search, rare term",
            q: Some("lamp 1234"),
            ..base()
        },
        Case {
            name: "search, price_asc",
            sort: Sort::PriceAsc,
            q: Some("chair"),
            ..base()
        },
    ];
    for case in cases {
        let sql = format!(
            "EXPLAIN {}",
            statement(case.sort, case.q.is_some(), case.cats.is_some())
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .bind(case.min)
            .bind(case.max)
            .bind(case.cats.clone())
            .bind(21i64)
            .bind(case.cursor.map(|c| c.0))
            .bind(case.cursor.map(|c| c.1));
        if let Some(q) = case.q {
            query = query.bind(q);
        }
        let plan = query.fetch_all(&db).await.unwrap().join("\n");
        println!("--- {}\n{plan}", case.name);
        assert!(
            !plan.contains("Seq Scan on products"),
            "{}: sequential scan\n{plan}",
            case.name
        );
        assert!(
            plan.contains("Index"),
            "{}: no index used\n{plan}",
            case.name
        );
        if case.name == "search, rare term" {
            assert!(
                plan.contains("products_active_search"),
                "rare term without the GIN index\n{plan}"
            );
        }
        if case.name.starts_with("category,") || case.name.starts_with("category with") {
            assert!(
                plan.contains("product_categories_active_price"),
                "{}: not from the category price index\n{plan}",
                case.name
            );
            assert!(
                !plan.contains("Seq Scan") && !plan.contains("products_active_"),
                "{}: walks products instead of the links\n{plan}",
                case.name
            );
        }
        if case.name == "category" {
            assert!(
                !plan.contains("Seq Scan on product_categories"),
                "category without its index\n{plan}"
            );
        }
    }
}
