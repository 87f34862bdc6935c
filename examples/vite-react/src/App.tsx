import { useAdminWebSocket, type AuditAction } from "asgi-adminstats/react";

// The token: from your sign-in flow. Here the sample app's development login
// (python -m sample_app --dev): never in production.
async function freshToken(): Promise<string> {
  const response = await fetch("/admin/api/dev-login", { method: "POST" });
  if (!response.ok) throw new Error(`dev login: HTTP ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

function Action({ action }: { action: AuditAction }) {
  return (
    <li>
      {action.timestamp} {action.admin}: {action.action} {action.targetType}
    </li>
  );
}

export function App() {
  const { status, isConnected, stats, notifications, connectionError, refusal, reconnect } =
    useAdminWebSocket({ url: "/admin/ws", getToken: freshToken, deltas: true });

  return (
    <main>
      <h1>Admin stats</h1>
      <p>
        {isConnected ? "Live" : status}
        {status === "error" && <button onClick={reconnect}>Retry</button>}
      </p>
      {refusal && <p role="alert">{refusal.hint}</p>}
      {connectionError && <p role="alert">{connectionError.reason}</p>}
      <dl>
        <dt>Users online</dt>
        <dd>{stats?.online?.users ?? "–"}</dd>
        <dt>Players (24 h)</dt>
        <dd>{stats?.online?.players ?? "–"}</dd>
        <dt>Database</dt>
        <dd>{stats?.system?.database?.status ?? "–"}</dd>
      </dl>
      <ul>
        {notifications.map((action) => (
          <Action key={action.id} action={action} />
        ))}
      </ul>
    </main>
  );
}
