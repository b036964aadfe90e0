// The demo's screens. Every call to the API goes through @myideas/client: `useAuth()` for the
// session, `useApi()` for the protected routes, `RequireAuth` around the signed-in view.

import { useCallback, useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";

import type { Item, MeUser } from "@myideas/client";
import { RequireAuth, useApi, useAuth, useSessionEvents } from "@myideas/client/react";

import { useListener } from "./listen";
import { Account, ConfirmEmail, ForgotPassword, ResetPassword, Sessions, takeLinkFromFragment } from "./lifecycle";
import type { LinkRoute } from "./lifecycle";
import { Button, useGuarded } from "./ui";

// Read once, at load: a mail's link opens the app on one of these.
const linkAtLoad = takeLinkFromFragment();

export function App(): ReactNode {
  const { status, error } = useAuth();
  const [link, setLink] = useState<LinkRoute | null>(linkAtLoad);
  const [signedOutNotice, setSignedOutNotice] = useState<string | null>(null);
  useSessionEvents((event) => {
    if (event.type === "signed-out") setSignedOutNotice("Signed out.");
  });
  const statusText =
    status === "loading"
      ? "Restoring your session…"
      : status === "signed-in"
        ? ""
        : error
          ? `Could not reach the API (${error.message}); your session is kept.`
          : (signedOutNotice ?? "Not signed in.");

  return (
    <>
      <header className="topbar">
        <h1>My Ideas</h1>
        <p className="tagline">A hybrid-token demo: access token in memory, refresh token in an HttpOnly cookie.</p>
      </header>
      <main>
        <p role="status" className="status">
          {statusText}
        </p>
        {link?.route === "reset-password" ? (
          <ResetPassword token={link.token} done={() => setLink(null)} />
        ) : link?.route === "confirm-email" ? (
          <ConfirmEmail token={link.token} done={() => setLink(null)} />
        ) : (
          <RequireAuth fallback={<AuthForm />}>
            <SignedIn />
          </RequireAuth>
        )}
        <SessionPanel />
      </main>
    </>
  );
}

function AuthForm(): ReactNode {
  const { signIn, signUp } = useAuth();
  const [error, guarded] = useGuarded();
  const form = useListener<HTMLFormElement, "submit">("submit", (event, element) => {
    event.preventDefault();
    const data = new FormData(element);
    const credentials = { email: String(data.get("email") ?? ""), password: String(data.get("password") ?? "") };
    const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
    void guarded(async () => {
      if (submitter?.value === "signup") {
        await signUp({ ...credentials, displayName: String(data.get("displayName") ?? "") || undefined });
      }
      await signIn(credentials);
      element.reset();
    });
  });

  return (
    <section className="card" aria-labelledby="auth-title">
      <h2 id="auth-title">Sign in or create an account</h2>
      <form ref={form} noValidate>
        <label htmlFor="email">Email</label>
        <input id="email" name="email" type="email" autoComplete="username" required />
        <label htmlFor="password">Password</label>
        <input id="password" name="password" type="password" autoComplete="current-password" minLength={8} required />
        <label htmlFor="display-name">
          Display name <span className="hint">(for sign-up, optional)</span>
        </label>
        <input id="display-name" name="displayName" type="text" autoComplete="nickname" maxLength={100} />
        <div className="actions">
          <button type="submit" name="action" value="signin">
            Sign in
          </button>
          <button type="submit" name="action" value="signup" className="secondary">
            Sign up
          </button>
        </div>
      </form>
      <p className="error" role="alert">
        {error}
      </p>
      <ForgotPassword />
    </section>
  );
}

function SignedIn(): ReactNode {
  const { user, signOut } = useAuth();
  const api = useApi();
  const [me, setMe] = useState<MeUser | null>(null);
  const [items, setItems] = useState<Item[]>([]);
  const [error, guarded] = useGuarded();
  const userId = user?.id;

  const reload = useCallback(async () => {
    setItems((await api.listItems()).items);
  }, [api]);

  useEffect(() => {
    let live = true;
    void guarded(async () => {
      const body = await api.me();
      if (!live) return;
      setMe(body.user);
      await reload();
    });
    return () => {
      live = false;
    };
  }, [api, guarded, reload, userId]);

  const addForm = useListener<HTMLFormElement, "submit">("submit", (event, element) => {
    event.preventDefault();
    const title = String(new FormData(element).get("title") ?? "");
    void guarded(async () => {
      await api.createItem({ title });
      element.reset();
      await reload();
    });
  });

  return (
    <section>
      <div className="card identity">
        <div>
          <p className="whoami">Signed in as {me?.email ?? user?.email}</p>
          <p className="muted">{me?.profile.displayName ? `Display name: ${me.profile.displayName}` : "No display name"}</p>
        </div>
        <Button className="secondary" action={() => void guarded(() => signOut())}>
          Sign out
        </Button>
      </div>

      <div className="card">
        <h2>Ideas</h2>
        <form ref={addForm} className="inline">
          <label htmlFor="new-title" className="visually-hidden">
            New idea
          </label>
          <input id="new-title" name="title" type="text" placeholder="A new idea…" maxLength={200} required />
          <button type="submit">Add idea</button>
        </form>
        <ul className="items" aria-label="Ideas">
          {items.map((item) => (
            <ItemRow key={item.id} item={item} guarded={guarded} reload={reload} />
          ))}
        </ul>
        <p className="error" role="alert">
          {error}
        </p>
      </div>
      <Account />
      <Sessions />
    </section>
  );
}

function ItemRow(props: {
  item: Item;
  guarded: (action: () => Promise<unknown>) => Promise<void>;
  reload: () => Promise<void>;
}): ReactNode {
  const { item, guarded, reload } = props;
  const api = useApi();
  const [editing, setEditing] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  if (editing) {
    return (
      <li>
        <input ref={input} defaultValue={item.title} aria-label={`New title for ${item.title}`} autoFocus />
        <Button
          className="link"
          label={`Save ${item.title}`}
          action={() =>
            void guarded(async () => {
              await api.updateItem(item.id, { title: input.current?.value ?? item.title });
              await reload();
              setEditing(false);
            })
          }
        >
          Save
        </Button>
      </li>
    );
  }
  return (
    <li>
      <span>{item.title}</span>
      <Button className="link" label={`Edit ${item.title}`} action={() => setEditing(true)}>
        Edit
      </Button>
      <Button
        className="link"
        label={`Delete ${item.title}`}
        action={() =>
          void guarded(async () => {
            await api.deleteItem(item.id);
            await reload();
          })
        }
      >
        Delete
      </Button>
    </li>
  );
}

function SessionPanel(): ReactNode {
  const { session } = useAuth();
  const [refreshes, setRefreshes] = useState(0);
  const [events, setEvents] = useState<{ id: number; text: string }[]>([]);
  const [now, setNow] = useState(() => Date.now());
  const nextId = useRef(0);

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);

  useSessionEvents((event) => {
    // Both are a POST /auth/refresh: the boot call after a load, and a refresh of an expired token.
    if (event.type === "signed-in" && /(refresh|restore)$/.test(event.reason)) setRefreshes((count) => count + 1);
    nextId.current += 1;
    const entry = { id: nextId.current, text: `${new Date().toLocaleTimeString()} ${event.type} (${event.reason})` };
    setEvents((previous) => [entry, ...previous]);
  });

  const seconds = session ? Math.round(session.expiresAt - now / 1000) : 0;
  const tokenState = !session ? "none" : seconds > 0 ? `expires in ${seconds} s` : "expired (refreshed on the next call)";
  return (
    <aside className="card session" aria-labelledby="session-title">
      <h2 id="session-title">Session</h2>
      <dl>
        <dt>Access token</dt>
        <dd>{tokenState}</dd>
        <dt>Refreshes</dt>
        <dd>{refreshes}</dd>
      </dl>
      <ol className="events" aria-label="Session events">
        {events.map((entry) => (
          <li key={entry.id}>{entry.text}</li>
        ))}
      </ol>
    </aside>
  );
}
