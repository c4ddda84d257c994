//! `souk up --demo`: fills an empty shop with a small catalog through the public API, as an
//! admin would: a category tree, a few dozen products with descriptions and pictures the
//! gateway draws itself (`<gateway>/images/demo/...`: absolute URLs, as the API requires, so
//! they name the address the shop was seeded through), and a demo shopper with an address. A shop that
//! already has products is left alone, so running it again changes nothing.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The admin `souk up --demo` seeds when `SOUK_ADMIN_EMAIL`/`SOUK_ADMIN_PASSWORD` are not set.
/// A local demo only: the password is public.
pub const DEMO_ADMIN: (&str, &str) = ("demo-admin@example.com", "demo-admin-password");
/// The demo shopper (a customer with a shipping address).
pub const DEMO_SHOPPER: (&str, &str) = ("demo-shopper@example.com", "demo-shopper-password");

/// slug, name, parent slug.
const CATEGORIES: &[(&str, &str, Option<&str>)] = &[
    ("kitchen", "Kitchen", None),
    ("tea-coffee", "Tea & coffee", Some("kitchen")),
    ("tableware", "Tableware", Some("kitchen")),
    ("home", "Home", None),
    ("lighting", "Lighting", Some("home")),
    ("textiles", "Textiles", Some("home")),
    ("garden", "Garden", None),
    ("plants", "Plants", Some("garden")),
    ("tools", "Tools", Some("garden")),
    ("stationery", "Stationery", None),
];

/// category slug, motif (a drawing of the gateway's), and (name, description, price in cents).
type Line = (&'static str, &'static str, i64);
const PRODUCTS: &[(&str, &str, &[Line])] = &[
    (
        "tea-coffee",
        "teapot",
        &[
            (
                "Cast-iron teapot",
                "Heavy Japanese-style tetsubin that keeps tea hot for an hour.\nEnamelled inside; 0.8 l.",
                5400,
            ),
            (
                "Glass teapot",
                "Borosilicate glass with a steel infuser: watch the leaves open.",
                2900,
            ),
            (
                "Clay tea kettle",
                "Unglazed clay that seasons with every brew.",
                3800,
            ),
        ],
    ),
    (
        "tea-coffee",
        "cup",
        &[
            (
                "Espresso cup",
                "Thick porcelain walls for a hot, small coffee. 80 ml.",
                1200,
            ),
            (
                "Latte mug",
                "Wide stoneware mug with room for foam. 350 ml.",
                1600,
            ),
            (
                "Travel tumbler",
                "Double-walled steel, leak-proof lid, keeps drinks hot for 6 hours.",
                2400,
            ),
        ],
    ),
    (
        "tableware",
        "bowl",
        &[
            (
                "Ramen bowl",
                "Deep stoneware bowl with a speckled glaze. 1.1 l.",
                1900,
            ),
            (
                "Salad bowl",
                "Turned from one piece of acacia wood. 28 cm.",
                3400,
            ),
            (
                "Rice bowls, set of 4",
                "Small porcelain bowls in four glazes.",
                2800,
            ),
        ],
    ),
    (
        "tableware",
        "plate",
        &[
            (
                "Dinner plate",
                "Matte stoneware, 27 cm, dishwasher safe.",
                1500,
            ),
            (
                "Side plates, set of 4",
                "20 cm plates with a hand-painted rim.",
                3200,
            ),
            (
                "Serving platter",
                "Oval platter for a whole roast or a cheese board. 40 cm.",
                4100,
            ),
        ],
    ),
    (
        "lighting",
        "lamp",
        &[
            ("Desk lamp", "Adjustable arm, warm LED, dimmable.", 6900),
            ("Bedside lamp", "Linen shade on a ceramic base.", 4800),
            (
                "Floor lamp",
                "Tall brass lamp that lights a reading corner.",
                12900,
            ),
        ],
    ),
    (
        "textiles",
        "cushion",
        &[
            (
                "Linen cushion",
                "Washed linen cover with a feather insert. 45 x 45 cm.",
                3500,
            ),
            (
                "Velvet cushion",
                "Soft cotton velvet in a deep colour. 50 x 30 cm.",
                3900,
            ),
        ],
    ),
    (
        "textiles",
        "blanket",
        &[
            (
                "Wool throw",
                "Lambswool throw woven in a small mill. 130 x 180 cm.",
                8900,
            ),
            (
                "Cotton blanket",
                "Light waffle-weave blanket for summer nights.",
                5600,
            ),
        ],
    ),
    (
        "plants",
        "plant",
        &[
            (
                "Fiddle-leaf fig",
                "A young Ficus lyrata in a 17 cm pot; likes bright light.",
                3900,
            ),
            (
                "Snake plant",
                "Sansevieria that forgives forgotten watering.",
                2200,
            ),
            (
                "Herb trio",
                "Basil, thyme and rosemary for a sunny window sill.",
                1800,
            ),
        ],
    ),
    (
        "tools",
        "trowel",
        &[
            ("Hand trowel", "Stainless steel blade, ash handle.", 1700),
            (
                "Transplanting trowel",
                "Narrow blade with depth marks for bulbs.",
                1900,
            ),
        ],
    ),
    (
        "tools",
        "basket",
        &[
            (
                "Harvest basket",
                "Willow basket for vegetables and cut flowers.",
                3100,
            ),
            ("Log basket", "Sturdy seagrass basket with handles.", 4400),
        ],
    ),
    (
        "stationery",
        "notebook",
        &[
            (
                "Dotted notebook",
                "A5, 160 pages of fountain-pen-friendly paper.",
                1800,
            ),
            (
                "Sketchbook",
                "Heavy paper for pencil and watercolour. A4.",
                2400,
            ),
            (
                "Pocket notebook",
                "Three slim notebooks for a jacket pocket.",
                1100,
            ),
        ],
    ),
    (
        "stationery",
        "pen",
        &[
            (
                "Fountain pen",
                "Steel nib, piston filler, a pen for years.",
                4900,
            ),
            (
                "Brass pencil",
                "Mechanical pencil that gains a patina. 0.7 mm.",
                3600,
            ),
        ],
    ),
];

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        status: u16,
    ) -> anyhow::Result<Value> {
        let (got, answer) = self.call(method.clone(), path, Some(body)).await?;
        if got != status {
            bail!("{method} {path} answered {got}: {answer}");
        }
        Ok(answer)
    }

    async fn sign_in(&mut self, (email, password): (&str, &str)) -> anyhow::Result<()> {
        let tokens = self
            .expect(
                reqwest::Method::POST,
                "/auth/login",
                json!({"email": email, "password": password}),
                200,
            )
            .await
            .with_context(|| format!("signing in as {email}"))?;
        self.token = tokens["access_token"].as_str().map(str::to_owned);
        Ok(())
    }
}

/// What seeding did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    /// The catalog already had products: nothing was changed.
    AlreadyStocked,
    Catalog {
        categories: usize,
        products: usize,
    },
}

/// Fills the shop at `gateway` (its base URL) if it has no products yet, signed in as `admin`.
pub async fn seed(gateway: &str, admin: (&str, &str)) -> anyhow::Result<Seeded> {
    let mut api = Api {
        http: reqwest::Client::new(),
        base: gateway.trim_end_matches('/').to_owned(),
        token: None,
    };
    let (status, page) = api
        .call(reqwest::Method::GET, "/products?limit=1", None)
        .await?;
    if status != 200 {
        bail!("listing products answered {status}: {page}");
    }
    if page["items"]
        .as_array()
        .is_some_and(|items| !items.is_empty())
    {
        return Ok(Seeded::AlreadyStocked);
    }
    api.sign_in(admin).await?;
    let mut ids = std::collections::HashMap::new();
    for (slug, name, parent) in CATEGORIES {
        let mut body = json!({"name": name, "slug": slug});
        if let Some(parent) = parent {
            body["parent_id"] = json!(ids[parent]);
        }
        let made = api
            .expect(reqwest::Method::POST, "/categories", body, 201)
            .await?;
        ids.insert(
            *slug,
            made["id"].as_str().context("category id")?.to_owned(),
        );
    }
    let mut products = 0;
    for (group, (category, motif, lines)) in PRODUCTS.iter().enumerate() {
        for (i, (name, description, price)) in lines.iter().enumerate() {
            // Neighbouring groups get distant hues; items of one group, close ones.
            let hue = (group * 137 + i * 23) % 360;
            let body = json!({
                "sku": format!("DEMO-{:03}", products + 1),
                "name": name,
                "description": description,
                "price_cents": price,
                "currency": "usd",
                "category_ids": [ids[category]],
                "stock": 5 + (products * 7) % 40,
                "image_url": format!("{}/images/demo/{motif}-{hue}.svg", api.base),
            });
            api.expect(reqwest::Method::POST, "/products", body, 201)
                .await?;
            products += 1;
        }
    }
    // One product sold in sizes: a variant per size, each with its own SKU, price and stock.
    let variant = |size: &str, price: i64, stock: i64| {
        json!({"sku": format!("DEMO-APRON-{size}"), "option_values": {"size": size},
               "price_cents": price, "stock": stock})
    };
    let apron = json!({
        "sku": "DEMO-APRON",
        "name": "Linen apron",
        "description": "Stonewashed linen with a long neck strap. Pick your size.",
        "currency": "usd",
        "category_ids": [ids["textiles"]],
        "options": [{"name": "size", "values": ["S", "M", "L"]}],
        "variants": [variant("S", 3200, 6), variant("M", 3200, 12), variant("L", 3600, 4)],
        "image_url": format!("{}/images/demo/cushion-40.svg", api.base),
    });
    api.expect(reqwest::Method::POST, "/products", apron, 201)
        .await?;
    products += 1;
    shopper(&mut api).await?;
    Ok(Seeded::Catalog {
        categories: CATEGORIES.len(),
        products,
    })
}

/// The demo shopper, with an address (kept if the account exists already).
async fn shopper(api: &mut Api) -> anyhow::Result<()> {
    let (email, password) = DEMO_SHOPPER;
    api.token = None;
    let body = json!({"email": email, "password": password, "name": "Demo Shopper"});
    let (status, answer) = api
        .call(reqwest::Method::POST, "/auth/register", Some(body))
        .await?;
    if status == 409 {
        return Ok(());
    }
    if status != 201 {
        bail!("registering the demo shopper answered {status}: {answer}");
    }
    api.token = answer["access_token"].as_str().map(str::to_owned);
    let address = json!({"shipping_address": {"name": "Demo Shopper", "line1": "1 Market Street",
        "city": "Springfield", "postal_code": "12345", "country": "US"}});
    api.expect(reqwest::Method::PATCH, "/users/me", address, 200)
        .await?;
    Ok(())
}
