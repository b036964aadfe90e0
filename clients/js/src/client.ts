// The one way an app talks to the API (README, "The browser client").
//
// - The access token lives in this closure only: never in localStorage, sessionStorage, a cookie
//   or the DOM, where an injected script could read it. The refresh token is in an HttpOnly
//   cookie that no script can read at all.
// - Every protected call carries `Authorization: Bearer`; the guard refuses to send one without
//   a token. Only the cookie-based /auth calls send cookies (`credentials: "include"`).
// - A 401 triggers one shared refresh (however many calls failed at once), then one retry.
// - Tabs announce a sign-in, a refresh or a sign-out to each other over a BroadcastChannel, and
//   each tab refreshes for itself with the shared cookie, under a Web Lock (with a timeout) so two
//   tabs do not rotate the same cookie at once; the server's 10 s reuse interval is the safety net
//   when they still do.
// - Nothing runs at import but capturing the global fetch: no window, document or storage is
//   touched, so the module is safe to import in a server-rendered app.

import { ApiError, NetworkError, NotAuthenticatedError, errorFromResponse } from "./errors.js";
import type {
  ConfirmedUser,
  Item,
  ItemCreate,
  ItemList,
  ItemUpdate,
  LogoutScope,
  Me,
  Ok,
  SessionBody,
  SessionList,
  SignUpResult,
  User,
} from "./types.js";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** The parts of the Web Locks API the client uses (`navigator.locks`). */
export interface LockManagerLike {
  request<T>(name: string, options: { signal: AbortSignal }, work: () => Promise<T>): Promise<T>;
}

/** The parts of BroadcastChannel the client uses. */
export interface ChannelLike {
  onmessage: ((event: { data: unknown }) => void) | null;
  postMessage(message: TabNotice): void;
  close(): void;
}
export type ChannelConstructor = new (name: string) => ChannelLike;

export interface ApiClientOptions {
  /** The API's base URL, e.g. `http://localhost:8000` (no trailing slash needed). */
  baseUrl: string;
  fetch?: FetchLike;
  /** `null` turns the tab notices off. */
  BroadcastChannel?: ChannelConstructor | null;
  /** `null` refreshes without a cross-tab lock. */
  locks?: LockManagerLike | null;
  lockTimeoutMs?: number;
  now?: () => number;
}

/** What the app may know of the session: never the token itself. */
export interface PublicSession {
  user: User;
  expiresAt: number;
}

export type SessionEventType = "signed-in" | "signed-out" | "refreshed";

export interface SessionEvent {
  type: SessionEventType;
  reason: string;
  session: PublicSession | null;
}

/** A message on the tabs' channel: a notice only, never a token. */
export interface TabNotice {
  type: SessionEventType;
  reason: string;
}

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestOptions {
  method?: HttpMethod;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface SignUpInput {
  email: string;
  password: string;
  displayName?: string | undefined;
}

export interface Credentials {
  email: string;
  password: string;
}

export interface ApiClient {
  signup(input: SignUpInput): Promise<SignUpResult>;
  signin(credentials: Credentials): Promise<PublicSession>;
  /** `local` (default) ends this session; `others` keeps it and ends the rest; `global` all. */
  signout(options?: { scope?: LogoutScope }): Promise<void>;
  /** The boot call after a page load: resolves to the session, or null when there is none;
   * throws only when it cannot tell (network, 503). */
  restoreSession(): Promise<PublicSession | null>;
  me(): Promise<Me>;
  /** A protected call (bearer token, one refresh and retry on 401). */
  request<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
  listItems(): Promise<ItemList>;
  createItem(item: ItemCreate): Promise<Item>;
  updateItem(id: string, changes: ItemUpdate): Promise<Item>;
  deleteItem(id: string): Promise<void>;
  // The account lifecycle (docs/account-lifecycle.md).
  forgotPassword(input: { email: string }): Promise<Ok>;
  resetPassword(input: { token: string; password: string }): Promise<PublicSession>;
  changePassword(input: { currentPassword: string; newPassword: string }): Promise<Ok>;
  verifyEmail(input: { token: string }): Promise<ConfirmedUser>;
  resendConfirmation(input: { email: string }): Promise<Ok>;
  changeEmail(input: { newEmail: string; currentPassword: string }): Promise<Ok>;
  listSessions(): Promise<SessionList>;
  revokeSession(id: string): Promise<void>;
  /** For adapters (axios): the token for a protected call... */
  getAccessToken(path?: string): Promise<string>;
  /** ...and the shared refresh after a 401 with `failedToken`. */
  handleUnauthorized(failedToken: string): Promise<string>;
  /** Forget the session in this page (and tell other tabs) without calling the server. */
  endSession(reason: string): void;
  readonly session: PublicSession | null;
  onSessionChange(listener: (event: SessionEvent) => void): () => void;
  close(): void;
}

// Captured when this module loads, before any development fetch guard wraps the global fetch:
// the client's own calls are the legitimate ones.
const nativeFetch: FetchLike | undefined =
  typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : undefined;

const PUBLIC_PATHS = new Set(["/health"]);
// /auth routes that take the bearer token (and no cookie, no CSRF token).
const BEARER_AUTH_PATHS = /^\/auth\/(me|password|email|sessions(\/[^/]+)?)$/;
const CHANNEL_NAME = "myideas-auth";
const REFRESH_LOCK = "myideas-auth-refresh";
// A token this close to its expiry is refreshed before use instead of failing once with a 401.
const EXPIRY_MARGIN_SECONDS = 1;

interface HeldSession {
  accessToken: string;
  expiresAt: number;
  user: User;
}

function isNotice(data: unknown): data is TabNotice {
  return typeof data === "object" && data !== null && typeof (data as TabNotice).type === "string";
}

function defaultLocks(): LockManagerLike | null {
  const navigator = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return navigator?.locks ?? null;
}

function defaultChannel(): ChannelConstructor | null {
  const Channel = (globalThis as { BroadcastChannel?: ChannelConstructor }).BroadcastChannel;
  return Channel ?? null;
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const {
    fetch = nativeFetch,
    lockTimeoutMs = 5000,
    now = () => Date.now(),
  } = options;
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const Channel = options.BroadcastChannel === undefined ? defaultChannel() : options.BroadcastChannel;
  const locks = options.locks === undefined ? defaultLocks() : options.locks;
  if (!fetch) throw new Error("No fetch in this environment: pass one in createApiClient({ fetch })");
  const doFetch: FetchLike = fetch;

  let session: HeldSession | null = null;
  let csrfToken: string | null = null;
  let csrfInFlight: Promise<string> | null = null;
  let refreshInFlight: Promise<HeldSession | null> | null = null;
  const listeners = new Set<(event: SessionEvent) => void>();
  const channel = Channel ? new Channel(CHANNEL_NAME) : null;

  // -- session state -------------------------------------------------------------------------

  function publicSession(): PublicSession | null {
    return session && { user: session.user, expiresAt: session.expiresAt };
  }

  function notify(type: SessionEventType, reason: string): void {
    for (const listener of listeners) listener({ type, reason, session: publicSession() });
  }

  // Only a notice goes on the channel, never a token: any script of this origin can listen there.
  function announce(type: SessionEventType, reason: string): void {
    channel?.postMessage({ type, reason });
  }

  function adoptSessionBody(body: SessionBody, reason: string): void {
    session = { accessToken: body.accessToken, expiresAt: body.expiresAt, user: body.user };
    if (body.csrfToken) csrfToken = body.csrfToken;
    announce(reason === "signin" ? "signed-in" : "refreshed", reason);
    notify("signed-in", reason);
  }

  function dropSession(reason: string, { broadcast = true } = {}): void {
    const hadSession = session !== null;
    session = null;
    if (broadcast) announce("signed-out", reason);
    if (hadSession) notify("signed-out", reason);
  }

  if (channel) {
    channel.onmessage = ({ data }) => {
      if (!isNotice(data)) return;
      const reason = `other-tab:${data.reason}`;
      // The cookie now holds a new session: take it up with a refresh of our own (a failure keeps
      // this tab as it was).
      if (data.type === "signed-in") refreshSession(session?.accessToken ?? null).catch(() => {});
      // Our own access token stays valid until it expires; then we refresh for ourselves.
      if (data.type === "refreshed" && session) notify("refreshed", reason);
      if (data.type === "signed-out") dropSession(reason, { broadcast: false });
    };
  }

  const isFresh = (): boolean =>
    session !== null && now() / 1000 < session.expiresAt - EXPIRY_MARGIN_SECONDS;

  // -- transport ------------------------------------------------------------------------------

  async function send(path: string, init: RequestInit): Promise<Response> {
    try {
      return await doFetch(`${baseUrl}${path}`, init);
    } catch (cause) {
      throw new NetworkError(cause);
    }
  }

  async function parse<T>(response: Response): Promise<T> {
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  // -- CSRF ------------------------------------------------------------------------------------

  async function ensureCsrfToken(): Promise<string> {
    if (csrfToken) return csrfToken;
    csrfInFlight ??= (async () => {
      try {
        const response = await send("/auth/csrf", { credentials: "include" });
        if (!response.ok) throw await errorFromResponse(response);
        const token = ((await response.json()) as { csrfToken: string }).csrfToken;
        csrfToken = token;
        return token;
      } finally {
        csrfInFlight = null;
      }
    })();
    return csrfInFlight;
  }

  // A state-changing cookie /auth call: cookies included, CSRF header, one retry after a stale token.
  async function authPost<T>(path: string, body?: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const token = await ensureCsrfToken();
      const response = await send(path, {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify(body ?? {}),
      });
      if (response.ok) return parse<T>(response);
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

  // A ban (403 `user_banned`) refuses the session as a 401 does, but no refresh or retry cures
  // it: the session ends here and the error goes to the caller, who can say why.
  function isBan(error: unknown): error is ApiError {
    return error instanceof ApiError && error.status === 403 && error.code === "user_banned";
  }

  // Refresh the session unless this tab already replaced `staleToken`. All callers share one
  // in-flight refresh.
  function refreshSession(staleToken: string | null): Promise<HeldSession | null> {
    if (session && session.accessToken !== staleToken && isFresh()) return Promise.resolve(session);
    refreshInFlight ??= withRefreshLock(async () => {
      try {
        adoptSessionBody(await authPost<SessionBody>("/auth/refresh"), "refresh");
        return session;
      } catch (error) {
        // Only a refusal of the session ends it; a network error or a 503 keeps it for later.
        if (error instanceof ApiError && (error.status === 401 || isBan(error))) dropSession(error.code);
        throw error;
      }
    }).finally(() => {
      refreshInFlight = null;
    });
    return refreshInFlight;
  }

  async function withRefreshLock<T>(work: () => Promise<T>): Promise<T> {
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
      if ((error as { name?: unknown } | null)?.name === "AbortError") return work();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  // -- protected calls -----------------------------------------------------------------------

  async function getAccessToken(path = "a protected route"): Promise<string> {
    if (session === null) throw new NotAuthenticatedError(path);
    if (!isFresh()) await refreshSession(session.accessToken);
    const current = session as HeldSession | null;
    if (current === null) throw new NotAuthenticatedError(path);
    return current.accessToken;
  }

  // Called by whoever got a 401 with `failedToken`; resolves to a fresh token or throws.
  async function handleUnauthorized(failedToken: string): Promise<string> {
    await refreshSession(failedToken);
    const current = session as HeldSession | null;
    if (current === null) throw new NotAuthenticatedError("the retried call");
    return current.accessToken;
  }

  async function finish<T>(response: Response): Promise<T> {
    if (!response.ok) throw await errorFromResponse(response);
    return parse<T>(response);
  }

  async function protectedCall<T>(path: string, { method = "GET", body, headers = {} }: RequestOptions = {}): Promise<T> {
    const call = (token: string | null): Promise<Response> =>
      send(path, {
        method,
        // Protected routes never get cookies: the bearer header is the only credential.
        credentials: "omit",
        headers: {
          ...headers,
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : null,
      });
    if (PUBLIC_PATHS.has(path)) return finish<T>(await call(null));

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
    try {
      return await finish<T>(response);
    } catch (error) {
      if (isBan(error)) dropSession(error.code);
      throw error;
    }
  }

  function request<T = unknown>(path: string, options?: RequestOptions): Promise<T> {
    if (path.startsWith("/auth/") && !BEARER_AUTH_PATHS.test(path)) {
      return Promise.reject(new Error(`Use the client's own methods for ${path} (signin, signout, ...)`));
    }
    return protectedCall<T>(path, options);
  }

  // -- public API ----------------------------------------------------------------------------

  return {
    async signup({ email, password, displayName }) {
      const profile = displayName ? { displayName } : undefined;
      return authPost<SignUpResult>("/auth/signup", { email, password, profile });
    },

    async signin({ email, password }) {
      adoptSessionBody(await authPost<SessionBody>("/auth/signin", { email, password }), "signin");
      return publicSession() as PublicSession;
    },

    async signout({ scope = "local" } = {}) {
      try {
        await authPost<Ok>("/auth/logout", scope === "local" ? undefined : { scope });
        if (scope === "others") return;
      } catch (error) {
        if (scope === "others") throw error;
      }
      dropSession(scope === "global" ? "signout-global" : "signout");
    },

    async restoreSession() {
      try {
        await withRefreshLock(async () => {
          adoptSessionBody(await authPost<SessionBody>("/auth/refresh"), "restore");
        });
        return publicSession();
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
          // Not broadcast: other tabs may still hold valid access tokens until they expire.
          dropSession(error.code, { broadcast: false });
          return null;
        }
        if (isBan(error)) dropSession(error.code, { broadcast: false });
        throw error;
      }
    },

    me: () => protectedCall<Me>("/auth/me"),
    request,
    listItems: () => protectedCall<ItemList>("/items"),
    createItem: (item) => protectedCall<Item>("/items", { method: "POST", body: item }),
    updateItem: (id, changes) =>
      protectedCall<Item>(`/items/${encodeURIComponent(id)}`, { method: "PATCH", body: changes }),
    deleteItem: (id) => protectedCall<void>(`/items/${encodeURIComponent(id)}`, { method: "DELETE" }),

    forgotPassword: ({ email }) => authPost<Ok>("/auth/password/forgot", { email }),
    async resetPassword({ token, password }) {
      adoptSessionBody(await authPost<SessionBody>("/auth/password/reset", { token, password }), "signin");
      return publicSession() as PublicSession;
    },
    changePassword: ({ currentPassword, newPassword }) =>
      protectedCall<Ok>("/auth/password", { method: "POST", body: { currentPassword, newPassword } }),
    verifyEmail: ({ token }) => authPost<ConfirmedUser>("/auth/email/verify", { token }),
    resendConfirmation: ({ email }) => authPost<Ok>("/auth/email/resend", { email }),
    changeEmail: ({ newEmail, currentPassword }) =>
      protectedCall<Ok>("/auth/email", { method: "POST", body: { newEmail, currentPassword } }),
    listSessions: () => protectedCall<SessionList>("/auth/sessions"),
    revokeSession: (id) =>
      protectedCall<void>(`/auth/sessions/${encodeURIComponent(id)}`, { method: "DELETE" }),

    getAccessToken,
    handleUnauthorized,
    endSession: (reason) => dropSession(reason),
    get session() {
      return publicSession();
    },
    onSessionChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close() {
      channel?.close();
    },
  };
}
