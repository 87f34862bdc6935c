// asgi-adminstats/react: the hook over the `react` your bundler resolves (a peer
// dependency), so an app needs no factory call:
//
//   import { useAdminWebSocket } from "asgi-adminstats/react";
//
// Everything else is the plain client and the factory, re-exported.

import * as React from "react";

import { createUseAdminWebSocket } from "./use-admin-websocket.js";

export const useAdminWebSocket = createUseAdminWebSocket(React);
export default useAdminWebSocket;

export { createUseAdminWebSocket } from "./use-admin-websocket.js";
export * from "./adminstats.js";
