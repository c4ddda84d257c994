//! `/docs`: the public API's document as a page (Swagger UI, embedded in the gateway), in a real
//! headless Chromium: reached from the storefront's footer, it loads `/openapi.json` and lists
//! the operations, with nothing in the console (its own Content-Security-Policy allows what
//! it needs and nothing from elsewhere).

use crate::browser::Browser;
use crate::helpers::App;

#[tokio::test]
async fn the_docs_page_lists_the_operations() {
    let app = App::spawn().await;
    let page = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self';")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("http"),
        "{csp}"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("swagger-initializer.js")
    );

    let browser = Browser::start(app.platform.gateway()).await;
    browser.open("").await;
    browser.click("footer a[href='/docs']").await;
    // Swagger UI fetches the document and renders one block per operation, its
    // operationId shown.
    for text in ["/api/v1/auth/login", "getJwks", "listUsers"] {
        browser
            .until(&format!("document.body.innerText.includes({text:?})"))
            .await;
    }
    browser.until("location.pathname === '/docs/'").await;
    browser.screenshot("docs").await;
    browser.assert_clean_console(&[]).await;
    browser.quit().await;
}
