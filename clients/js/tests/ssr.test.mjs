// Safe under server rendering: importing the package touches no window, document or storage,
// and rendering the React binding on the server neither throws nor calls the API.

import assert from "node:assert/strict";
import { test } from "node:test";

const BROWSER_GLOBALS = ["window", "document", "localStorage", "sessionStorage", "location"];
const touched = [];
for (const name of BROWSER_GLOBALS) {
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() {
      touched.push(name);
      return undefined;
    },
  });
}

test("importing every entry point touches no browser global", async () => {
  await import("../dist/index.js");
  await import("../dist/react.js");
  await import("../dist/axios.js");

  assert.deepEqual(touched, []);
});

test("react-dom/server renders the provider, the hooks and the guard without calling the API", async () => {
  const { createElement: h } = await import("react");
  const { renderToString } = await import("react-dom/server");
  const { createApiClient } = await import("../dist/index.js");
  const { AuthProvider, RequireAuth, useApi, useAuth } = await import("../dist/react.js");
  const calls = [];
  const client = createApiClient({
    baseUrl: "http://api.test",
    fetch: async (url) => {
      calls.push(url);
      throw new Error("no API on the server");
    },
    BroadcastChannel: null,
  });
  function Status() {
    const { status, user } = useAuth();
    useApi();
    return h("p", null, `${status}:${user?.email ?? "nobody"}`);
  }

  const html = renderToString(
    h(AuthProvider, { client }, h(Status), h(RequireAuth, { loading: h("i", null, "restoring"), fallback: "sign in" }, "secret")),
  );

  assert.equal(html, "<p>loading:nobody</p><i>restoring</i>");
  assert.deepEqual(calls, []);
  assert.deepEqual(touched, []);
});
