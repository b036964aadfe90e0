// A consumer of every public name of the package, type-checked by `npm run typecheck`
// (tsc --noEmit): it compiles only while the published declarations are whole, and the
// `expectType` checks fail the build if `any` leaks out of a public name.

import axios from "axios";
import type { ReactNode } from "react";

import {
  ApiError,
  NetworkError,
  NotAuthenticatedError,
  createApiClient,
  errorFromResponse,
  installFetchGuard,
} from "@myideas/client";
import type {
  ApiClient,
  ApiClientOptions,
  ApiErrorInit,
  ChannelConstructor,
  ChannelLike,
  ConfirmedUser,
  Credentials,
  ErrorDetails,
  FetchGuardOptions,
  FetchLike,
  Health,
  HttpMethod,
  Item,
  ItemCreate,
  ItemList,
  ItemUpdate,
  LiveSession,
  LockManagerLike,
  LogoutScope,
  Me,
  MeUser,
  Ok,
  PublicSession,
  RequestOptions,
  SessionBody,
  SessionEvent,
  SessionEventType,
  SessionList,
  SignUpBody,
  SignUpInput,
  SignUpResult,
  TabNotice,
  User,
  components,
  paths,
} from "@myideas/client";
import { attachApiClient } from "@myideas/client/axios";
import type { AxiosTokenSource } from "@myideas/client/axios";
import { AuthProvider, RequireAuth, useApi, useAuth, useSessionEvents } from "@myideas/client/react";
import type { Api, AuthActions, AuthProviderProps, AuthState, AuthStatus, RequireAuthProps } from "@myideas/client/react";

// `expectType<T>()(value)` compiles only when value's type is exactly T (so not `any`).
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
type Exactly<T> = <U>(value: U, ...exact: Equal<T, U> extends true ? [] : [never]) => U;
function expectType<T>(): Exactly<T> {
  return ((value: unknown) => value) as unknown as Exactly<T>;
}

const options: ApiClientOptions = { baseUrl: "http://localhost:8000", lockTimeoutMs: 1000 };
const client: ApiClient = createApiClient(options);
const stop: () => void = installFetchGuard({ apiBaseUrl: options.baseUrl } satisfies FetchGuardOptions);
stop();

async function everyCall(): Promise<void> {
  const credentials: Credentials = { email: "a@example.com", password: "correct horse" };
  const signUp: SignUpInput = { ...credentials, displayName: "Ada" };
  const created = expectType<SignUpResult>()(await client.signup(signUp));
  const session = expectType<PublicSession>()(await client.signin(credentials));
  const restored = expectType<PublicSession | null>()(await client.restoreSession());
  const me = expectType<Me>()(await client.me());
  const meUser: MeUser = me.user;
  const displayName: string | null = meUser.profile.displayName;
  const list = expectType<ItemList>()(await client.listItems());
  const item = expectType<Item>()(await client.createItem({ title: "An idea" } satisfies ItemCreate));
  const changed = expectType<Item>()(await client.updateItem(item.id, { title: "Better" } satisfies ItemUpdate));
  expectType<void>()(await client.deleteItem(changed.id));
  const health = expectType<Health>()(await client.request<Health>("/health"));
  const raw = expectType<unknown>()(await client.request("/items", { method: "GET" satisfies HttpMethod } satisfies RequestOptions));
  const ok = expectType<Ok>()(await client.forgotPassword({ email: "a@example.com" }));
  expectType<PublicSession>()(await client.resetPassword({ token: "k", password: "new passphrase" }));
  expectType<Ok>()(await client.changePassword({ currentPassword: "a", newPassword: "b" }));
  const confirmed = expectType<ConfirmedUser>()(await client.verifyEmail({ token: "k" }));
  expectType<Ok>()(await client.resendConfirmation({ email: "a@example.com" }));
  expectType<Ok>()(await client.changeEmail({ newEmail: "b@example.com", currentPassword: "a" }));
  const sessions = expectType<SessionList>()(await client.listSessions());
  const live: LiveSession | undefined = sessions.sessions[0];
  if (live) expectType<void>()(await client.revokeSession(live.id));
  const scope: LogoutScope = "others";
  expectType<void>()(await client.signout({ scope }));
  expectType<string>()(await client.getAccessToken("/items"));
  expectType<string>()(await client.handleUnauthorized("stale"));
  client.endSession("test");
  const user: User | undefined = client.session?.user;
  const off: () => void = client.onSessionChange((event: SessionEvent) => {
    const type: SessionEventType = event.type;
    const reason: string = event.reason;
    void [type, reason];
  });
  off();
  client.close();
  void [created, session, restored, displayName, list, health, raw, ok, confirmed, user];
}

async function errors(response: Response): Promise<string> {
  const init: ApiErrorInit = { status: 409, code: "user_already_exists", message: "Taken" };
  const details: ErrorDetails = new ApiError(init).details;
  const parsed = expectType<ApiError>()(await errorFromResponse(response));
  const refused = new NotAuthenticatedError("/items");
  const offline = new NetworkError(new TypeError("Failed to fetch"));
  void details;
  return [parsed.code, refused.code, offline.code, String(offline.retryable)].join();
}

// The injectable parts, as a test or another runtime provides them.
const fetchLike: FetchLike = (input, init) => fetch(input, init);
const locks: LockManagerLike = { request: (_name, _options, work) => work() };
class QuietChannel implements ChannelLike {
  onmessage: ChannelLike["onmessage"] = null;
  postMessage(message: TabNotice): void {
    void message;
  }
  close(): void {}
}
const Channel: ChannelConstructor = QuietChannel;
createApiClient({ baseUrl: "http://localhost:8000", fetch: fetchLike, locks, BroadcastChannel: Channel, now: Date.now });

// The generated schema types.
const signInBody: components["schemas"]["SignInIn"] = { email: "a@example.com", password: "p" };
type ItemsGet = paths["/items"]["get"]["responses"][200]["content"]["application/json"];
const sessionBody: SessionBody | null = null;
const signUpBody: SignUpBody = { email: "a@example.com", password: "p" };
void [signInBody, sessionBody, signUpBody];
const items: ItemsGet = { items: [] };
void items;

// axios.
const source: AxiosTokenSource = client;
const http = attachApiClient(axios.create({ baseURL: options.baseUrl }), source);
async function viaAxios(): Promise<ItemList> {
  return (await http.get<ItemList>("/items")).data;
}

// React.
function Ideas(): ReactNode {
  const auth: AuthState = useAuth();
  const status: AuthStatus = auth.status;
  const actions: AuthActions = auth;
  const api: Api = useApi();
  useSessionEvents((event) => void event.type);
  const signOut = (): Promise<void> => actions.signOut();
  void [api.listItems, signOut];
  return <p>{status === "signed-in" ? auth.user?.email : "signed out"}</p>;
}

function Root(): ReactNode {
  const guard: RequireAuthProps = { fallback: <p>Sign in</p>, loading: <p>Restoring</p> };
  const provider: Omit<AuthProviderProps, "children"> = { client };
  return (
    <AuthProvider {...provider}>
      <RequireAuth {...guard}>
        <Ideas />
      </RequireAuth>
    </AuthProvider>
  );
}

void [everyCall, errors, viaAxios, Root];
