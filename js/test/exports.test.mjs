// The hand-written declarations name exactly what the built modules export (a new export
// in asgi_adminstats/static/*.js without a declaration fails here), and the package's
// `exports` map resolves: `node --test test/` in js/ after `node build.mjs`.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const dist = (name) => readFileSync(new URL(`../dist/${name}`, import.meta.url), "utf8");

/** Value exports a .d.ts declares: `export declare const|function|class NAME`, `export {
 * a, b } from` (not `export type`), `export default`, and `export * from "./x.js"`. */
function declared(file) {
  const text = dist(file);
  const names = new Set();
  for (const [, name] of text.matchAll(/^export declare (?:const|function|class) (\w+)/gm)) names.add(name);
  for (const [, list] of text.matchAll(/^export \{([^}]*)\} from/gm)) {
    for (const name of list.split(",")) if (name.trim()) names.add(name.trim());
  }
  if (/^export default /m.test(text)) names.add("default");
  for (const [, from] of text.matchAll(/^export \* from "\.\/([\w-]+)\.js";/gm)) {
    for (const name of declared(`${from}.d.ts`)) if (name !== "default") names.add(name);
  }
  return names;
}

for (const [specifier, types] of [
  ["asgi-adminstats", "adminstats.d.ts"],
  ["asgi-adminstats/use-admin-websocket", "use-admin-websocket.d.ts"],
  ["asgi-adminstats/react", "react.d.ts"],
]) {
  test(`${specifier}: its exports are the ones ${types} declares`, async () => {
    const module = await import(specifier);
    assert.deepEqual(Object.keys(module).sort(), [...declared(types)].sort());
  });
}

test("the client works without React installed: its module imports nothing", () => {
  assert.doesNotMatch(dist("adminstats.js"), /^import /m);
  assert.deepEqual(
    [...dist("use-admin-websocket.js").matchAll(/^import .* from "(.*)";/gm)].map((m) => m[1]),
    ["./adminstats.js"],
  );
});
