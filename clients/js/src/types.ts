// The bodies of the routes, by name: aliases of the types generated from the app's OpenAPI
// document (openapi.ts, by `python -m backend.app.typesgen`).

import type { components } from "./openapi.js";

type Schemas = components["schemas"];

export type User = Schemas["UserOut"];
export type Me = Schemas["MeOut"];
export type MeUser = Schemas["MeUserOut"];
export type Item = Schemas["ItemOut"];
export type ItemList = Schemas["ItemList"];
export type ItemCreate = Schemas["ItemCreate"];
export type ItemUpdate = Schemas["ItemUpdate"];
export type SessionBody = Schemas["SessionOut"];
export type SignUpBody = Schemas["SignUpIn"];
export type SignUpResult = Schemas["SignUpOut"];
export type LiveSession = Schemas["LiveSessionOut"];
export type SessionList = Schemas["SessionListOut"];
export type LogoutScope = NonNullable<Schemas["LogoutIn"]["scope"]>;
export type Ok = Schemas["OkOut"];
export type ConfirmedUser = Schemas["ConfirmedOut"];
export type Health = Schemas["HealthOut"];
export type { components, paths } from "./openapi.js";
