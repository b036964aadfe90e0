// supabase-js, unchanged, against this app's GoTrue-compatible API on loopback.
// Usage: node --experimental-websocket scenario.mjs <url> <anon key> <service role key>
// Prints one JSON object of observations; backend/tests/gotrue/test_supabase_js.py asserts on it.
import { createClient } from "@supabase/supabase-js";

const [url, anonKey, serviceKey] = process.argv.slice(2);
const PASSWORD = "correct horse battery staple";
const email = () => `js-${Math.random().toString(16).slice(2, 14)}@example.com`;

function client(key = anonKey) {
  const requests = [];
  const counting = (input, init) => {
    const target = new URL(typeof input === "string" ? input : input.url);
    requests.push(`${init?.method ?? "GET"} ${target.pathname}`);
    return fetch(input, init);
  };
  const supabase = createClient(url, key, {
    auth: { autoRefreshToken: false, persistSession: false, detectSessionInUrl: false },
    global: { fetch: counting },
  });
  return { supabase, requests };
}

const fail = (error) => (error ? { name: error.name, status: error.status, code: error.code } : null);
const out = {};

// Sign-up, sign-in, get user, local claims.
{
  const { supabase, requests } = client();
  const address = email();
  const up = await supabase.auth.signUp({ email: address, password: PASSWORD, options: { data: { plan: "free" } } });
  const signIn = await supabase.auth.signInWithPassword({ email: address, password: PASSWORD });
  const user = await supabase.auth.getUser();
  requests.length = 0;
  const claims = await supabase.auth.getClaims();
  out.signUp = { error: fail(up.error), session: Boolean(up.data.session), metadata: up.data.user?.user_metadata };
  out.signIn = { error: fail(signIn.error), userId: signIn.data.user?.id, email: signIn.data.user?.email };
  out.getUser = { error: fail(user.error), email: user.data.user?.email, expected: address };
  out.claims = {
    error: fail(claims.error),
    sub: claims.data?.claims?.sub,
    alg: claims.data?.header?.alg,
    requests: [...requests],
  };
}

// Refresh, and reuse within the interval.
{
  const { supabase } = client();
  const up = await supabase.auth.signUp({ email: email(), password: PASSWORD });
  const first = await supabase.auth.refreshSession({ refresh_token: up.data.session.refresh_token });
  const twin = await supabase.auth.refreshSession({ refresh_token: up.data.session.refresh_token });
  out.refresh = {
    error: fail(first.error) ?? fail(twin.error),
    rotated: first.data.session?.refresh_token !== up.data.session.refresh_token,
    twinGetsSuccessor: twin.data.session?.refresh_token === first.data.session?.refresh_token,
  };
}

// Update user: password and data; the other session ends.
{
  const address = email();
  const { supabase } = client();
  const other = client().supabase;
  await supabase.auth.signUp({ email: address, password: PASSWORD, options: { data: { a: 1, b: 2 } } });
  const theirs = await other.auth.signInWithPassword({ email: address, password: PASSWORD });
  const updated = await supabase.auth.updateUser({ password: "a brand new passphrase", data: { b: null, c: 3 } });
  const refused = await client().supabase.auth.refreshSession({ refresh_token: theirs.data.session.refresh_token });
  const newPassword = await client().supabase.auth.signInWithPassword({ email: address, password: "a brand new passphrase" });
  out.updateUser = {
    error: fail(updated.error),
    metadata: updated.data.user?.user_metadata,
    otherSession: fail(refused.error),
    newPasswordWorks: !newPassword.error,
  };
}

// Sign out with each scope: the server's state is checked (the client swallows errors).
out.signOut = {};
for (const scope of ["global", "local", "others"]) {
  const address = email();
  const { supabase } = client();
  const own = (await supabase.auth.signUp({ email: address, password: PASSWORD })).data.session;
  const theirs = (await client().supabase.auth.signInWithPassword({ email: address, password: PASSWORD })).data.session;
  const result = await supabase.auth.signOut({ scope });
  const checker = client().supabase;
  const alive = [];
  const refresh = [];
  for (const session of [own, theirs]) {
    const user = await checker.auth.getUser(session.access_token);
    alive.push(user.error ? user.error.name : true);
    const refreshed = await checker.auth.refreshSession({ refresh_token: session.refresh_token });
    refresh.push(refreshed.error ? refreshed.error.code : true);
  }
  out.signOut[scope] = { error: fail(result.error), alive, refresh };
}

// The admin API.
{
  const admin = client(serviceKey).supabase.auth.admin;
  const address = email();
  const created = await admin.createUser({ email: address, password: PASSWORD, email_confirm: true, user_metadata: { display_name: "Ada" } });
  await admin.createUser({ email: email(), email_confirm: true });
  const page = await admin.listUsers({ page: 1, perPage: 1 });
  const fetched = await admin.getUserById(created.data.user.id);
  const renamed = email();
  const updated = await admin.updateUserById(created.data.user.id, { email: renamed, user_metadata: { plan: "pro" } });
  const deleted = await admin.deleteUser(created.data.user.id);
  const gone = await admin.getUserById(created.data.user.id);
  out.admin = {
    error: fail(created.error) ?? fail(page.error) ?? fail(fetched.error) ?? fail(deleted.error),
    email: created.data.user?.email,
    expected: address,
    metadata: created.data.user?.user_metadata,
    pageSize: page.data.users.length,
    total: page.data.total,
    nextPage: page.data.nextPage,
    lastPage: page.data.lastPage,
    fetched: fetched.data.user?.id === created.data.user.id,
    updated: { error: fail(updated.error), email: updated.data.user?.email === renamed, metadata: updated.data.user?.user_metadata },
    gone: fail(gone.error),
  };
}

// A ban through the admin API (`ban_duration`, GoTrue's `admin.go`), then its lifting.
{
  const admin = client(serviceKey).supabase.auth.admin;
  const address = email();
  const created = await admin.createUser({ email: address, password: PASSWORD, email_confirm: true });
  const first = (await client().supabase.auth.signInWithPassword({ email: address, password: PASSWORD })).data.session;
  const banned = await admin.updateUserById(created.data.user.id, { ban_duration: "24h" });
  const signIn = await client().supabase.auth.signInWithPassword({ email: address, password: PASSWORD });
  const refresh = await client().supabase.auth.refreshSession({ refresh_token: first.refresh_token });
  const getUser = await client().supabase.auth.getUser(first.access_token);
  const invalid = await admin.updateUserById(created.data.user.id, { ban_duration: "24" });
  const lifted = await admin.updateUserById(created.data.user.id, { ban_duration: "none" });
  const again = await client().supabase.auth.signInWithPassword({ email: address, password: PASSWORD });
  out.ban = {
    bannedUntil: typeof banned.data.user?.banned_until === "string",
    signIn: fail(signIn.error),
    refresh: fail(refresh.error),
    getUser: fail(getUser.error),
    invalid: { ...fail(invalid.error), message: invalid.error?.message },
    lifted: lifted.data.user?.banned_until ?? null,
    again: fail(again.error),
  };
}

// Each error code a client exposes.
{
  const { supabase } = client();
  const admin = client(serviceKey).supabase.auth.admin;
  const address = email();
  const session = (await supabase.auth.signUp({ email: address, password: PASSWORD })).data.session;
  const unconfirmed = email();
  await admin.createUser({ email: unconfirmed, password: PASSWORD });
  const errors = {};
  errors.invalid_credentials = (await supabase.auth.signInWithPassword({ email: address, password: "wrong!!!" })).error;
  errors.user_already_exists = (await supabase.auth.signUp({ email: address, password: PASSWORD })).error;
  errors.email_exists = (await admin.createUser({ email: address })).error;
  errors.email_not_confirmed = (await client().supabase.auth.signInWithPassword({ email: unconfirmed, password: PASSWORD })).error;
  errors.weak_password = (await client().supabase.auth.signUp({ email: email(), password: "short" })).error;
  errors.same_password = (await supabase.auth.updateUser({ password: PASSWORD })).error;
  errors.validation_failed = (await client().supabase.auth.signUp({ email: "not-an-email", password: PASSWORD })).error;
  errors.refresh_token_not_found = (await client().supabase.auth.refreshSession({ refresh_token: "x".repeat(43) })).error;
  errors.not_admin = (await supabase.auth.admin.listUsers()).error;
  errors.user_not_found = (await admin.getUserById("00000000-0000-4000-8000-000000000000")).error;
  const noKey = createClient(url, "sb_publishable_unknown", { auth: { autoRefreshToken: false, persistSession: false } });
  errors.invalid_api_key = (await noKey.auth.signInWithPassword({ email: address, password: PASSWORD })).error;
  await supabase.auth.signOut({ scope: "local" });
  errors.session_not_found = (await client().supabase.auth.getUser(session.access_token)).error;
  out.errors = Object.fromEntries(Object.entries(errors).map(([name, error]) => [name, { ...fail(error), reasons: error?.reasons }]));
}

// Features this server does not offer: GoTrue's own "disabled" errors, typed by the client.
{
  const { supabase } = client();
  const noSession = fail((await supabase.auth.mfa.enroll({ factorType: "totp" })).error);
  await supabase.auth.signUp({ email: email(), password: PASSWORD });
  const disabled = {
    sso: (await supabase.auth.signInWithSSO({ domain: "example.com" })).error,
    anonymous: (await client().supabase.auth.signInAnonymously()).error,
    phone: (await client().supabase.auth.signUp({ phone: "+15550100", password: PASSWORD })).error,
    id_token: (await client().supabase.auth.signInWithIdToken({ provider: "google", token: "x" })).error,
    web3: (await client().supabase.auth.signInWithWeb3({ chain: "solana", message: "m", signature: new Uint8Array(64) })).error,
    linking: (await supabase.auth.linkIdentity({ provider: "github", options: { skipBrowserRedirect: true } })).error,
    mfa: (await supabase.auth.mfa.enroll({ factorType: "totp" })).error,
  };
  out.disabled = Object.fromEntries(Object.entries(disabled).map(([name, error]) => [name, { ...fail(error), message: error?.message }]));
  out.disabled.mfaWithoutSession = noSession;
}

// Rate limit (the server under test is started with a small per-account limit).
{
  const { supabase } = client();
  const address = email();
  await supabase.auth.signUp({ email: address, password: PASSWORD });
  let last = null;
  for (let attempt = 0; attempt < 5 && !last; attempt += 1) {
    const { error } = await supabase.auth.signInWithPassword({ email: address, password: "wrong!!!" });
    if (error?.status === 429) last = error;
  }
  out.rateLimit = fail(last);
}

console.log(JSON.stringify(out));
process.exit(0);
