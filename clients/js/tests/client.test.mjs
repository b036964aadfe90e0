// Unit tests of the client's flow logic, against a scripted fake server (no network).
// The real browser behaviour is tested in backend/tests/browser/ against the real API (the
// demo app and a fresh app made from the packed tarball). These run against the built dist/.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { createApiClient, NetworkError, NotAuthenticatedError } from "../dist/index.js";
import { attachApiClient } from "../dist/axios.js";

const BASE = "http://api.test";

// A fake API: tokens are "t1", "t2", ...; `expired` tokens get 401 on protected routes.
// `mostRefreshesAtOnce` is the largest number of POST /auth/refresh it was answering at one time.
function fakeServer({ refreshStatus = 200, csrfFailures = 0, protectedStatus = null, protectedCode = "x" } = {}) {
  const state = { calls: [], token: 0, expired: new Set(), csrfFailures, refreshing: 0, mostRefreshesAtOnce: 0 };
  const json = (status, body) =>
    new Response(status === 204 ? null : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  const session = () => {
    state.token += 1;
    return {
      accessToken: `t${state.token}`,
      tokenType: "bearer",
      expiresIn: 900,
      expiresAt: Math.floor(Date.now() / 1000) + 900,
      csrfToken: "csrf-2",
      user: { id: "u1", email: "a@example.com" },
    };
  };
  state.fetch = async (input, init = {}) => {
    const url = typeof input === "string" ? input : String(input.url ?? input);
    const path = url.slice(BASE.length);
    const headers = new Headers(init.headers ?? input.headers);
    state.calls.push({ path, method: init.method ?? "GET", headers, credentials: init.credentials });
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (path === "/auth/csrf") return json(200, { csrfToken: "csrf-1" });
    if (path.startsWith("/auth/") && path !== "/auth/me") {
      if (state.csrfFailures > 0) {
        state.csrfFailures -= 1;
        return json(403, { code: "csrf_mismatch", message: "m", details: {} });
      }
      if (path === "/auth/refresh") {
        state.refreshing += 1;
        state.mostRefreshesAtOnce = Math.max(state.mostRefreshesAtOnce, state.refreshing);
        await new Promise((resolve) => setTimeout(resolve, 5));
        state.refreshing -= 1;
        if (refreshStatus === "network") throw new TypeError("Failed to fetch");
        const refreshCode = { 401: "refresh_token_invalid", 403: "user_banned" }[refreshStatus] ?? "provider_unavailable";
        if (refreshStatus !== 200) return json(refreshStatus, { code: refreshCode, message: "m", details: {} });
        return json(200, session());
      }
      if (path === "/auth/signin") return json(200, session());
      if (path === "/auth/logout") return json(200, { ok: true });
    }
    const token = (headers.get("Authorization") ?? "").replace("Bearer ", "");
    if (protectedStatus) return json(protectedStatus, { code: protectedCode, message: "m", details: {} });
    if (!token || state.expired.has(token)) return json(401, { code: "unauthorized", message: "Missing or invalid token", details: {} });
    return json(200, { items: [], token });
  };
  state.count = (path) => state.calls.filter((call) => call.path === path).length;
  return state;
}

function clientFor(server, options = {}) {
  return createApiClient({ baseUrl: BASE, fetch: server.fetch, BroadcastChannel: null, ...options });
}

async function signedIn(server, options) {
  const client = clientFor(server, options);
  await client.signin({ email: "a@example.com", password: "correct horse" });
  return client;
}

describe("protected calls", () => {
  test("carry the bearer token and no cookies", async () => {
    const server = fakeServer();
    const client = await signedIn(server);

    await client.request("/items");

    const call = server.calls.at(-1);
    assert.equal(call.headers.get("Authorization"), "Bearer t1");
    assert.equal(call.credentials, "omit");
  });

  test("the guard throws while signed out and sends nothing", async () => {
    const server = fakeServer();
    const client = clientFor(server);

    await assert.rejects(client.request("/items"), NotAuthenticatedError);

    assert.equal(server.calls.length, 0);
  });

  test("ten parallel 401s cause exactly one refresh, then each call retries once", async () => {
    const server = fakeServer();
    const client = await signedIn(server);
    server.expired.add("t1");

    const results = await Promise.all(Array.from({ length: 10 }, () => client.request("/items")));

    assert.equal(server.count("/auth/refresh"), 1);
    assert.equal(server.count("/items"), 20);
    assert.ok(results.every((result) => result.token === "t2"));
  });

  test("an access token past its expiry is refreshed before the call", async () => {
    const server = fakeServer();
    let clock = Date.now();
    const client = await signedIn(server, { now: () => clock });
    clock += 901 * 1000;

    await client.request("/items");

    assert.equal(server.count("/auth/refresh"), 1);
    assert.equal(server.calls.at(-1).headers.get("Authorization"), "Bearer t2");
  });

  test("a second 401 after the refresh signs the client out and tells the app", async () => {
    const server = fakeServer();
    const client = await signedIn(server);
    const events = [];
    client.onSessionChange((event) => events.push(event.type));
    server.expired.add("t1").add("t2");

    await assert.rejects(client.request("/items"), { status: 401, code: "unauthorized" });

    assert.equal(client.session, null);
    assert.deepEqual(events, ["signed-in", "signed-out"]);
  });

  test("a refused refresh signs the client out", async () => {
    const server = fakeServer({ refreshStatus: 401 });
    const client = await signedIn(server);
    server.expired.add("t1");

    await assert.rejects(client.request("/items"), { status: 401, code: "refresh_token_invalid" });

    assert.equal(client.session, null);
  });

  for (const refreshStatus of [503, "network"]) {
    test(`a ${refreshStatus} during refresh is retryable and keeps the session`, async () => {
      const server = fakeServer({ refreshStatus });
      const client = await signedIn(server);
      server.expired.add("t1");

      await assert.rejects(client.request("/items"), { retryable: true });

      assert.notEqual(client.session, null);
    });
  }

  test("a ban (403 user_banned) during refresh ends the session and is not retried", async () => {
    const server = fakeServer({ refreshStatus: 403 });
    const client = await signedIn(server);
    server.expired.add("t1");

    await assert.rejects(client.request("/items"), { status: 403, code: "user_banned", retryable: false });

    assert.equal(client.session, null);
    assert.equal(server.count("/auth/refresh"), 1);
  });

  test("a ban (403 user_banned) on a protected call ends the session", async () => {
    const server = fakeServer({ protectedStatus: 403, protectedCode: "user_banned" });
    const client = await signedIn(server);

    await assert.rejects(client.request("/auth/me"), { status: 403, code: "user_banned" });

    assert.equal(client.session, null);
  });

  test("another 403 on a protected call keeps the session", async () => {
    const server = fakeServer({ protectedStatus: 403 });
    const client = await signedIn(server);

    await assert.rejects(client.request("/items"), { status: 403, code: "x" });

    assert.notEqual(client.session, null);
  });

  test("restoreSession of a banned user ends the session and reports the ban", async () => {
    const server = fakeServer({ refreshStatus: 403 });
    const client = clientFor(server);

    await assert.rejects(client.restoreSession(), { status: 403, code: "user_banned" });

    assert.equal(client.session, null);
  });

  test("server errors come back typed with code, message and details", async () => {
    const server = fakeServer({ protectedStatus: 404 });
    const client = await signedIn(server);

    await assert.rejects(client.request("/items/x"), { name: "ApiError", status: 404, code: "x", details: {} });
  });
});

describe("auth calls", () => {
  test("send cookies and the CSRF token, fetched once", async () => {
    const server = fakeServer();
    const client = await signedIn(server);

    await client.signout();
    await client.signin({ email: "a@example.com", password: "correct horse" });

    assert.equal(server.count("/auth/csrf"), 1);
    const logout = server.calls.find((call) => call.path === "/auth/logout");
    assert.equal(logout.credentials, "include");
    assert.equal(logout.headers.get("X-CSRF-Token"), "csrf-2"); // renewed from the signin body
  });

  test("a csrf_* 403 fetches a new token and retries once", async () => {
    const server = fakeServer({ csrfFailures: 1 });
    const client = clientFor(server);

    await client.signin({ email: "a@example.com", password: "correct horse" });

    assert.equal(server.count("/auth/csrf"), 2);
    assert.equal(server.count("/auth/signin"), 2);
    assert.equal(client.session.user.email, "a@example.com");
  });

  test("restoreSession resolves null on 401 (no session) instead of throwing", async () => {
    const server = fakeServer({ refreshStatus: 401 });
    const client = clientFor(server);

    assert.equal(await client.restoreSession(), null);
  });

  test("the access token is never exposed on the session object", async () => {
    const server = fakeServer();
    const client = await signedIn(server);

    assert.deepEqual(Object.keys(client.session), ["user", "expiresAt"]);
    assert.ok(!JSON.stringify(client.session).includes("t1"));
  });
});

// Two tabs of one browser: clients on Node's real BroadcastChannel, each with a clock of its own,
// and a third listener on the channel, as any script of the origin could be (`heard`).
function twoTabs(t, { locks } = {}) {
  const server = fakeServer();
  const clocks = { a: Date.now(), b: Date.now() };
  const tab = (name) =>
    createApiClient({ baseUrl: BASE, fetch: server.fetch, BroadcastChannel, locks, now: () => clocks[name] });
  const [a, b] = [tab("a"), tab("b")];
  const heard = [];
  const eavesdropper = new BroadcastChannel("myideas-auth");
  eavesdropper.onmessage = ({ data }) => heard.push(data);
  const events = { a: [], b: [] };
  a.onSessionChange(({ type, reason }) => events.a.push(`${type} ${reason}`));
  b.onSessionChange(({ type, reason }) => events.b.push(`${type} ${reason}`));
  t.after(() => [a, b, eavesdropper].forEach((each) => each.close()));
  return { server, clocks, a, b, heard, events };
}

// Both tabs signed in: A with its sign-in (t1), B with the refresh it made on A's notice (t2).
async function twoSignedInTabs(t, options) {
  const tabs = twoTabs(t, options);
  await tabs.a.signin({ email: "a@example.com", password: "correct horse" });
  await until(() => tabs.b.session !== null);
  await delivered();
  tabs.heard.length = 0;
  tabs.events.a.length = 0;
  tabs.events.b.length = 0;
  return tabs;
}

const delivered = () => new Promise((resolve) => setTimeout(resolve, 10));

async function until(condition) {
  for (let waited = 0; !condition(); waited += 5) {
    assert.ok(waited < 1000, "timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// One Web Lock for all tabs: whoever asks later waits for whoever holds it.
function fakeLocks() {
  let released = Promise.resolve();
  return {
    request(name, options, work) {
      const done = released.then(() => work());
      released = done.catch(() => {});
      return done;
    },
  };
}

describe("tabs", () => {
  test("a sign-in is announced with no token; the other tab takes the session up with a refresh of its own", async (t) => {
    const { server, a, b, heard, events } = twoTabs(t);

    await a.signin({ email: "a@example.com", password: "correct horse" });
    await until(() => b.session !== null);
    await delivered();
    const [resultA, resultB] = await Promise.all([a.request("/items"), b.request("/items")]);

    assert.deepEqual(heard, [
      { type: "signed-in", reason: "signin" },
      { type: "refreshed", reason: "refresh" },
    ]);
    assert.deepEqual(events.b, ["signed-in refresh"]);
    assert.deepEqual(events.a, ["signed-in signin", "refreshed other-tab:refresh"]);
    assert.equal(resultA.token, "t1");
    assert.equal(resultB.token, "t2");
    assert.equal(server.count("/auth/refresh"), 1);
  });

  test("a refresh is announced with no token; the other tab keeps its own token", async (t) => {
    const { server, clocks, a, b, heard, events } = await twoSignedInTabs(t);
    clocks.a += 901 * 1000;

    await a.request("/items"); // refreshes: t3
    await delivered();
    const resultB = await b.request("/items");

    assert.deepEqual(heard, [{ type: "refreshed", reason: "refresh" }]);
    assert.deepEqual(events.b, ["refreshed other-tab:refresh"]);
    assert.equal(resultB.token, "t2");
    assert.equal(server.count("/auth/refresh"), 2);
  });

  test("when its own token expires, the other tab refreshes for itself, once", async (t) => {
    const { server, clocks, a, b, heard } = await twoSignedInTabs(t);
    clocks.a += 901 * 1000;
    await a.request("/items"); // refreshes: t3
    await delivered();
    clocks.b += 901 * 1000;

    const results = await Promise.all([1, 2, 3].map(() => b.request("/items")));

    assert.equal(server.count("/auth/refresh"), 3);
    assert.ok(results.every((result) => result.token === "t4"));
    assert.deepEqual(heard, [
      { type: "refreshed", reason: "refresh" },
      { type: "refreshed", reason: "refresh" },
    ]);
  });

  test("two tabs past expiry at once refresh one after the other, under the lock", async (t) => {
    const { server, clocks, a, b } = await twoSignedInTabs(t, { locks: fakeLocks() });
    clocks.a += 901 * 1000;
    clocks.b += 901 * 1000;

    const [resultA, resultB] = await Promise.all([a.request("/items"), b.request("/items")]);

    assert.equal(server.count("/auth/refresh"), 3);
    assert.equal(server.mostRefreshesAtOnce, 1);
    assert.deepEqual([resultA.token, resultB.token].sort(), ["t3", "t4"]);
  });

  test("a sign-out is announced and signs the other tab out", async (t) => {
    const { a, b, heard, events } = await twoSignedInTabs(t);

    await a.signout();
    await delivered();

    assert.deepEqual(heard, [{ type: "signed-out", reason: "signout" }]);
    assert.equal(b.session, null);
    assert.deepEqual(events.b, ["signed-out other-tab:signout"]);
    await assert.rejects(b.request("/items"), NotAuthenticatedError);
  });
});

describe("axios adapter", () => {
  test("adds the bearer token and retries once after one shared refresh", async () => {
    const { default: axios } = await import("axios");
    const server = fakeServer();
    const client = await signedIn(server);
    const http = attachApiClient(
      axios.create({ baseURL: BASE, adapter: "fetch", env: { fetch: server.fetch } }),
      client,
    );
    server.expired.add("t1");

    const responses = await Promise.all([http.get("/items"), http.get("/items")]);

    assert.equal(server.count("/auth/refresh"), 1);
    assert.ok(responses.every((response) => response.data.token === "t2"));
  });

  test("refuses to send while signed out", async () => {
    const { default: axios } = await import("axios");
    const server = fakeServer();
    const http = attachApiClient(
      axios.create({ baseURL: BASE, adapter: "fetch", env: { fetch: server.fetch } }),
      clientFor(server),
    );

    await assert.rejects(http.get("/items"), NotAuthenticatedError);

    assert.equal(server.calls.length, 0);
  });
});

describe("errors", () => {
  test("an unreachable API is a NetworkError: typed, retryable, with the cause", async () => {
    const cause = new TypeError("Failed to fetch");
    const client = createApiClient({ baseUrl: BASE, fetch: async () => { throw cause; }, BroadcastChannel: null });

    const error = await client.restoreSession().catch((caught) => caught);

    assert.ok(error instanceof NetworkError);
    assert.deepEqual([error.code, error.status, error.retryable, error.cause], ["network_error", 0, true, cause]);
  });
});

// The lifecycle calls (DESIGN.md §12): which credential each sends, against a recording fake.
function recorder(answers = {}) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const path = url.slice(BASE.length);
    const headers = new Headers(init.headers);
    calls.push({ path, method: init.method ?? "GET", headers, credentials: init.credentials, body: init.body ? JSON.parse(init.body) : undefined });
    if (path === "/auth/csrf") return Response.json({ csrfToken: "csrf-1" });
    if (path === "/auth/signin" || path === "/auth/password/reset") {
      return Response.json({ accessToken: "t1", tokenType: "bearer", expiresIn: 900, expiresAt: Date.now() / 1000 + 900, csrfToken: "csrf-2", user: { id: "u1", email: "a@example.com" } });
    }
    const [status, body] = answers[`${init.method ?? "GET"} ${path}`] ?? [200, { ok: true }];
    return status === 204 ? new Response(null, { status }) : Response.json(body, { status });
  };
  return { calls, client: createApiClient({ baseUrl: BASE, fetch, BroadcastChannel: null }) };
}

describe("account lifecycle", () => {
  for (const [method, path, call, body] of [
    ["POST", "/auth/password/forgot", (c) => c.forgotPassword({ email: "a@example.com" }), { email: "a@example.com" }],
    ["POST", "/auth/email/verify", (c) => c.verifyEmail({ token: "k" }), { token: "k" }],
    ["POST", "/auth/email/resend", (c) => c.resendConfirmation({ email: "a@example.com" }), { email: "a@example.com" }],
  ]) {
    test(`${path} sends the cookie and the CSRF token, no bearer`, async () => {
      const { calls, client } = recorder();

      await call(client);

      const sent = calls.at(-1);
      assert.deepEqual([sent.method, sent.path, sent.body, sent.credentials], [method, path, body, "include"]);
      assert.equal(sent.headers.get("X-CSRF-Token"), "csrf-1");
      assert.equal(sent.headers.get("Authorization"), null);
    });
  }

  test("resetPassword signs the page in with the body it answers", async () => {
    const { calls, client } = recorder();

    const session = await client.resetPassword({ token: "k", password: "new passphrase" });

    assert.equal(session.user.email, "a@example.com");
    assert.deepEqual(calls.at(-1).body, { token: "k", password: "new passphrase" });
  });

  for (const [method, path, call, body] of [
    ["POST", "/auth/password", (c) => c.changePassword({ currentPassword: "a", newPassword: "b" }), { currentPassword: "a", newPassword: "b" }],
    ["POST", "/auth/email", (c) => c.changeEmail({ newEmail: "b@example.com", currentPassword: "a" }), { newEmail: "b@example.com", currentPassword: "a" }],
    ["GET", "/auth/sessions", (c) => c.listSessions(), undefined],
    ["DELETE", "/auth/sessions/s%2F1", (c) => c.revokeSession("s/1"), undefined],
  ]) {
    test(`${method} ${path} sends the bearer token and no cookie`, async () => {
      const { calls, client } = recorder({ "DELETE /auth/sessions/s%2F1": [204, null] });
      await client.signin({ email: "a@example.com", password: "p" });

      await call(client);

      const sent = calls.at(-1);
      assert.deepEqual([sent.method, sent.path, sent.body, sent.credentials], [method, path, body, "omit"]);
      assert.equal(sent.headers.get("Authorization"), "Bearer t1");
    });
  }

  test("the bearer lifecycle calls are refused while signed out, and nothing is sent", async () => {
    const { calls, client } = recorder();

    await assert.rejects(client.listSessions(), NotAuthenticatedError);
    await assert.rejects(client.changePassword({ currentPassword: "a", newPassword: "b" }), NotAuthenticatedError);

    assert.equal(calls.length, 0);
  });

  test("signout({scope: 'others'}) keeps this session; 'global' ends it", async () => {
    const { calls, client } = recorder();
    await client.signin({ email: "a@example.com", password: "p" });

    await client.signout({ scope: "others" });
    const kept = client.session;
    await client.signout({ scope: "global" });

    assert.deepEqual(calls.filter((c) => c.path === "/auth/logout").map((c) => c.body), [{ scope: "others" }, { scope: "global" }]);
    assert.notEqual(kept, null);
    assert.equal(client.session, null);
  });

  test("request() refuses the cookie /auth routes: they have methods of their own", async () => {
    const { calls, client } = recorder();
    await client.signin({ email: "a@example.com", password: "p" });

    await assert.rejects(client.request("/auth/refresh", { method: "POST" }), /own methods/);

    assert.equal(calls.filter((c) => c.path === "/auth/refresh").length, 0);
  });
});
