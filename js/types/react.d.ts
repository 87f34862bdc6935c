// Declarations for asgi-adminstats/react (js/src/react.js): the hook over the `react`
// peer dependency, the factory, and the whole client, re-exported.

import type { AdminWebSocketState, UseAdminWebSocketOptions } from "./use-admin-websocket.js";
import type { StatsSnapshot } from "./adminstats.js";

export type {
  AdminWebSocketState,
  CreateUseAdminWebSocketOptions,
  HookClientOptions,
  ReactHooks,
  UseAdminWebSocket,
  UseAdminWebSocketOptions,
} from "./use-admin-websocket.js";
export { createUseAdminWebSocket } from "./use-admin-websocket.js";
export * from "./adminstats.js";

/** The hook, over the app's own React. */
export declare function useAdminWebSocket<TStats = StatsSnapshot>(
  options?: UseAdminWebSocketOptions<TStats>,
): AdminWebSocketState<TStats>;

export default useAdminWebSocket;
