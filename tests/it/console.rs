//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`) driven over WebDriver against a real node, and the
//! same console's refusals checked with plain HTTP.
//!
//! Without chromedriver the browser parts are skipped with a note, so that `cargo test` works on a
//! fresh machine; `.ci/run` installs it and sets `KEYLEDGER_REQUIRE_BROWSER=1`, under which a
//! missing browser fails the test. `KEYLEDGER_SCREENSHOTS=DIR` also saves the screenshots
//! `docs/console.md` shows into `DIR`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use keyledger_client::ListKeys;
use keyledger_wire as wire;
use serde_json::json;

use crate::util::{enroll, expect_refused, free_loopback_url, new_key, poll, user_with_key, verify_req, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// WebDriver's Enter and Tab keys.
const ENTER: &str = "\u{E007}";
const TAB: &str = "\u{E004}";

/// A chromedriver process and a headless Chromium session on it; both end when dropped.
struct Chromium {
    driver: Child,
    browser: Browser,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Debian's paths, or the ones given by `CHROMEDRIVER` and `CHROMIUM`.
fn tool(var: &str, debian: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| debian.to_string())
}

async fn chromium() -> Option<Chromium> {
    let url = free_loopback_url();
    let port = url.rsplit(':').next().expect("a port").to_string();
    let spawned = Command::new(tool("CHROMEDRIVER", "/usr/bin/chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let driver = match spawned {
        Ok(driver) => driver,
        Err(e) if std::env::var_os("KEYLEDGER_REQUIRE_BROWSER").is_some() => {
            panic!("chromedriver: {e}; install Debian's chromium and chromium-driver (.ci/run does)")
        }
        Err(e) => {
            eprintln!("SKIPPED the browser part: chromedriver: {e} (install chromium and chromium-driver)");
            return None;
        }
    };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": tool("CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = poll("chromedriver to accept a session", WAIT, async || {
        ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    Some(Chromium { driver, browser })
}

async fn find(browser: &Browser, css: &str) -> Element {
    browser.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// The text of `css` on the page, read again if the page changed under it (a post's answer
/// replacing the page the element was found on).
async fn text_of(browser: &Browser, css: &str) -> String {
    poll(css, WAIT, async || find(browser, css).await.text().await.map_err(|e| e.to_string())).await
}

/// Waits until `css` holds `expected`: after a click, the page that shows the answer may not
/// have replaced the one that was clicked yet.
async fn wait_text(browser: &Browser, css: &str, expected: &str) {
    poll(&format!("{css} to say {expected:?}"), WAIT, async || {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        if text.contains(expected) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await
}

async fn fill(browser: &Browser, css: &str, value: &str) {
    let field = find(browser, css).await;
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

async fn click(browser: &Browser, css: &str) {
    find(browser, css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn path_of(browser: &Browser) -> String {
    browser.current_url().await.expect("url").path().to_string()
}

async fn sign_in(browser: &Browser, base: &str, api_key: &str) {
    browser.goto(&format!("{base}/ui/sign-in")).await.expect("open sign-in");
    fill(browser, "#api_key", api_key).await;
    click(browser, "form[action='/ui/sign-in'] button").await;
    find(browser, "table#keys").await;
}

async fn screenshot(browser: &Browser, name: &str) {
    let Ok(dir) = std::env::var("KEYLEDGER_SCREENSHOTS") else { return };
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).expect("write the screenshot");
}

/// The flow an admin follows, and what each role and account may see.
#[tokio::test]
async fn the_console_in_a_browser_does_what_the_api_allows_and_no_more() {
    let cluster = Cluster::single().await;
    let base = cluster.node(1).url();
    let admin = cluster.client(1);
    let Some(Chromium { browser, driver: _driver }) = &chromium().await else { return };

    // Sign in with the bootstrap key, by keyboard alone: the key field has the focus and Enter
    // signs in; Tab reaches "Create API key" and Enter follows it.
    browser.goto(&format!("{base}/ui/sign-in")).await.unwrap();
    let typed = format!("{}{ENTER}", cluster.admin_key());
    browser.active_element().await.unwrap().send_keys(&typed).await.unwrap();
    find(browser, "table#keys").await;
    assert_eq!(path_of(browser).await, "/ui/keys");
    let mut tabs = 0;
    while browser.active_element().await.unwrap().attr("href").await.unwrap().as_deref() != Some("/ui/keys/new") {
        tabs += 1;
        assert!(tabs < 40, "Tab never reached \"Create API key\"");
        browser.active_element().await.unwrap().send_keys(TAB).await.unwrap();
    }

    // Create a key: its secret is shown once.
    browser.active_element().await.unwrap().send_keys(ENTER).await.unwrap();
    fill(browser, "#name", "payments-ci").await;
    fill(browser, "#description", "the CI pipeline of payments").await;
    screenshot(browser, "create-dialog").await;
    click(browser, "form[action='/ui/keys'] button[type=submit]").await;
    let secret = find(browser, "#secret").await.prop("value").await.expect("value").expect("a secret");
    assert!(secret.starts_with("klk_"), "{secret}");
    assert!(text_of(browser, ".warning").await.contains("shown this once"));
    assert!(!browser.current_url().await.unwrap().as_str().contains(&secret), "never in a URL");
    screenshot(browser, "created-once").await;
    assert!(admin.verify(&verify_req(&secret, None)).await.unwrap().valid, "the shown secret is the key's");

    // Reload: the secret is gone.
    browser.refresh().await.expect("reload");
    assert!(text_of(browser, "main").await.contains("Nothing to show"));
    assert!(!browser.source().await.unwrap().contains(&secret));

    // Disable it from its row; the API then says `disabled`.
    browser.goto(&format!("{base}/ui/keys")).await.unwrap();
    let key_id = admin
        .list_keys(&ListKeys::default())
        .await
        .unwrap()
        .keys
        .iter()
        .find(|k| k.name == "payments-ci")
        .unwrap()
        .id
        .clone();
    screenshot(browser, "keys-table").await;
    click(browser, &format!("tr[data-key-id='{key_id}'] form[action$='/state'] input[value=disable] ~ button")).await;
    wait_text(browser, ".notice", "disabled").await;
    let verdict = admin.verify(&verify_req(&secret, None)).await.unwrap();
    assert_eq!(verdict.code.as_deref(), Some("disabled"), "{verdict:?}");

    // The pictures: keys by state, and this node's verifications this minute (the sign-in's
    // own check and the one above valid, the last one not).
    browser.goto(&format!("{base}/ui/keys")).await.unwrap();
    let states = find(browser, "#keys-by-state svg").await.attr("aria-label").await.unwrap().unwrap_or_default();
    assert!(states.contains("enabled 1;") && states.contains("disabled 1;"), "{states}");
    let legend = text_of(browser, "#verifications .legend").await;
    let count = |what: &str| -> u64 {
        let before = legend.split(&format!(" {what}")).next().unwrap_or_default();
        before.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap_or_default().parse().unwrap_or(0)
    };
    assert!(count("valid") >= 2 && count("invalid") >= 1, "{legend}");

    // The key's page: its history as a timeline, and its verdict at a past moment.
    browser.goto(&format!("{base}/ui/keys/{key_id}")).await.unwrap();
    let timeline = text_of(browser, "ol.timeline").await;
    assert!(timeline.contains("created") && timeline.contains("disabled"), "{timeline}");
    screenshot(browser, "key-timeline").await;

    // Lock, rotate (the old key ends at once with a grace of 0) and delete (after confirming).
    let other = admin.create_key(&new_key("to-rotate")).await.unwrap().value;
    browser.goto(&format!("{base}/ui/keys/{}", other.key.id)).await.unwrap();
    // A click returns before the browser's post is answered: wait for the API to show it.
    let locked = async |want: bool| {
        poll("the lock as clicked", WAIT, async || match admin.get_key(&other.key.id).await {
            Ok(key) if key.value.locked == want => Ok(()),
            other => Err(format!("{other:?}")),
        })
        .await
    };
    click(browser, &format!("form[action='/ui/keys/{}/state'] input[value=lock] ~ button", other.key.id)).await;
    locked(true).await;
    find(browser, ".notice").await;
    // A locked key refuses to be disabled: the API's sentence shows beside its row.
    click(browser, &format!("form[action='/ui/keys/{}/state'] input[value=disable] ~ button", other.key.id)).await;
    let refused = text_of(browser, "tr.row-error").await;
    assert!(refused.contains("to-rotate") && refused.contains("locked"), "{refused}");
    click(browser, &format!("form[action='/ui/keys/{}/state'] input[value=unlock] ~ button", other.key.id)).await;
    locked(false).await;
    browser.goto(&format!("{base}/ui/keys/{}/rotate", other.key.id)).await.unwrap();
    fill(browser, "#grace", "0").await;
    click(browser, "form[action$='/rotate'] button[type=submit]").await;
    let successor = find(browser, "#secret").await.prop("value").await.unwrap().expect("the new secret");
    assert!(admin.verify(&verify_req(&successor, None)).await.unwrap().valid);
    assert!(!admin.verify(&verify_req(&other.secret, None)).await.unwrap().valid, "the old key ended");
    click(browser, ".secret-box a").await;
    click(browser, "a[href$='/delete']").await;
    click(browser, "form[action$='/delete'] button[type=submit]").await;
    wait_text(browser, ".notice", "deleted").await;
    assert_eq!(admin.verify(&verify_req(&successor, None)).await.unwrap().code.as_deref(), Some("deleted"));

    // A forged post without the session's token changes nothing.
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies.iter().find(|c| c.name() == "keyledger_session").expect("a session cookie");
    assert!(session.http_only().unwrap_or(false), "HttpOnly");
    let forged = cluster
        .http()
        .post(format!("{base}/ui/keys/{key_id}/state"))
        .header("Cookie", format!("keyledger_session={}", session.value()))
        .form(&[("action", "enable"), ("csrf", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(admin.verify(&verify_req(&secret, None)).await.unwrap().code.as_deref(), Some("disabled"));

    // Signing out ends the session: its cookie no longer opens a page.
    click(browser, "form[action='/ui/sign-out'] button").await;
    find(browser, "#api_key").await;
    assert_eq!(path_of(browser).await, "/ui/sign-in");
    let after = cluster
        .http()
        .get(format!("{base}/ui/keys"))
        .header("Cookie", format!("keyledger_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(after.url().path(), "/ui/sign-in", "redirected to sign in");

    // A `read` user sees only its own keys, and no operator's page or form.
    let (_, reader_key) = user_with_key(&admin, "rita", "read").await;
    sign_in(browser, &base, &reader_key).await;
    let table = text_of(browser, "table#keys").await;
    assert!(table.contains("rita-key") && !table.contains("payments-ci"), "{table}");
    assert!(!text_of(browser, "header nav").await.contains("Cluster"));
    browser.goto(&format!("{base}/ui/users")).await.unwrap();
    let users = text_of(browser, "table#users").await;
    assert!(users.contains("rita") && !users.contains("admin"), "only itself: {users}");
    assert!(browser.find(Locator::Css("form[action='/ui/users']")).await.is_err(), "no form to add users");
    click(browser, "form[action='/ui/sign-out'] button").await;

    // A second account sees none of the first's objects.
    let request = wire::CreateAccountRequest { name: "acme".into(), owner_name: "acme-owner".into() };
    let code = admin.create_account(&request).await.unwrap().value.enrollment_code;
    let acme_key = enroll(&admin, &code, "acme-owner-key").await.secret;
    sign_in(browser, &base, &acme_key).await;
    let table = text_of(browser, "table#keys").await;
    assert!(table.contains("acme-owner-key") && !table.contains("payments-ci") && !table.contains("rita"), "{table}");
    browser.goto(&format!("{base}/ui/keys/{key_id}")).await.unwrap();
    assert!(text_of(browser, ".error").await.to_lowercase().contains("no such key"));

    // Disabling the key a session signed in with ends that session at once.
    let acme = cluster.client_as(&acme_key);
    let acme_key_id = acme.list_keys(&ListKeys::default()).await.unwrap().keys[0].id.clone();
    acme.disable_key(&acme_key_id).await.unwrap();
    browser.goto(&format!("{base}/ui/keys")).await.unwrap();
    assert_eq!(path_of(browser).await, "/ui/sign-in");
    assert!(text_of(browser, ".error").await.contains("session ended"));
}

/// An admin adds a user, whose enrollment code is shown once, and changes its role; the cluster
/// page shows three nodes around their leader.
#[tokio::test]
async fn an_admin_manages_users_and_sees_the_cluster() {
    let cluster = Cluster::start(3).await;
    let base = cluster.node(1).url();
    let admin = cluster.client(1);
    let Some(Chromium { browser, driver: _driver }) = &chromium().await else { return };
    sign_in(browser, &base, cluster.admin_key()).await;

    click(browser, "header nav a[href='/ui/users']").await;
    fill(browser, "#user-name", "grace").await;
    click(browser, "form[action='/ui/users'] button").await;
    let code = find(browser, "#secret").await.prop("value").await.unwrap().expect("a code");
    assert!(code.starts_with("kle_"), "{code}");
    browser.refresh().await.unwrap();
    assert!(!browser.source().await.unwrap().contains(&code), "shown once");
    let grace = enroll(&admin, &code, "grace-key").await;
    assert_eq!(grace.key.owner.name, "grace");

    browser.goto(&format!("{base}/ui/users")).await.unwrap();
    let grace_id = grace.key.owner.id.clone();
    let row = format!("tr[data-user-id='{grace_id}']");
    let select = find(browser, &format!("{row} select")).await;
    select.select_by_value("admin").await.expect("pick admin");
    click(browser, &format!("{row} form[action$='/role'] button")).await;
    wait_text(browser, ".notice", "grace is now admin").await;
    let users = admin.list_users().await.unwrap().users;
    assert_eq!(users.iter().find(|u| u.id == grace_id).map(|u| u.role.as_str()), Some("admin"));

    // A namespace added, and key creation switched off, through their pages.
    click(browser, "header nav a[href='/ui/namespaces']").await;
    fill(browser, "#namespace-name", "payments").await;
    click(browser, "form[action='/ui/namespaces'] button").await;
    wait_text(browser, ".notice", "payments").await;
    assert!(text_of(browser, "table#namespaces").await.contains("payments"));
    // Grace gets write in it, then loses it; a service account is bound to it.
    browser.goto(&format!("{base}/ui/users")).await.unwrap();
    fill(browser, &format!("{row} input[name=namespace]"), "payments").await;
    find(browser, &format!("{row} select[name=permission]")).await.select_by_value("write").await.unwrap();
    click(browser, &format!("{row} form[action$='/namespaces'] button")).await;
    wait_text(browser, ".notice", "now has payments").await;
    let grace_now = |users: wire::UserList| users.users.into_iter().find(|u| u.id == grace_id).unwrap();
    let granted = grace_now(admin.list_users().await.unwrap());
    assert_eq!(granted.namespaces.get("payments").map(String::as_str), Some("write"));
    click(browser, &format!("{row} form[action$='/namespaces/revoke'] button")).await;
    wait_text(browser, ".notice", "no longer has payments").await;
    assert!(grace_now(admin.list_users().await.unwrap()).namespaces.is_empty());
    click(browser, "header nav a[href='/ui/service-accounts']").await;
    fill(browser, "#sa-name", "payments-bot").await;
    fill(browser, "#sa-namespace", "payments").await;
    click(browser, "form[action='/ui/service-accounts'] button").await;
    wait_text(browser, ".notice", "payments-bot").await;
    let bots = admin.list_service_accounts().await.unwrap().service_accounts;
    let bot = bots.iter().find(|s| s.name == "payments-bot").expect("created");
    assert_eq!(
        (bot.namespace.as_deref(), bot.permission.as_deref(), bot.role.as_deref()),
        (Some("payments"), Some("read"), None)
    );
    // Deleted after its confirmation page.
    click(browser, &format!("tr[data-service-account-id='{}'] a[href$='/delete']", bot.id)).await;
    click(browser, "form[action$='/delete'] button[type=submit]").await;
    wait_text(browser, ".notice", "deleted").await;
    let bots = admin.list_service_accounts().await.unwrap().service_accounts;
    assert!(bots.iter().filter(|s| s.id == bot.id).all(|s| s.state == "deleted"), "{bots:?}");

    // A key narrowed to that namespace; asking for a role and namespaces at once is refused
    // beside the form, which keeps what was typed.
    browser.goto(&format!("{base}/ui/keys/new")).await.unwrap();
    fill(browser, "#name", "payments-reader").await;
    fill(browser, "#scope_namespaces", "payments:read").await;
    find(browser, "#scope_role").await.select_by_value("admin").await.unwrap();
    click(browser, "form[action='/ui/keys'] button[type=submit]").await;
    assert!(text_of(browser, ".error").await.contains("not both"));
    assert_eq!(find(browser, "#name").await.prop("value").await.unwrap().as_deref(), Some("payments-reader"));
    find(browser, "#scope_role").await.select_by_value("").await.unwrap();
    click(browser, "form[action='/ui/keys'] button[type=submit]").await;
    let narrowed = find(browser, "#secret").await.prop("value").await.unwrap().expect("a secret");
    let verdict = admin.verify(&verify_req(&narrowed, None)).await.unwrap();
    assert_eq!(verdict.permissions.as_deref(), Some(&["namespace:payments:read".to_string()][..]), "{verdict:?}");

    click(browser, "header nav a[href='/ui/settings']").await;
    click(browser, "input[name=key_creation_enabled]").await;
    click(browser, "form[action='/ui/settings'] button[type=submit]").await;
    wait_text(browser, ".notice", "Settings saved").await;
    expect_refused(admin.create_key(&new_key("while-off")).await, 409, "creation_disabled");
    // The operator's own settings are on the same page, for account `default`.
    fill(browser, "#last_used_granularity", "2h").await;
    click(browser, "form[action='/ui/settings'] button[type=submit]").await;
    wait_text(browser, ".notice", "Settings saved").await;
    assert_eq!(admin.get_settings().await.unwrap().last_used_granularity, "2h");

    // The operator adds an account; its owner's enrollment code is shown once.
    click(browser, "header nav a[href='/ui/accounts']").await;
    fill(browser, "#account-name", "globex").await;
    fill(browser, "#owner-name", "globex-owner").await;
    click(browser, "form[action='/ui/accounts'] button").await;
    let owner_code = find(browser, "#secret").await.prop("value").await.unwrap().expect("a code");
    let globex = enroll(&admin, &owner_code, "globex-key").await;
    assert_eq!(globex.key.account, "globex");

    click(browser, "header nav a[href='/ui/cluster']").await;
    let members = text_of(browser, "table#members").await;
    assert_eq!(members.matches("voter").count(), 3, "{members}");
    assert!(members.contains("(leader)"), "{members}");
    assert_eq!(browser.find_all(Locator::Css(".cluster-diagram circle")).await.unwrap().len(), 3);
    screenshot(browser, "cluster").await;

    // The audit page lists the changes; its export downloads the account's ledger.
    click(browser, "header nav a[href='/ui/audit']").await;
    let events = text_of(browser, "table#events").await;
    assert!(events.contains("user created") && events.contains(&grace_id), "{events}");
    let checkpoint = text_of(browser, "#latest-checkpoint").await;
    assert!(
        checkpoint.contains("No checkpoint is signed yet") || checkpoint.contains("Latest signed checkpoint"),
        "{checkpoint}"
    );
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies.iter().find(|c| c.name() == "keyledger_session").expect("a session cookie");
    let export = cluster
        .http()
        .get(format!("{base}/ui/audit/export?format=jsonl"))
        .header("Cookie", format!("keyledger_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let lines = export.text().await.unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().expect("a line")).unwrap();
    assert_eq!(first["seq"], 1, "{first}");
    assert!(lines.lines().count() >= 3 && !lines.contains(cluster.admin_key()));
}

/// Sign-in through an enrollment code shows the new key once; the pages carry the security
/// headers; forms without a token and unknown sessions get nothing.
#[tokio::test]
async fn enrollment_sign_in_and_the_consoles_headers() {
    let cluster = Cluster::single().await;
    let base = cluster.node(1).url();
    let admin = cluster.client(1);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let page = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["cache-control"], "no-store");

    // A sign-in post without the form's cookie is refused (login CSRF).
    let forged = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("api_key", cluster.admin_key()), ("csrf", "abc")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // A made-up session id is no session.
    let guess = http.get(format!("{base}/ui/keys")).header("Cookie", "keyledger_session=00").send().await.unwrap();
    assert_eq!(guess.status(), 303);
    assert_eq!(guess.headers()["location"], "/ui/sign-in");

    // Enrollment through the browser: the code makes the user's first key, shown once.
    let code = admin
        .create_user(&wire::CreateUserRequest { name: "ed".into(), role: "developer".into() })
        .await
        .unwrap()
        .value
        .enrollment_code;
    let Some(Chromium { browser, driver: _driver }) = &chromium().await else { return };
    browser.goto(&format!("{base}/ui/sign-in")).await.unwrap();
    fill(browser, "#code", &code).await;
    fill(browser, "#key_name", "ed-laptop").await;
    click(browser, "form[action='/ui/enroll'] button").await;
    let secret = find(browser, "#secret").await.prop("value").await.unwrap().expect("a secret");
    let verdict = admin.verify(&verify_req(&secret, None)).await.unwrap();
    assert!(verdict.valid && verdict.identity.unwrap().name == "ed");
    // The session is ed's own.
    browser.goto(&format!("{base}/ui/keys")).await.unwrap();
    assert!(text_of(browser, "table#keys").await.contains("ed-laptop"));
    assert!(text_of(browser, "header .who").await.contains("ed"));
    // On a phone-sized screen the page fits its width (only the table scrolls, inside its box).
    browser.set_window_size(390, 844).await.expect("resize");
    browser.refresh().await.unwrap();
    let fits = browser.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await;
    assert_eq!(fits.expect("run a check in the page"), serde_json::Value::Bool(true), "no sideways scrolling");
    assert!(find(browser, "a[href='/ui/keys/new']").await.is_displayed().await.unwrap());
    // The admin's keys are not ed's to see.
    admin.create_key(&new_key("admin-only")).await.unwrap();
    browser.refresh().await.unwrap();
    assert!(!text_of(browser, "table#keys").await.contains("admin-only"));
}
