// @myideas/client: the browser client of the My Ideas API. The React binding is
// `@myideas/client/react`, the axios adapter `@myideas/client/axios`.

export { createApiClient } from "./client.js";
export type {
  ApiClient,
  ApiClientOptions,
  ChannelConstructor,
  ChannelLike,
  Credentials,
  FetchLike,
  HttpMethod,
  LockManagerLike,
  PublicSession,
  RequestOptions,
  SessionEvent,
  SessionEventType,
  SignUpInput,
  TabNotice,
} from "./client.js";
export { ApiError, NetworkError, NotAuthenticatedError, errorFromResponse } from "./errors.js";
export type { ApiErrorInit, ErrorDetails } from "./errors.js";
export { installFetchGuard } from "./fetch-guard.js";
export type { FetchGuardOptions } from "./fetch-guard.js";
export type * from "./types.js";
