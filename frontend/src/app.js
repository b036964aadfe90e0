// The demo SPA. It talks to the API through the client only.

import { createApiClient } from "./api-client.js";
import { API_BASE_URL, IS_DEVELOPMENT } from "./config.js";
import { installFetchGuard } from "./fetch-guard.js";

const client = createApiClient({ baseUrl: API_BASE_URL });
if (IS_DEVELOPMENT) installFetchGuard({ apiBaseUrl: API_BASE_URL });
// The client stays in this module: nothing of it (no token, no `request`) is put on `window`,
// where any script in the page could use it. Tests and devtools create their own client with
// `import("/src/api-client.js")`.

const $ = (id) => document.getElementById(id);
let refreshCount = 0;

// -- session panel ----------------------------------------------------------------------------

function logEvent(text) {
  const entry = document.createElement("li");
  entry.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("events").prepend(entry);
}

function renderTokenState() {
  const session = client.session;
  if (!session) {
    $("token-state").textContent = "none";
    return;
  }
  const seconds = Math.round(session.expiresAt - Date.now() / 1000);
  $("token-state").textContent =
    seconds > 0 ? `expires in ${seconds} s` : "expired (refreshed on the next call)";
}
setInterval(renderTokenState, 1000);

client.onSessionChange((event) => {
  // Both are a POST /auth/refresh: the boot call after a load, and a refresh of an expired token.
  if (event.type === "signed-in" && /(refresh|restore)$/.test(event.reason)) {
    refreshCount += 1;
    $("refresh-count").textContent = String(refreshCount);
  }
  logEvent(`${event.type} (${event.reason})`);
  renderTokenState();
  if (event.type === "signed-out") showSignedOut();
});

// -- views ------------------------------------------------------------------------------------

function showSignedOut(message = "Signed out.") {
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  $("status").textContent = message;
}

async function showSignedIn() {
  const { user } = await client.me();
  $("whoami").textContent = `Signed in as ${user.email}`;
  $("display-name-shown").textContent = user.profile.displayName
    ? `Display name: ${user.profile.displayName}`
    : "No display name";
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("status").textContent = "";
  await renderItems();
}

async function renderItems() {
  const { items } = await client.request("/items");
  $("items").replaceChildren(...items.map(itemRow));
}

function itemRow(item) {
  const row = document.createElement("li");
  const title = document.createElement("span");
  title.textContent = item.title;
  const edit = button("Edit", `Edit ${item.title}`, () => editItem(row, item));
  const remove = button("Delete", `Delete ${item.title}`, () =>
    guarded("items-error", async () => {
      await client.request(`/items/${item.id}`, { method: "DELETE" });
      await renderItems();
    }),
  );
  row.append(title, edit, remove);
  return row;
}

function editItem(row, item) {
  const input = document.createElement("input");
  input.value = item.title;
  input.setAttribute("aria-label", `New title for ${item.title}`);
  const save = button("Save", `Save ${item.title}`, () =>
    guarded("items-error", async () => {
      await client.request(`/items/${item.id}`, { method: "PATCH", body: { title: input.value } });
      await renderItems();
    }),
  );
  row.replaceChildren(input, save);
  input.focus();
}

function button(text, label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "link";
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

async function guarded(errorId, action) {
  $(errorId).textContent = "";
  try {
    await action();
  } catch (error) {
    $(errorId).textContent = error.message;
  }
}

// -- forms ------------------------------------------------------------------------------------

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const credentials = { email: form.get("email"), password: form.get("password") };
  guarded("auth-error", async () => {
    if (event.submitter?.value === "signup") {
      await client.signup({ ...credentials, displayName: form.get("displayName") || undefined });
    }
    await client.signin(credentials);
    event.target.reset();
    await showSignedIn();
  });
});

$("item-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const title = $("new-title").value;
  guarded("items-error", async () => {
    await client.request("/items", { method: "POST", body: { title } });
    $("new-title").value = "";
    await renderItems();
  });
});

$("signout").addEventListener("click", () => guarded("items-error", () => client.signout()));

// -- boot -------------------------------------------------------------------------------------

(async () => {
  try {
    const session = await client.restoreSession();
    if (session) await showSignedIn();
    else showSignedOut("Not signed in.");
  } catch (error) {
    showSignedOut(`Could not reach the API (${error.message}); your session is kept.`);
  }
})();
