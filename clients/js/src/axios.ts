// Axios support: the same token, guard and single shared refresh as the client's own request().
//
//   import axios from "axios";
//   import { attachApiClient } from "@myideas/client/axios";
//   const http = attachApiClient(axios.create({ baseURL }), client);
//   const { data } = await http.get("/items");
//
// Types only come from axios: this module imports nothing of it at run time.

import type { AxiosError, AxiosInstance, InternalAxiosRequestConfig } from "axios";

import type { ApiClient } from "./client.js";

const RETRIED = Symbol("myideas-retried");
type RetriableConfig = InternalAxiosRequestConfig & { [RETRIED]?: boolean };

export type AxiosTokenSource = Pick<ApiClient, "getAccessToken" | "handleUnauthorized" | "endSession">;

export function attachApiClient<T extends AxiosInstance>(axiosInstance: T, client: AxiosTokenSource): T {
  axiosInstance.interceptors.request.use(async (config) => {
    // Throws NotAuthenticatedError while signed out: the request never leaves the page.
    const token = await client.getAccessToken(config.url);
    config.headers.set("Authorization", `Bearer ${token}`);
    config.withCredentials = false; // protected routes take the bearer header, never cookies
    return config;
  });

  axiosInstance.interceptors.response.use(undefined, async (error: AxiosError) => {
    const config = error.config as RetriableConfig | undefined;
    if (error.response?.status !== 401 || !config) throw error;
    if (config[RETRIED]) {
      client.endSession("unauthorized"); // a fresh token was refused too: the session is over
      throw error;
    }
    config[RETRIED] = true;
    const failedToken = String(config.headers.get("Authorization") ?? "").replace(/^Bearer /, "");
    await client.handleUnauthorized(failedToken);
    return axiosInstance.request(config);
  });
  return axiosInstance;
}
