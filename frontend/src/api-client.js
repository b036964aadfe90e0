// The one way the SPA talks to the API (DESIGN.md §8).
//
// - The access token lives in this closure only: never in localStorage, sessionStorage, a cookie
//   or the DOM, where an injected script could read it. The refresh token is in an HttpOnly
//   cookie that no script can read at all.
// - Every protected call carries `Authorization: Bearer`; the guard refuses to send one without
//   a token. Only /auth calls send cookies (`credentials: "include"`).
// - A 401 triggers one shared refresh (however many calls failed at once), then one retry.
// - Tabs announce a sign-in, a refresh or a sign-out to each other over a BroadcastChannel, and
//   each tab refreshes for itself with the shared cookie, under a Web Lock (with a timeout) so two
//   tabs do not rotate the same cookie at once; the server's 10 s reuse interval is the safety net
//   when they still do.

import { API_BASE_URL } from "./config.js";
import { ApiError, NetworkError, NotAuthenticatedError, errorFromResponse } from "./errors.js";

export { ApiError, NetworkError, NotAuthenticatedError };

// Captured when this module loads, before any development fetch guard wraps window.fetch: the
// client's own calls are the legitimate ones.
const nativeFetch = globalThis.fetch.bind(globalThis);

const PUBLIC_PATHS = new Set(["/health"]);
const CHANNEL_NAME = "myideas-auth";
const REFRESH_LOCK = "myideas-auth-refresh";
// A token this close to its expiry is refreshed before use instead of failing once with a 401.
const EXPIRY_MARGIN_SECONDS = 1;

export function createApiClient({
  baseUrl = API_BASE_URL,
  fetch = nativeFetch,
  BroadcastChannel: Channel = globalThis.BroadcastChannel,
  locks = globalThis.navigator?.locks,
  lockTimeoutMs = 5000,
  now = () => Date.now(),
} = {}) {
  let session = null; // {accessToken, expiresAt, user}
  let csrfToken = null;
  let csrfInFlight = null;
  let refreshInFlight = null;
  const listeners = new Set();
  const channel = Channel ? new Channel(CHANNEL_NAME) : null;

  // -- session state -------------------------------------------------------------------------

  function notify(event) {
    for (const listener of listeners) listener({ ...event, session: publicSession() });
  }

  function publicSession() {
    return session && { user: session.user, expiresAt: session.expiresAt };
  }

  // Only a notice goes on the channel, never a token: any script of this origin can listen there.
  function announce(type, reason) {
    channel?.postMessage({ type, reason });
  }

  function adoptSessionBody(body, { reason }) {
    session = { accessToken: body.accessToken, expiresAt: body.expiresAt, user: body.user };
    if (body.csrfToken) csrfToken = body.csrfToken;
    announce(reason === "signin" ? "signed-in" : "refreshed", reason);
    notify({ type: "signed-in", reason });
  }

  function dropSession(reason, { broadcast = true } = {}) {
    const hadSession = session !== null;
    session = null;
    if (broadcast) announce("signed-out", reason);
    if (hadSession) notify({ type: "signed-out", reason });
  }

  if (channel) {
    channel.onmessage = ({ data }) => {
      const reason = `other-tab:${data?.reason}`;
      // The cookie now holds a new session: take it up with a refresh of our own (a failure keeps
      // this tab as it was).
      if (data?.type === "signed-in") refreshSession(session?.accessToken).catch(() => {});
      // Our own access token stays valid until it expires; then we refresh for ourselves.
      if (data?.type === "refreshed" && session) notify({ type: "refreshed", reason });
      if (data?.type === "signed-out") dropSession(reason, { broadcast: false });
    };
  }

  const isFresh = () => session !== null && now() / 1000 < session.expiresAt - EXPIRY_MARGIN_SECONDS;

  // -- transport ------------------------------------------------------------------------------

  async function send(path, init) {
    try {
      return await fetch(`${baseUrl}${path}`, init);
    } catch (cause) {
      throw new NetworkError(cause);
    }
  }

  async function parse(response) {
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  // -- CSRF ------------------------------------------------------------------------------------

  async function ensureCsrfToken() {
    if (csrfToken) return csrfToken;
    csrfInFlight ??= (async () => {
      try {
        const response = await send("/auth/csrf", { credentials: "include" });
        if (!response.ok) throw await errorFromResponse(response);
        csrfToken = (await response.json()).csrfToken;
        return csrfToken;
      } finally {
        csrfInFlight = null;
      }
    })();
    return csrfInFlight;
  }

  // A state-changing /auth call: cookies included, CSRF header, one retry after a stale token.
  async function authPost(path, body) {
    for (let attempt = 0; ; attempt++) {
      const token = await ensureCsrfToken();
      const response = await send(path, {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify(body ?? {}),
      });
      if (response.ok) return parse(response);
      const error = await errorFromResponse(response);
      // Another tab's sign-in rotates the CSRF cookie: fetch the token that matches it, once.
      if (error.code.startsWith("csrf_") && attempt === 0) {
        csrfToken = null;
        continue;
      }
      throw error;
    }
  }

  // -- refresh -------------------------------------------------------------------------------

  // Refresh the session unless this tab already replaced `staleToken`. All callers share one
  // in-flight refresh.
  function refreshSession(staleToken) {
    if (session && session.accessToken !== staleToken && isFresh()) return Promise.resolve(session);
    refreshInFlight ??= withRefreshLock(async () => {
      try {
        adoptSessionBody(await authPost("/auth/refresh"), { reason: "refresh" });
        return session;
      } catch (error) {
        // Only a refusal of the session ends it; a network error or a 503 keeps it for later.
        if (error.status === 401) dropSession(error.code);
        throw error;
      }
    }).finally(() => {
      refreshInFlight = null;
    });
    return refreshInFlight;
  }

  async function withRefreshLock(work) {
    if (!locks) return work();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), lockTimeoutMs);
    try {
      return await locks.request(REFRESH_LOCK, { signal: controller.signal }, async () => {
        clearTimeout(timer);
        return work();
      });
    } catch (error) {
      // The lock was not granted in time (a tab frozen while holding it): refresh without it.
      if (error?.name === "AbortError") return work();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  // -- protected calls -----------------------------------------------------------------------

  async function getAccessToken(path = "a protected route") {
    if (session === null) throw new NotAuthenticatedError(path);
    if (!isFresh()) await refreshSession(session.accessToken);
    if (session === null) throw new NotAuthenticatedError(path);
    return session.accessToken;
  }

  // Called by whoever got a 401 with `failedToken`; resolves to a fresh token or throws.
  async function handleUnauthorized(failedToken) {
    await refreshSession(failedToken);
    if (session === null) throw new NotAuthenticatedError("the retried call");
    return session.accessToken;
  }

  async function request(path, { method = "GET", body, headers = {} } = {}) {
    if (path.startsWith("/auth/") && path !== "/auth/me") {
      throw new Error(`Use the client's own methods for ${path} (signin, signout, ...)`);
    }
    const call = (token) =>
      send(path, {
        method,
        // Protected routes never get cookies: the bearer header is the only credential.
        credentials: "omit",
        headers: {
          ...headers,
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    if (PUBLIC_PATHS.has(path)) return finish(await call(null));

    const token = await getAccessToken(path);
    let response = await call(token);
    if (response.status === 401) {
      response = await call(await handleUnauthorized(token));
      if (response.status === 401) {
        const error = await errorFromResponse(response);
        dropSession("unauthorized");
        throw error;
      }
    }
    return finish(response);
  }

  async function finish(response) {
    if (!response.ok) throw await errorFromResponse(response);
    return parse(response);
  }

  // -- public API ----------------------------------------------------------------------------

  return {
    async signup({ email, password, displayName }) {
      const profile = displayName ? { displayName } : undefined;
      return authPost("/auth/signup", { email, password, profile });
    },

    async signin({ email, password }) {
      adoptSessionBody(await authPost("/auth/signin", { email, password }), { reason: "signin" });
      return publicSession();
    },

    async signout() {
      try {
        await authPost("/auth/logout");
      } finally {
        dropSession("signout");
      }
    },

    // The boot call after a page load: the refresh cookie brings the session back.
    // Resolves to the session, or null when there is none; throws only when it cannot tell.
    async restoreSession() {
      try {
        await withRefreshLock(async () => {
          adoptSessionBody(await authPost("/auth/refresh"), { reason: "restore" });
        });
        return publicSession();
      } catch (error) {
        if (error.status === 401) {
          // Not broadcast: other tabs may still hold valid access tokens until they expire.
          dropSession(error.code, { broadcast: false });
          return null;
        }
        throw error;
      }
    },

    me: () => request("/auth/me"),
    request,
    // For adapters (axios): the token for a protected call, and the shared refresh after a 401.
    getAccessToken,
    handleUnauthorized,
    // Forget the session in this page (and tell other tabs) without calling the server.
    endSession: (reason) => dropSession(reason),
    get session() {
      return publicSession();
    },
    onSessionChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      channel?.close();
    },
  };
}
