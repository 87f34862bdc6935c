import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies /admin (the adminstats mount and the dev login) to a local server,
// e.g. `ADMINSTATS_ALLOWED_ORIGINS=http://localhost:5173 python -m sample_app --dev`: the
// browser's WebSocket carries this page's Origin, which the server must allow.
// ADMINSTATS_SERVER points the proxy elsewhere (`vite preview` uses it too).
const target = process.env.ADMINSTATS_SERVER ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: { "/admin": { target, ws: true } },
  },
});
