// Development aid: warn (once) when page code calls the API with the global fetch instead of
// the client. That is how a page ends up sending cookies without `Authorization` and getting a
// 401. It reports and never blocks: the call still goes out, so the page behaves as in production.

export interface FetchGuardOptions {
  apiBaseUrl: string;
  warn?: (message: string) => void;
}

/** Wraps the global fetch; returns the function that puts the original back. */
export function installFetchGuard({
  apiBaseUrl,
  warn = (message) => console.warn(message),
}: FetchGuardOptions): () => void {
  const apiOrigin = new URL(apiBaseUrl).origin;
  const original = globalThis.fetch;
  let warned = false;

  globalThis.fetch = function guardedFetch(
    this: unknown,
    input: RequestInfo | URL,
    init?: RequestInit,
  ): Promise<Response> {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    const url = new URL(input instanceof Request ? input.url : String(input), base);
    if (url.origin === apiOrigin && !warned) {
      warned = true;
      warn(
        `[myideas] ${url.pathname} was called with the global fetch. Use the API client ` +
          "(createApiClient): it adds the Authorization header, refreshes expired tokens and " +
          "keeps CSRF right. Protected routes answer 401 to cookies without a bearer token.",
      );
    }
    return original.call(this, input, init);
  };
  return () => {
    globalThis.fetch = original;
  };
}
