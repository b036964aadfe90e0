"""The hybrid token model in a real Chromium: the demo React app and @myideas/client."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from playwright.sync_api import BrowserContext, JSHandle, Page, Request, Response, expect

from backend.tests.helpers import PASSWORD, unique_email

SIGNED_IN = re.compile(r"^Signed in as ")


def sign_up(page: Page, email: str, display_name: str = "Ada") -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Display name").fill(display_name)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


def refresh_requests(page: Page) -> list[Request]:
    """Collects the POST /auth/refresh requests the page sends from now on."""
    seen: list[Request] = []
    page.on(
        "request",
        lambda request: (
            seen.append(request)
            if request.method == "POST" and request.url.endswith("/auth/refresh")
            else None
        ),
    )
    return seen


def session_bodies(context: BrowserContext) -> list[dict[str, Any]]:
    """Collects, in the test process, the session bodies (accessToken, expiresAt, ...) that the
    API sends to any page of `context` from now on: 200 answers to /auth/signin and /auth/refresh.
    The page itself has no way to show its token, so the network is where a test reads it."""
    seen: list[dict[str, Any]] = []

    def on_response(response: Response) -> None:
        if response.status == 200 and response.url.endswith(("/auth/signin", "/auth/refresh")):
            seen.append(response.json())

    context.on("response", on_response)
    return seen


def wait_past_expiry(sessions: list[dict[str, Any]]) -> None:
    """Sleeps until the newest access token seen on the network has expired."""
    expires_at = max(body["expiresAt"] for body in sessions)
    time.sleep(max(0.0, expires_at - time.time() + 0.2))


# The API's URL, read as the app's config.ts reads it: the page's `?api=`.
API_URL_JS = "new URLSearchParams(location.search).get('api')"

# A client of the test's own, made in the page from the package's build (the app bundles the same
# module and keeps its client to itself).
NEW_CLIENT = f"""async () => {{
    const {{createApiClient}} = await import('/__client__/index.js');
    return createApiClient({{baseUrl: {API_URL_JS}}});
}}"""


def restored_client(page: Page) -> JSHandle:
    """A test-made client that took over the page's session through the refresh cookie."""
    client = page.evaluate_handle(NEW_CLIENT)
    assert client.evaluate("async (client) => (await client.restoreSession()) !== null")
    return client


def add_idea(page: Page, title: str) -> None:
    page.get_by_label("New idea").fill(title)
    page.get_by_role("button", name="Add idea").click()


# A hostile script's wiretap: it wraps the page's fetch, XMLHttpRequest and Headers, and records
# every URL, header and body that goes through them. Returns its log (with its own hooks, so the
# sweep can tell them from the page's functions).
HOSTILE_HOOKS = """() => {
    const log = {calls: [], hooks: []};
    const note = (where, ...values) => log.calls.push({where, values: values.map(String)});
    const hook = (target, name, make) => {
        const original = target[name];
        target[name] = make(original);
        log.hooks.push(target[name]);
    };
    hook(window, 'fetch', (original) => function (input, init) {
        const request = input instanceof Request ? input : null;
        const headers = new Headers(init?.headers ?? request?.headers);
        note('fetch', request ? request.url : input, JSON.stringify([...headers]), init?.body);
        return original.apply(this, arguments);
    });
    for (const name of ['open', 'setRequestHeader', 'send']) {
        hook(XMLHttpRequest.prototype, name, (original) => function (...args) {
            note('XMLHttpRequest.' + name, ...args);
            return original.apply(this, args);
        });
    }
    for (const name of ['set', 'append']) {
        hook(Headers.prototype, name, (original) => function (...args) {
            note('Headers.' + name, ...args);
            return original.apply(this, args);
        });
    }
    return log;
}"""

# A hostile script's search: it walks everything reachable from the global object (own and
# inherited properties, getters included, Map and Set entries, every DOM node's own properties)
# for the token strings, for anything shaped like a JWT and for functions written in script
# (the client's `request`, `getAccessToken`, ... or any wrapper of them), calling whatever is
# named like a token getter; and it reads every storage and the whole DOM.
HOSTILE_SWEEP = r"""async ({needles, hooks}) => {
    const MAX_DEPTH = 8;
    const MAX_OBJECTS = 400000;
    const JWT = /eyJ[\w-]+\.[\w-]+\.[\w-]+/;
    const TOKEN_GETTER = /token|session|auth/i;
    const toSource = Function.prototype.toString;
    const ours = new Set([...hooks.hooks, ...hooks.hooks.map((f) => f.prototype)]);
    const result = {needlesAt: [], jwtLikeAt: [], scriptedFunctionsAt: [], walked: 0, places: {}};
    const check = (text, where) => {
        if (needles.some((needle) => text.includes(needle))) result.needlesAt.push(where);
        if (JWT.test(text)) result.jwtLikeAt.push(where);
    };
    const isScripted = (fn) => {
        try {
            return !/\{\s*\[native code\]\s*\}\s*$/.test(toSource.call(fn))
                || fn.name.startsWith('bound ');
        } catch {
            return true;
        }
    };
    const getters = [];
    const seen = new WeakSet([hooks]);
    const queue = [[globalThis, 'globalThis', 0], [Object.prototype, 'Object.prototype', 0],
                   [Function.prototype, 'Function.prototype', 0], [document, 'document', 0]];
    for (const node of document.querySelectorAll('*')) {
        queue.push([node, `<${node.localName}${node.id ? '#' + node.id : ''}>`, MAX_DEPTH - 2]);
    }
    for (let next = 0; next < queue.length && result.walked < MAX_OBJECTS; next++) {
        const [value, path, depth] = queue[next];
        if (typeof value === 'string') {
            check(value, path);
            continue;
        }
        if (value === null || (typeof value !== 'object' && typeof value !== 'function')) continue;
        if (seen.has(value) || ours.has(value)) continue;
        seen.add(value);
        result.walked += 1;
        if (typeof value === 'function' && isScripted(value)) {
            result.scriptedFunctionsAt.push(path);
            if (TOKEN_GETTER.test(`${path.split('.').pop()} ${value.name}`)) {
                getters.push([value, path]);
            }
        }
        if (depth >= MAX_DEPTH) continue;
        const holders = [value];
        if (!(value instanceof Node)) {
            for (let p = Object.getPrototypeOf(value);
                 p && p !== Object.prototype && p !== Function.prototype;
                 p = Object.getPrototypeOf(p)) holders.push(p);
        }
        for (const holder of holders) {
            let keys = [];
            try { keys = Reflect.ownKeys(holder); } catch { continue; }
            for (const key of keys) {
                let child;
                try { child = Reflect.get(holder, key, value); } catch { continue; }
                queue.push([child, `${path}.${String(key)}`, depth + 1]);
            }
        }
        try {
            if (value instanceof Map || value instanceof Set) {
                for (const entry of value.entries()) {
                    queue.push([entry, `${path}[entry]`, depth + 1]);
                }
            }
        } catch {}
    }
    for (const [getter, path] of getters) {
        try { check(String(await getter()), `${path}()`); } catch {}
    }
    result.places = {
        cookie: document.cookie,
        localStorage: JSON.stringify(Object.entries(localStorage)),
        sessionStorage: JSON.stringify(Object.entries(sessionStorage)),
        indexedDB: JSON.stringify(await indexedDB.databases()),
        cacheStorage: JSON.stringify(await caches.keys()),
        html: document.documentElement.outerHTML,
        text: document.body.innerText,
        inputs: JSON.stringify([...document.querySelectorAll('input')].map((e) => e.value)),
        url: location.href,
        historyState: JSON.stringify(history.state),
        windowName: window.name,
        resources: JSON.stringify(performance.getEntries().map((entry) => entry.name)),
    };
    for (const [where, text] of Object.entries(result.places)) check(text, where);
    return result;
}"""


# The only scripted functions React DOM itself leaves reachable on the page: the fiber class (as
# the `constructor` of the root container's fiber) and the value tracker it puts on every <input>.
# They hold no client. The app's handlers are added with addEventListener (frontend/src/listen.ts),
# never as props, because React keeps each element's props on its DOM node.
REACT_DOM_INTERNALS = re.compile(
    r"^<div#root>\.__reactContainer\$\w+\.constructor$"
    r"|^<input(#[\w-]+)?>\._valueTracker\.(getValue|setValue|stopTracking)$"
)


class TestSessionAcrossReloads:
    def test_reload_keeps_the_session_and_signout_ends_it(self, page, start_stack):
        """sign up -> sign in -> items -> reload: still signed in -> sign out -> reload: out."""
        page.goto(start_stack())
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        email = unique_email()
        sign_up(page, email, display_name="Grace")
        expect(page.get_by_text("Display name: Grace")).to_be_visible()
        page.get_by_label("New idea").fill("Write the reference answer")
        page.get_by_role("button", name="Add idea").click()
        expect(page.get_by_text("Write the reference answer")).to_be_visible()

        page.reload()

        expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
        expect(page.get_by_text("Write the reference answer")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        page.reload()
        expect(page.get_by_text("Not signed in.")).to_be_visible()
        expect(page.get_by_text(SIGNED_IN)).to_have_count(0)

    def test_tokens_are_out_of_reach_of_page_scripts(self, page, start_stack):
        """The refresh cookie is HttpOnly; no token sits in any web storage or the DOM."""
        page.goto(start_stack())
        sign_up(page, unique_email())
        cookies = page.context.cookies()

        visible_cookies = page.evaluate("document.cookie")
        storage = page.evaluate(
            "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
        )
        html = page.content()

        refresh_cookie = next(c for c in cookies if c["name"] == "sb_refresh_token")
        assert refresh_cookie["httpOnly"] is True
        assert refresh_cookie["sameSite"] == "Lax"
        assert "sb_refresh_token" not in visible_cookies
        assert storage == "[[],[]]"
        assert refresh_cookie["value"] not in html
        assert "eyJ" not in html  # no JWT rendered anywhere


class TestNoPageScriptGetsAToken:
    """An injected script in the demo page, after sign-in and a reload, hunts for the access
    token everywhere a script can look, and hooks the page's network functions while the page
    refreshes its token and makes a protected call. It finds nothing, and the tabs' channel, which
    any script of the origin can join, carries notices only."""

    def test_a_hostile_page_script_finds_no_token_and_no_client(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sessions = session_bodies(page.context)
        sign_up(page, unique_email())
        page.reload()
        expect(page.get_by_text(SIGNED_IN)).to_be_visible()
        hooks = page.evaluate_handle(HOSTILE_HOOKS)
        wait_past_expiry(sessions)

        with page.expect_request(
            lambda r: r.method == "POST" and r.url.endswith("/items")
        ) as protected_call:
            add_idea(page, "Written while watched")
        expect(page.get_by_text("Written while watched")).to_be_visible()

        # The page did hold tokens meanwhile: signin's, the reload's restore, the expiry refresh.
        tokens = [body["accessToken"] for body in sessions]
        assert len(tokens) >= 3
        assert protected_call.value.headers["authorization"] == f"Bearer {tokens[-1]}"
        refresh_cookie = next(
            c["value"] for c in page.context.cookies() if c["name"] == "sb_refresh_token"
        )
        secrets = [*tokens, refresh_cookie]
        found = page.evaluate(HOSTILE_SWEEP, {"needles": secrets, "hooks": hooks})
        seen_by_hooks = json.dumps(hooks.json_value())

        assert found["walked"] > 1000  # the walk did cover the page's globals
        assert found["needlesAt"] == []
        assert found["jwtLikeAt"] == []
        scripted = [at for at in found["scriptedFunctionsAt"] if not REACT_DOM_INTERNALS.match(at)]
        assert scripted == []  # no client method, no wrapper of one, no event handler
        for where, text in found["places"].items():
            assert not [secret for secret in secrets if secret in text], where
        assert not [secret for secret in secrets if secret in seen_by_hooks]
        assert "authorization" not in seen_by_hooks.lower()

    def test_a_page_script_on_the_tabs_channel_hears_no_token(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sessions = session_bodies(page.context)
        sign_up(page, unique_email())
        heard = page.evaluate_handle(
            """() => {
                const heard = [];
                new BroadcastChannel('myideas-auth').onmessage =
                    ({data}) => heard.push(JSON.stringify(data));
                return heard;
            }"""
        )
        wait_past_expiry(sessions)

        add_idea(page, "Refreshed for the other tabs")
        expect(page.get_by_text("Refreshed for the other tabs")).to_be_visible()

        messages = heard.json_value()
        tokens = [body["accessToken"] for body in sessions]
        assert len(tokens) >= 2  # signin's and the expiry refresh's
        assert messages  # the refresh was announced
        assert not [token for token in tokens if any(token in m for m in messages)]
        assert not [m for m in messages if "eyJ" in m]


class TestItems:
    def test_add_edit_delete_items(self, page, start_stack):
        page.goto(start_stack())
        sign_up(page, unique_email())
        page.get_by_label("New idea").fill("First")
        page.get_by_role("button", name="Add idea").click()

        page.get_by_role("button", name="Edit First").click()
        page.get_by_label("New title for First").fill("Second")
        page.get_by_role("button", name="Save First").click()
        expect(page.get_by_text("Second")).to_be_visible()
        page.get_by_role("button", name="Delete Second").click()

        expect(page.get_by_role("list", name="Ideas").get_by_role("listitem")).to_have_count(0)


class TestExpiry:
    def test_expired_access_token_is_refreshed_once_and_the_call_succeeds(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sessions = session_bodies(page.context)
        sign_up(page, unique_email())
        refreshes = refresh_requests(page)
        wait_past_expiry(sessions)

        add_idea(page, "Added after expiry")

        expect(page.get_by_text("Added after expiry")).to_be_visible()
        assert len(refreshes) == 1

    def test_ten_parallel_calls_with_expired_token_cause_one_refresh(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sessions = session_bodies(page.context)
        sign_up(page, unique_email())
        client = restored_client(page)
        refreshes = refresh_requests(page)
        wait_past_expiry(sessions)

        results = client.evaluate(
            "(client) => Promise.all(Array.from({length: 10}, () => client.request('/items')))"
        )

        assert results == [{"items": []}] * 10
        assert len(refreshes) == 1

    def test_clock_behind_server_recovers_through_401_refresh_and_retry(self, page, start_stack):
        """The reactive path: the page's clock runs a minute slow, so it sends a token it thinks
        is fresh; the server answers 401, and the client refreshes once and retries."""
        page.add_init_script("{ const real = Date.now; Date.now = () => real() - 60_000; }")
        page.goto(start_stack(access_token_ttl_seconds=2))
        sign_up(page, unique_email())
        refreshes = refresh_requests(page)
        calls: list[tuple[str, int]] = []
        page.on(
            "response",
            lambda r: calls.append((r.request.method, r.status)) if "/items" in r.url else None,
        )
        time.sleep(3.2)  # past the token's real expiry (2 s, plus the verifier's 1 s leeway)

        with page.expect_response(lambda r: r.request.method == "GET" and "/items" in r.url):
            add_idea(page, "Sent with a stale clock")

        expect(page.get_by_text("Sent with a stale clock")).to_be_visible()
        # The page also reloads its list (GET) whenever the session changes; the add is the
        # POST refused with the stale token, then the same POST retried after one refresh.
        assert [status for method, status in calls if method == "POST"] == [401, 201]
        assert calls[-1] == ("GET", 200)
        assert len(refreshes) == 1


class TestTabs:
    def test_two_tabs_past_expiry_both_stay_signed_in(self, browser, start_stack):
        """Both tabs call after expiry at once: each refreshes for itself, nobody is signed out."""
        url = start_stack(access_token_ttl_seconds=2)
        context = browser.new_context()
        try:
            sessions = session_bodies(context)
            first = context.new_page()
            first.goto(url)
            sign_up(first, unique_email())
            second = context.new_page()
            second.goto(url)
            expect(second.get_by_text(SIGNED_IN)).to_be_visible()
            # Statuses only: a body read in the handler can fail under load and lose the entry,
            # and a replayed cookie's `refresh_token_reused` is a 401, which the check refuses.
            refresh_statuses: list[int] = []
            for tab in (first, second):
                tab.on(
                    "response",
                    lambda r: (
                        refresh_statuses.append(r.status)
                        if r.url.endswith("/auth/refresh")
                        else None
                    ),
                )
            wait_past_expiry(sessions)

            # Both clicks go out before either tab's protected call has finished.
            for tab, title in ((first, "From the first tab"), (second, "From the second tab")):
                tab.get_by_label("New idea").fill(title)
            for tab in (first, second):
                tab.get_by_role("button", name="Add idea").click()

            expect(first.get_by_text("From the first tab")).to_be_visible()
            expect(second.get_by_text("From the second tab")).to_be_visible()
            # At least one each (no tab hands its token to the other); a sign-in or refresh
            # notice arriving while a tab's own refresh is due can add one more, never a reuse.
            assert len(refresh_statuses) >= 2
            assert set(refresh_statuses) == {200}
            for tab in (first, second):
                expect(tab.get_by_text(SIGNED_IN)).to_be_visible()
        finally:
            context.close()

    def test_signing_out_in_one_tab_signs_out_the_other(self, browser, start_stack):
        url = start_stack()
        context = browser.new_context()
        try:
            first = context.new_page()
            first.goto(url)
            sign_up(first, unique_email())
            second = context.new_page()
            second.goto(url)
            expect(second.get_by_text(SIGNED_IN)).to_be_visible()

            first.get_by_role("button", name="Sign out").click()

            expect(second.get_by_role("button", name="Sign in")).to_be_visible()
            expect(second.get_by_text(SIGNED_IN)).to_be_hidden()
        finally:
            context.close()


class TestGuard:
    def test_protected_call_while_signed_out_throws_and_sends_nothing(self, page, start_stack):
        page.goto(start_stack())
        expect(page.get_by_text("Not signed in.")).to_be_visible()
        client = page.evaluate_handle(NEW_CLIENT)
        sent: list[str] = []
        page.on("request", lambda request: sent.append(request.url))

        error = client.evaluate(
            """(client) => client.request('/items').then(
                () => null, (error) => ({name: error.name, code: error.code}))"""
        )

        assert error == {"name": "NotAuthenticatedError", "code": "not_authenticated"}
        assert not [url for url in sent if "/items" in url]

    def test_raw_fetch_with_cookies_gets_401_with_hint_and_a_warning(self, page, start_stack):
        """The original bug: raw fetch, cookies, no Authorization header. 401 + hint, not 403."""
        page.goto(start_stack())
        sign_up(page, unique_email())
        warnings: list[str] = []
        page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)

        result = page.evaluate(
            """async () => {
                const apiBaseUrl = new URLSearchParams(location.search).get('api');
                const response = await fetch(apiBaseUrl + '/items', {credentials: 'include'});
                return {status: response.status, body: await response.json()};
            }"""
        )

        assert result["status"] == 401
        assert result["body"]["code"] == "unauthorized"
        assert "Authorization: Bearer" in result["body"]["details"]["hint"]
        assert len(warnings) == 1
        assert "global fetch" in warnings[0]


class TestAxiosAdapter:
    def test_axios_adapter_refreshes_once_for_parallel_calls(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sessions = session_bodies(page.context)
        sign_up(page, unique_email())
        client = restored_client(page)
        refreshes = refresh_requests(page)
        wait_past_expiry(sessions)

        results = client.evaluate(
            """async (client) => {
                const {default: axios} = await import('/__axios__/axios.js');
                const {attachApiClient} = await import('/__client__/axios.js');
                const apiBaseUrl = new URLSearchParams(location.search).get('api');
                const http = attachApiClient(axios.create({baseURL: apiBaseUrl}), client);
                const responses = await Promise.all([1, 2, 3].map(() => http.get('/items')));
                return responses.map((response) => response.data);
            }"""
        )

        assert results == [{"items": []}] * 3
        assert len(refreshes) == 1
