// The React binding: one provider, small hooks (the shape of TanStack Query's
// QueryClientProvider + useQuery).
//
//   const client = createApiClient({ baseUrl });
//   <AuthProvider client={client}><App /></AuthProvider>
//   const { status, user, signIn, signOut } = useAuth();
//   const api = useApi();            // api.listItems(), api.request("/items"), ...
//   <RequireAuth fallback={<SignIn />}>...</RequireAuth>
//
// The session is restored in an effect, so rendering on the server (react-dom/server) calls
// nothing: it renders the "loading" state. The token stays in the client; the context holds
// only what the app may see.

import { createContext, useContext, useEffect, useMemo, useRef, useState } from "react";
import type { ReactNode } from "react";

import type { ApiClient, Credentials, PublicSession, SessionEvent, SignUpInput } from "./client.js";
import { ApiError, NetworkError } from "./errors.js";
import type { User } from "./types.js";

export type AuthStatus = "loading" | "signed-in" | "signed-out";

/** The calls `useAuth()` offers besides the state: sign-in, sign-up, sign-out and the lifecycle. */
export type AuthActions = {
  signIn: ApiClient["signin"];
  signUp: ApiClient["signup"];
  signOut: ApiClient["signout"];
  forgotPassword: ApiClient["forgotPassword"];
  resetPassword: ApiClient["resetPassword"];
  changePassword: ApiClient["changePassword"];
  verifyEmail: ApiClient["verifyEmail"];
  resendConfirmation: ApiClient["resendConfirmation"];
  changeEmail: ApiClient["changeEmail"];
  listSessions: ApiClient["listSessions"];
  revokeSession: ApiClient["revokeSession"];
};

export interface AuthState extends AuthActions {
  status: AuthStatus;
  user: User | null;
  session: PublicSession | null;
  /** Why the boot could not tell whether there is a session (network, 503); the cookie is kept. */
  error: ApiError | null;
}

/** The protected calls, for components that show the user's data. */
export type Api = Pick<
  ApiClient,
  "request" | "me" | "listItems" | "createItem" | "updateItem" | "deleteItem" | "listSessions" | "revokeSession"
>;

interface Snapshot {
  status: AuthStatus;
  session: PublicSession | null;
  error: ApiError | null;
}

interface ContextValue {
  client: ApiClient;
  snapshot: Snapshot;
}

const AuthContext = createContext<ContextValue | null>(null);
// One boot per client, even when an effect runs twice (React's StrictMode in development).
const restoring = new WeakMap<ApiClient, Promise<PublicSession | null>>();

function restoreOnce(client: ApiClient): Promise<PublicSession | null> {
  let boot = restoring.get(client);
  if (!boot) {
    boot = client.restoreSession();
    restoring.set(client, boot);
  }
  return boot;
}

export interface AuthProviderProps {
  client: ApiClient;
  children?: ReactNode;
}

export function AuthProvider({ client, children }: AuthProviderProps): ReactNode {
  const [snapshot, setSnapshot] = useState<Snapshot>(() =>
    client.session
      ? { status: "signed-in", session: client.session, error: null }
      : { status: "loading", session: null, error: null },
  );

  useEffect(() => {
    let live = true;
    const off = client.onSessionChange((event: SessionEvent) => {
      if (!live) return;
      if (event.type === "signed-in") setSnapshot({ status: "signed-in", session: event.session, error: null });
      if (event.type === "signed-out") setSnapshot({ status: "signed-out", session: null, error: null });
      if (event.type === "refreshed") setSnapshot((previous) => ({ ...previous, session: client.session }));
    });
    restoreOnce(client).then(
      (session) => {
        if (live) setSnapshot({ status: session ? "signed-in" : "signed-out", session, error: null });
      },
      (error: unknown) => {
        const failure = error instanceof ApiError ? error : new NetworkError(error);
        if (live) setSnapshot({ status: client.session ? "signed-in" : "signed-out", session: client.session, error: failure });
      },
    );
    return () => {
      live = false;
      off();
    };
  }, [client]);

  const value = useMemo(() => ({ client, snapshot }), [client, snapshot]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

function useContextValue(hook: string): ContextValue {
  const value = useContext(AuthContext);
  if (value === null) throw new Error(`${hook}() must be called inside <AuthProvider client={...}>`);
  return value;
}

/** The session's state and the calls that change it. */
export function useAuth(): AuthState {
  const { client, snapshot } = useContextValue("useAuth");
  const actions = useMemo<AuthActions>(
    () => ({
      signIn: (credentials: Credentials) => client.signin(credentials),
      signUp: (input: SignUpInput) => client.signup(input),
      signOut: (options) => client.signout(options),
      forgotPassword: (input) => client.forgotPassword(input),
      resetPassword: (input) => client.resetPassword(input),
      changePassword: (input) => client.changePassword(input),
      verifyEmail: (input) => client.verifyEmail(input),
      resendConfirmation: (input) => client.resendConfirmation(input),
      changeEmail: (input) => client.changeEmail(input),
      listSessions: () => client.listSessions(),
      revokeSession: (id) => client.revokeSession(id),
    }),
    [client],
  );
  return { ...actions, ...snapshot, user: snapshot.session?.user ?? null };
}

/** The protected calls (bearer token, one shared refresh): throw NotAuthenticatedError when signed out. */
export function useApi(): Api {
  const { client } = useContextValue("useApi");
  return useMemo<Api>(
    () => ({
      request: (path, options) => client.request(path, options),
      me: () => client.me(),
      listItems: () => client.listItems(),
      createItem: (item) => client.createItem(item),
      updateItem: (id, changes) => client.updateItem(id, changes),
      deleteItem: (id) => client.deleteItem(id),
      listSessions: () => client.listSessions(),
      revokeSession: (id) => client.revokeSession(id),
    }),
    [client],
  );
}

/** Calls `listener` on every sign-in, refresh and sign-out (this tab's or another's). */
export function useSessionEvents(listener: (event: SessionEvent) => void): void {
  const { client } = useContextValue("useSessionEvents");
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => client.onSessionChange((event) => latest.current(event)), [client]);
}

export interface RequireAuthProps {
  children?: ReactNode;
  /** Shown while signed out (a sign-in form, say). */
  fallback?: ReactNode;
  /** Shown while the session is being restored (and on the server). */
  loading?: ReactNode;
}

/** Renders `children` only with a session: a protected view never renders, nor calls, signed out. */
export function RequireAuth({ children, fallback = null, loading = null }: RequireAuthProps): ReactNode {
  const { snapshot } = useContextValue("RequireAuth");
  if (snapshot.status === "loading") return loading;
  return snapshot.status === "signed-in" ? children : fallback;
}
