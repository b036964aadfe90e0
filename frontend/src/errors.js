// Typed errors: every failure the client reports is an ApiError with the server's
// {code, message, details}, so an app branches on `code`, never on message text.

export class ApiError extends Error {
  constructor({ status, code, message, details = {}, retryable = false }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    // Worth trying again later: the network or the server failed, not the request.
    this.retryable = retryable;
  }
}

// The guard's refusal: a protected call while signed out never leaves the page.
export class NotAuthenticatedError extends ApiError {
  constructor(path) {
    super({
      status: 0,
      code: "not_authenticated",
      message: `Refusing to call ${path} without an access token: sign in (or await restoreSession()) first`,
    });
    this.name = "NotAuthenticatedError";
  }
}

export class NetworkError extends ApiError {
  constructor(cause) {
    super({ status: 0, code: "network_error", message: "The API could not be reached", retryable: true });
    this.name = "NetworkError";
    this.cause = cause;
  }
}

export async function errorFromResponse(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not our JSON error body (a proxy's HTML page, say): keep the status, invent nothing.
  }
  return new ApiError({
    status: response.status,
    code: typeof body.code === "string" ? body.code : `http_${response.status}`,
    message: typeof body.message === "string" ? body.message : response.statusText || "Request failed",
    details: body.details && typeof body.details === "object" ? body.details : {},
    retryable: response.status >= 500,
  });
}
