// supabase-js's lifecycle calls against this app's GoTrue-compatible API on loopback, with
// autoconfirm off. Usage: node --experimental-websocket lifecycle.mjs <url> <anon key> <site url>
// The mails are caught by a real SMTP server in the Python test: this script asks for one by
// printing {"mail": address, "count": n} and reads {link, token, code} back on stdin. The last
// line it prints is its observations; backend/tests/gotrue/test_supabase_js.py asserts on them.
import readline from "node:readline";
import { createClient } from "@supabase/supabase-js";

const [url, anonKey, siteUrl, serviceKey] = process.argv.slice(2);
const PASSWORD = "correct horse battery staple";
const email = () => `js-${Math.random().toString(16).slice(2, 14)}@example.com`;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function mail(to, count = 1) {
  console.log(JSON.stringify({ mail: to, count }));
  const { value } = await lines.next();
  return JSON.parse(value);
}

const client = (key = anonKey) =>
  createClient(url, key, {
    auth: { autoRefreshToken: false, persistSession: false, detectSessionInUrl: false },
  }).auth;
const fail = (error) => (error ? { name: error.name, status: error.status, code: error.code } : null);
const out = {};

// Sign-up mails a link; the browser follows it and lands on the site with a session.
{
  const auth = client();
  const address = email();
  const up = await auth.signUp({ email: address, password: PASSWORD });
  const early = await auth.signInWithPassword({ email: address, password: PASSWORD });
  const { link } = await mail(address);
  const opened = await fetch(link, { redirect: "manual" });
  const location = opened.headers.get("location");
  const values = new URLSearchParams(new URL(location).hash.slice(1));
  const restored = await auth.setSession({
    access_token: values.get("access_token"),
    refresh_token: values.get("refresh_token"),
  });
  const user = await auth.getUser();
  out.signUpLink = {
    error: fail(up.error),
    session: Boolean(up.data.session),
    early: fail(early.error),
    status: opened.status,
    landsOnSite: location.startsWith(siteUrl),
    restored: fail(restored.error),
    confirmed: Boolean(user.data.user?.email_confirmed_at),
  };
}

// verifyOtp with the link's token_hash; a replay is refused.
{
  const auth = client();
  const address = email();
  await auth.signUp({ email: address, password: PASSWORD });
  const { token } = await mail(address);
  const verified = await auth.verifyOtp({ type: "signup", token_hash: token });
  const replay = await client().verifyOtp({ type: "signup", token_hash: token });
  out.verifyTokenHash = {
    error: fail(verified.error),
    session: Boolean(verified.data.session),
    email: verified.data.user?.email === address,
    replay: fail(replay.error),
  };
}

// resend, then the code of the new mail.
{
  const auth = client();
  const address = email();
  await auth.signUp({ email: address, password: PASSWORD });
  await mail(address);
  const resent = await auth.resend({ type: "signup", email: address });
  const { code } = await mail(address, 2);
  const verified = await auth.verifyOtp({ type: "email", email: address, token: code });
  out.resend = { error: fail(resent.error) ?? fail(verified.error), session: Boolean(verified.data.session) };
}

// Password recovery: the mail's code signs in, then updateUser sets the new password.
{
  const auth = client();
  const address = email();
  await auth.signUp({ email: address, password: PASSWORD });
  const { code } = await mail(address);
  await auth.verifyOtp({ type: "email", email: address, token: code });
  const asked = await auth.resetPasswordForEmail(address, { redirectTo: siteUrl });
  const unknown = await auth.resetPasswordForEmail(email());
  const recovery = await mail(address, 2);
  const verified = await auth.verifyOtp({ type: "recovery", email: address, token: recovery.code });
  const updated = await auth.updateUser({ password: "a brand new passphrase" });
  const signedIn = await client().signInWithPassword({ email: address, password: "a brand new passphrase" });
  out.recovery = {
    error: fail(asked.error) ?? fail(unknown.error) ?? fail(verified.error) ?? fail(updated.error) ?? fail(signedIn.error),
    sameAnswer: JSON.stringify(asked.data) === JSON.stringify(unknown.data),
    session: Boolean(signedIn.data.session),
  };
}

// signInWithOtp: the magic link's code signs a confirmed user in; shouldCreateUser false
// for an unknown address is GoTrue's otp_disabled.
{
  const auth = client();
  const address = email();
  await auth.signUp({ email: address, password: PASSWORD });
  await auth.verifyOtp({ type: "email", email: address, token: (await mail(address)).code });
  const sent = await client().signInWithOtp({ email: address });
  const { code, link } = await mail(address, 2);
  const verified = await client().verifyOtp({ type: "email", email: address, token: code });
  const refused = await client().signInWithOtp({ email: email(), options: { shouldCreateUser: false } });
  out.otp = {
    error: fail(sent.error) ?? fail(verified.error),
    magicLink: new URL(link).searchParams.get("type"),
    session: Boolean(verified.data.session),
    refused: fail(refused.error),
  };
}

// reauthenticate mails the nonce; updateUser takes it with the new password.
{
  const auth = client();
  const address = email();
  await auth.signUp({ email: address, password: PASSWORD });
  await auth.verifyOtp({ type: "email", email: address, token: (await mail(address)).code });
  const asked = await auth.reauthenticate();
  const { code } = await mail(address, 2);
  const updated = await auth.updateUser({ password: "another new passphrase", nonce: code });
  out.reauthenticate = { error: fail(asked.error) ?? fail(updated.error), updated: Boolean(updated.data.user) };
}

// updateUser({email}), GoTrue's secure email change (on by default): a link to each address;
// resend type email_change mails both again; the first verifyOtp is accepted with no user and
// no session, a replay of it is refused, the second applies the change with a session.
{
  const auth = client();
  const address = email();
  const renamed = email();
  await auth.signUp({ email: address, password: PASSWORD });
  await auth.verifyOtp({ type: "email", email: address, token: (await mail(address)).code });
  const asked = await auth.updateUser({ email: renamed });
  await mail(renamed);
  const resent = await auth.resend({ type: "email_change", email: address });
  const toNew = await mail(renamed, 2);
  const toCurrent = await mail(address, 3); // the confirmation, then one per change mail
  const first = await client().verifyOtp({ type: "email_change", token_hash: toCurrent.token });
  const replay = await client().verifyOtp({ type: "email_change", token_hash: toCurrent.token });
  const second = await client().verifyOtp({ type: "email_change", token_hash: toNew.token });
  out.emailChange = {
    error: fail(asked.error) ?? fail(resent.error) ?? fail(first.error) ?? fail(second.error),
    pending: asked.data.user?.new_email === renamed,
    twoTokens: Boolean(toCurrent.token) && toCurrent.token !== toNew.token,
    first: { user: first.data.user, session: first.data.session },
    replay: fail(replay.error),
    applied: second.data.user?.email === renamed,
    session: Boolean(second.data.session?.access_token),
  };
}

// The admin: inviteUserByEmail (its mail's link signs the invitee in), generateLink (no mail).
{
  const admin = client(serviceKey).admin;
  const address = email();
  const invited = await admin.inviteUserByEmail(address, { data: { team: "blue" } });
  const { link } = await mail(address);
  const opened = await fetch(link, { redirect: "manual" });
  const values = new URLSearchParams(new URL(opened.headers.get("location")).hash.slice(1));
  const again = await admin.inviteUserByEmail(address);
  const generated = await admin.generateLink({ type: "recovery", email: address });
  const verified = await client().verifyOtp({ type: "recovery", token_hash: generated.data.properties?.hashed_token });
  out.admin = {
    error: fail(invited.error) ?? fail(generated.error) ?? fail(verified.error),
    invitedAt: Boolean(invited.data.user?.invited_at),
    type: values.get("type"),
    session: Boolean(values.get("access_token")),
    again: fail(again.error),
    verificationType: generated.data.properties?.verification_type,
    verified: Boolean(verified.data.session),
  };
}

// Typed errors.
{
  const auth = client();
  const address = email();
  out.errors = {
    otp_expired: fail((await auth.verifyOtp({ type: "recovery", token_hash: "x".repeat(43) })).error),
    otp_expired_code: fail((await auth.verifyOtp({ type: "email", email: address, token: "000000" })).error),
  };
  let limited = null;
  for (let i = 0; i < 5 && !limited; i++) {
    limited = (await auth.resetPasswordForEmail(address)).error;
  }
  out.errors.over_email_send_rate_limit = fail(limited);
}

console.log(JSON.stringify(out));
process.exit(0);
