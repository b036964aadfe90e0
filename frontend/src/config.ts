// The one place that says where the API is. Nothing else in the frontend names its URL.
//
// Default: http://localhost:8000 (the API of `make run`). A page may be opened with
// `?api=http://127.0.0.1:PORT` to point it at another API: the browser tests use this to run
// the SPA against a server on a random port.

const DEFAULT_API_BASE_URL = "http://localhost:8000";

function fromQuery(): string | null {
  if (typeof location === "undefined") return null;
  return new URLSearchParams(location.search).get("api");
}

export const API_BASE_URL = (fromQuery() ?? DEFAULT_API_BASE_URL).replace(/\/+$/, "");

// Development is a page served from this machine; it turns on the raw-fetch warning.
export const IS_DEVELOPMENT =
  typeof location !== "undefined" && ["localhost", "127.0.0.1"].includes(location.hostname);
