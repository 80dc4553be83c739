//! A minimal W3C WebDriver client for Debian's `chromium-driver`: enough to
//! drive headless Chromium through the incident pages (navigate, find,
//! type, click, read text, screenshot). It speaks the protocol over plain
//! loopback HTTP with the harness's own client, so the tests need no
//! WebDriver crate and its async stack.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The element reference key of the W3C protocol.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one headless Chromium session.
pub struct Browser {
    /// The chromedriver process.
    driver: Child,
    /// Where chromedriver listens.
    addr: SocketAddr,
    /// The session id.
    session: String,
}

impl Browser {
    /// Starts chromedriver on a port it picks and opens a headless session.
    pub fn start() -> Browser {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium-driver is installed by tests/run.sh");
        let stdout = driver.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = sender.send(port);
                }
            }
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("chromedriver did not report its port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let created = call(
            addr,
            "POST",
            "/session",
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1400",
                             "--lang=en-US"],
                },
            }}}),
        );
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        call(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn go(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's title.
    pub fn title(&self) -> String {
        self.session_call("GET", "/title", &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's HTML as the browser holds it.
    pub fn source(&self) -> String {
        self.session_call("GET", "/source", &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector; panics when none does.
    pub fn find(&self, selector: &str) -> Element<'_> {
        let found = self.session_call(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": selector}),
        );
        let id = found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}\n{}", self.source()))
            .to_string();
        Element { browser: self, id }
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, selector: &str) -> Vec<Element<'_>> {
        let found = self.session_call(
            "POST",
            "/elements",
            &json!({"using": "css selector", "value": selector}),
        );
        found
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a JavaScript dialog (alert, confirm) is open.
    pub fn has_dialog(&self) -> bool {
        let reply = call_raw(
            self.addr,
            "GET",
            &format!("/session/{}/alert/text", self.session),
            &Value::Null,
        );
        reply["value"]["error"].is_null()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns. WebDriver scripts are not subject
    /// to the page's Content-Security-Policy.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": args }),
        )
    }

    /// Resizes the window so that the viewport is `width` x `height` CSS
    /// pixels (the size screenshots have).
    pub fn set_viewport(&self, width: i64, height: i64) {
        self.session_call(
            "POST",
            "/window/rect",
            &json!({ "width": width, "height": height }),
        );
        // The window's frame takes some of it: grow by the difference.
        let inner = self.execute("return [window.innerWidth, window.innerHeight]", &[]);
        let extra_width = width - inner[0].as_i64().unwrap_or(width);
        let extra_height = height - inner[1].as_i64().unwrap_or(height);
        if extra_width != 0 || extra_height != 0 {
            self.session_call(
                "POST",
                "/window/rect",
                &json!({ "width": width + extra_width, "height": height + extra_height }),
            );
        }
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_call("GET", "/screenshot", &Value::Null);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call_raw(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &Value::Null,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the current page.
pub struct Element<'a> {
    /// Its browser.
    browser: &'a Browser,
    /// Its WebDriver id.
    id: String,
}

impl Element<'_> {
    /// Types `text` into it.
    pub fn type_text(&self, text: &str) {
        self.browser.session_call(
            "POST",
            &format!("/element/{}/value", self.id),
            &json!({ "text": text }),
        );
    }

    /// Clicks it (and waits for a navigation it starts).
    pub fn click(&self) {
        self.browser
            .session_call("POST", &format!("/element/{}/click", self.id), &json!({}));
    }

    /// Clicks a submit button or link and waits until the page it was on
    /// is gone (the element goes stale), since a click returns before the
    /// navigation it starts has finished.
    pub fn click_and_wait(&self) {
        self.click();
        let gone = crate::process::wait_until(Duration::from_secs(15), || {
            let reply = call_raw(
                self.browser.addr,
                "GET",
                &format!("/session/{}/element/{}/name", self.browser.session, self.id),
                &Value::Null,
            );
            reply["value"]["error"] == "stale element reference"
        });
        assert!(gone, "the click did not leave the page");
        // Wait for the new document to finish loading.
        crate::process::wait_until(Duration::from_secs(15), || {
            let state = call_raw(
                self.browser.addr,
                "POST",
                &format!("/session/{}/execute/sync", self.browser.session),
                &json!({"script": "return document.readyState", "args": []}),
            );
            state["value"] == "complete"
        });
    }

    /// Its rendered text.
    pub fn text(&self) -> String {
        self.browser
            .session_call("GET", &format!("/element/{}/text", self.id), &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// One WebDriver command; returns its `value`, panicking on an error.
fn call(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Value {
    let reply = call_raw(addr, method, path, body);
    if let Some(error) = reply["value"]["error"].as_str() {
        panic!(
            "WebDriver {method} {path}: {error}: {}",
            reply["value"]["message"]
        );
    }
    reply["value"].clone()
}

fn call_raw(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Value {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let response = crate::http::request(
        addr,
        method,
        path,
        &["Content-Type: application/json"],
        &text,
    )
    .unwrap();
    serde_json::from_str(&response.body).unwrap_or(Value::Null)
}
