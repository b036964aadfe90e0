// The account-lifecycle screens (docs/account-lifecycle.md), all through @myideas/client: forgot password,
// reset and confirm-email from a mail's link (`#reset-password?token=…`, `#confirm-email?token=…`),
// change password, change email, and the sessions panel.

import { useCallback, useEffect, useState } from "react";
import type { ReactNode } from "react";

import type { LiveSession } from "@myideas/client";
import { useApi, useAuth } from "@myideas/client/react";

import { Button, useGuarded } from "./ui";
import { useListener } from "./listen";

export type LinkRoute = { route: "reset-password" | "confirm-email"; token: string };

/** The mail link's route and token, read once from the fragment (then removed from the URL). */
export function takeLinkFromFragment(): LinkRoute | null {
  const match = /^#(reset-password|confirm-email)\?(.*)$/.exec(location.hash);
  if (!match) return null;
  const token = new URLSearchParams(match[2]).get("token");
  // The token must not stay in the address bar or the history once it is read.
  history.replaceState(null, "", location.pathname + location.search);
  return token ? { route: match[1] as LinkRoute["route"], token } : null;
}

function useFormSubmit(handler: (data: FormData, form: HTMLFormElement) => void) {
  return useListener<HTMLFormElement, "submit">("submit", (event, form) => {
    event.preventDefault();
    handler(new FormData(form), form);
  });
}

const field = (data: FormData, name: string): string => String(data.get(name) ?? "");

export function ForgotPassword(): ReactNode {
  const { forgotPassword } = useAuth();
  const [open, setOpen] = useState(false);
  const [sent, setSent] = useState("");
  const [error, guarded] = useGuarded();
  const form = useFormSubmit((data) => {
    void guarded(async () => {
      await forgotPassword({ email: field(data, "email") });
      setSent("If that address has an account, a link to reset its password is on its way.");
    });
  });
  if (!open) {
    return (
      <Button className="link" action={() => setOpen(true)}>
        Forgot password?
      </Button>
    );
  }
  return (
    <form ref={form} aria-label="Reset password by mail">
      <label htmlFor="forgot-email">Address for the reset link</label>
      <input id="forgot-email" name="email" type="email" autoComplete="username" required />
      <button type="submit">Send reset link</button>
      <p role="status">{sent}</p>
      <p className="error" role="alert">
        {error}
      </p>
    </form>
  );
}

export function ResetPassword(props: { token: string; done: () => void }): ReactNode {
  const { resetPassword } = useAuth();
  const [error, guarded] = useGuarded();
  const form = useFormSubmit((data) => {
    void guarded(async () => {
      await resetPassword({ token: props.token, password: field(data, "password") });
      props.done();
    });
  });
  return (
    <section className="card" aria-labelledby="reset-title">
      <h2 id="reset-title">Choose a new password</h2>
      <form ref={form} aria-label="Choose a new password">
        <label htmlFor="reset-password">New password</label>
        <input id="reset-password" name="password" type="password" autoComplete="new-password" required />
        <button type="submit">Set password</button>
      </form>
      <p className="error" role="alert">
        {error}
      </p>
    </section>
  );
}

export function ConfirmEmail(props: { token: string; done: () => void }): ReactNode {
  const { verifyEmail } = useAuth();
  const [confirmed, setConfirmed] = useState("");
  const [error, guarded] = useGuarded();
  const { token } = props;
  useEffect(() => {
    void guarded(async () => {
      const { user } = await verifyEmail({ token });
      setConfirmed(`Email confirmed: ${user.email}`);
    });
  }, [guarded, token, verifyEmail]);
  return (
    <section className="card" aria-labelledby="confirm-title">
      <h2 id="confirm-title">Email confirmation</h2>
      <p role="status">{confirmed || (error ? "" : "Confirming…")}</p>
      <p className="error" role="alert">
        {error}
      </p>
      <Button className="secondary" action={props.done}>
        Continue
      </Button>
    </section>
  );
}

export function Account(): ReactNode {
  const { changePassword, changeEmail } = useAuth();
  const [notice, setNotice] = useState("");
  const [error, guarded] = useGuarded();
  const passwordForm = useFormSubmit((data, form) => {
    void guarded(async () => {
      await changePassword({ currentPassword: field(data, "current"), newPassword: field(data, "new") });
      form.reset();
      setNotice("Password changed. Your other sessions are signed out.");
    });
  });
  const emailForm = useFormSubmit((data, form) => {
    const newEmail = field(data, "newEmail");
    void guarded(async () => {
      await changeEmail({ newEmail, currentPassword: field(data, "current") });
      form.reset();
      setNotice(`Check ${newEmail} for a link to confirm the change.`);
    });
  });
  return (
    <div className="card">
      <h2>Account</h2>
      <form ref={passwordForm} aria-label="Change password">
        <label htmlFor="pw-current">Current password</label>
        <input id="pw-current" name="current" type="password" autoComplete="current-password" required />
        <label htmlFor="pw-new">New password</label>
        <input id="pw-new" name="new" type="password" autoComplete="new-password" required />
        <button type="submit">Change password</button>
      </form>
      <form ref={emailForm} aria-label="Change email">
        <label htmlFor="email-new">New address</label>
        <input id="email-new" name="newEmail" type="email" required />
        <label htmlFor="email-current">Current password</label>
        <input id="email-current" name="current" type="password" autoComplete="current-password" required />
        <button type="submit">Change email</button>
      </form>
      <p role="status">{notice}</p>
      <p className="error" role="alert">
        {error}
      </p>
    </div>
  );
}

export function Sessions(): ReactNode {
  const { signOut } = useAuth();
  const api = useApi();
  const [sessions, setSessions] = useState<LiveSession[]>([]);
  const [error, guarded] = useGuarded();
  const reload = useCallback(async () => {
    setSessions((await api.listSessions()).sessions);
  }, [api]);
  useEffect(() => {
    void guarded(reload);
  }, [guarded, reload]);

  return (
    <div className="card">
      <h2>Sessions</h2>
      <ul aria-label="Sessions">
        {sessions.map((session) => (
          <li key={session.id}>
            {session.current ? "This device" : "Another device"} · {session.userAgent ?? "unknown browser"} · since{" "}
            {new Date(session.createdAt).toLocaleString()}
          </li>
        ))}
      </ul>
      <Button
        className="secondary"
        action={() =>
          void guarded(async () => {
            await signOut({ scope: "others" });
            await reload();
          })
        }
      >
        End other sessions
      </Button>
      <p className="error" role="alert">
        {error}
      </p>
    </div>
  );
}
