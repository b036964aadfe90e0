// Typed errors: every failure the client reports is an ApiError with the server's
// {code, message, details}, so an app branches on `code`, never on message text.

export type ErrorDetails = Record<string, unknown>;

export interface ApiErrorInit {
  status: number;
  code: string;
  message: string;
  details?: ErrorDetails;
  retryable?: boolean;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetails;
  /** Worth trying again later: the network or the server failed, not the request. */
  readonly retryable: boolean;

  constructor({ status, code, message, details = {}, retryable = false }: ApiErrorInit) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryable = retryable;
  }
}

/** The guard's refusal: a protected call while signed out never leaves the page. */
export class NotAuthenticatedError extends ApiError {
  constructor(path: string) {
    super({
      status: 0,
      code: "not_authenticated",
      message: `Refusing to call ${path} without an access token: sign in (or await restoreSession()) first`,
    });
    this.name = "NotAuthenticatedError";
  }
}

/** The API could not be reached at all (no answer): nothing is known about the session. */
export class NetworkError extends ApiError {
  override readonly cause: unknown;

  constructor(cause: unknown) {
    super({ status: 0, code: "network_error", message: "The API could not be reached", retryable: true });
    this.name = "NetworkError";
    this.cause = cause;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: unknown = {};
  try {
    body = await response.json();
  } catch {
    // Not our JSON error body (a proxy's HTML page, say): keep the status, invent nothing.
  }
  const fields = isRecord(body) ? body : {};
  return new ApiError({
    status: response.status,
    code: typeof fields.code === "string" ? fields.code : `http_${response.status}`,
    message: typeof fields.message === "string" ? fields.message : response.statusText || "Request failed",
    details: isRecord(fields.details) ? fields.details : {},
    retryable: response.status >= 500,
  });
}
