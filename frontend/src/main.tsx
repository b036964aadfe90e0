// The demo SPA's entry: one client for the page, given to the React tree by the provider.
//
// The client stays in this module and the provider: nothing of it (no token, no `request`) is
// put on `window`, where any script in the page could use it.

import { createApiClient, installFetchGuard } from "@myideas/client";
import { AuthProvider } from "@myideas/client/react";
import { createRoot } from "react-dom/client";

import { App } from "./App";
import { API_BASE_URL, IS_DEVELOPMENT } from "./config";
import "./styles.css";

const client = createApiClient({ baseUrl: API_BASE_URL });
if (IS_DEVELOPMENT) installFetchGuard({ apiBaseUrl: API_BASE_URL });

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
createRoot(root).render(
  <AuthProvider client={client}>
    <App />
  </AuthProvider>,
);
