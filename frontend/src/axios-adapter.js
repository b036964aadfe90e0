// Axios support: the same token, guard and single shared refresh as the client's own request().
//
//   import axios from "axios";
//   const http = attachApiClient(axios.create({ baseURL: API_BASE_URL }), client);
//   const { data } = await http.get("/items");

const RETRIED = Symbol("myideas-retried");

export function attachApiClient(axiosInstance, client) {
  axiosInstance.interceptors.request.use(async (config) => {
    // Throws NotAuthenticatedError while signed out: the request never leaves the page.
    const token = await client.getAccessToken(config.url);
    config.headers.set("Authorization", `Bearer ${token}`);
    config.withCredentials = false; // protected routes take the bearer header, never cookies
    return config;
  });

  axiosInstance.interceptors.response.use(undefined, async (error) => {
    const config = error.config;
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
