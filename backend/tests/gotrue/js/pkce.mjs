// supabase-js with `flowType: 'pkce'` (what @supabase/ssr uses) against this app's GoTrue-compatible
// API on loopback, with autoconfirm off. Usage and the mail protocol are lifecycle.mjs's: the
// script prints {"mail": address, "count": n} and reads {link, token, code} back on stdin; the
// last line it prints is its observations (backend/tests/gotrue/test_supabase_js.py).
import readline from "node:readline";
import { createClient } from "@supabase/supabase-js";

const [url, anonKey, siteUrl] = process.argv.slice(2);
const PASSWORD = "correct horse battery staple";
const email = () => `js-${Math.random().toString(16).slice(2, 14)}@example.com`;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function mail(to, count = 1) {
  console.log(JSON.stringify({ mail: to, count }));
  const { value } = await lines.next();
  return JSON.parse(value);
}

const client = () =>
  createClient(url, anonKey, {
    auth: { flowType: "pkce", autoRefreshToken: false, persistSession: false, detectSessionInUrl: false },
  }).auth;
const fail = (error) => (error ? { name: error.name, status: error.status, code: error.code } : null);
// A browser following a mail's link: the redirect, not followed.
async function follow(link) {
  const opened = await fetch(link, { redirect: "manual" });
  const location = new URL(opened.headers.get("location"));
  return { status: opened.status, location, query: location.searchParams, hash: location.hash };
}
// What a replayed code gets: the client drops its verifier once it is used, so send one by hand.
async function exchangeByHand(authCode, codeVerifier) {
  const response = await fetch(`${url}/auth/v1/token?grant_type=pkce`, {
    method: "POST",
    headers: { apikey: anonKey, "content-type": "application/json", "x-supabase-api-version": "2024-01-01" },
    body: JSON.stringify({ auth_code: authCode, code_verifier: codeVerifier }),
  });
  const body = await response.json();
  return { status: response.status, code: body.code };
}
const out = {};

// Sign-up: the link's redirect carries ?code=, exchangeCodeForSession turns it into a session.
{
  const auth = client();
  const address = email();
  const up = await auth.signUp({ email: address, password: PASSWORD, options: { emailRedirectTo: siteUrl } });
  const { link, token } = await mail(address);
  const opened = await follow(link);
  const exchanged = await auth.exchangeCodeForSession(opened.query.get("code"));
  const user = await auth.getUser();
  const replay = await exchangeByHand(opened.query.get("code"), "v".repeat(43));
  const again = await follow(link);
  out.signUp = {
    error: fail(up.error) ?? fail(exchanged.error) ?? fail(user.error),
    session: Boolean(up.data.session),
    prefixed: token.startsWith("pkce_"),
    status: opened.status,
    landsOnSite: opened.location.href.startsWith(siteUrl),
    sessionInUrl: opened.hash.includes("access_token"),
    exchanged: Boolean(exchanged.data.session),
    confirmed: Boolean(user.data.user?.email_confirmed_at),
    replay,
    // A used PKCE link: the error in the query too, where a server-side callback reads it.
    usedLink: again.query.get("error_code"),
  };
}

// resetPasswordForEmail: the code's session is a recovery, then updateUser sets the password.
{
  const auth = client();
  const address = email();
  await auth.signUp({ email: address, password: PASSWORD });
  await auth.verifyOtp({ type: "email", email: address, token: (await mail(address)).code });
  const events = [];
  auth.onAuthStateChange((event) => events.push(event));
  const asked = await auth.resetPasswordForEmail(address, { redirectTo: siteUrl });
  const { link } = await mail(address, 2);
  const opened = await follow(link);
  const exchanged = await auth.exchangeCodeForSession(opened.query.get("code"));
  const updated = await auth.updateUser({ password: "a brand new passphrase" });
  const signedIn = await client().signInWithPassword({ email: address, password: "a brand new passphrase" });
  out.recovery = {
    error: fail(asked.error) ?? fail(exchanged.error) ?? fail(updated.error) ?? fail(signedIn.error),
    type: new URL(link).searchParams.get("type"),
    redirectType: exchanged.data.redirectType,
    passwordRecovery: events.includes("PASSWORD_RECOVERY"),
    session: Boolean(signedIn.data.session),
  };
}

// signInWithOtp: the magic link's code signs a confirmed user in.
{
  const address = email();
  const first = client();
  await first.signUp({ email: address, password: PASSWORD });
  await first.verifyOtp({ type: "email", email: address, token: (await mail(address)).code });
  const auth = client();
  const sent = await auth.signInWithOtp({ email: address });
  const { link } = await mail(address, 2);
  const opened = await follow(link);
  const exchanged = await auth.exchangeCodeForSession(opened.query.get("code"));
  out.otp = {
    error: fail(sent.error) ?? fail(exchanged.error),
    type: new URL(link).searchParams.get("type"),
    email: exchanged.data.user?.email === address,
  };
}

// Another client's code: its verifier is not this one's.
{
  const address = email();
  const owner = client();
  await owner.signUp({ email: address, password: PASSWORD });
  const { link } = await mail(address);
  const opened = await follow(link);
  const stranger = client();
  await stranger.signUp({ email: email(), password: PASSWORD }); // leaves a verifier of its own
  const stolen = await stranger.exchangeCodeForSession(opened.query.get("code"));
  out.stolenCode = fail(stolen.error);
}

console.log(JSON.stringify(out));
process.exit(0);
