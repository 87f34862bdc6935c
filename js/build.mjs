// build.mjs: js/dist/ for `npm pack` (the prepack script). Plain node, no bundler.
//
// One source: the modules the Python package serves at <mount>/client.js and
// <mount>/use-admin-websocket.js (asgi_adminstats/static/) are copied byte for byte, so
// the npm package and the served files cannot drift apart. Added beside them: the
// `./react` entry (src/react.js, which imports React as a peer) and the hand-written
// declarations (types/*.d.ts), and the repository's LICENSE. It refuses to build when this package's version is not
// the Python package's (asgi_adminstats/__init__.py `__version__`).
//
// Usage: node build.mjs   (prints what it wrote; exit status 1 on a mismatch)

import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");
const STATIC = join(ROOT, "asgi_adminstats", "static");
const DIST = join(HERE, "dist");

/** [source, name in dist/]: the served modules first (their file names are kept). */
export const SOURCES = [
  [join(STATIC, "adminstats.js"), "adminstats.js"],
  [join(STATIC, "use-admin-websocket.js"), "use-admin-websocket.js"],
  [join(HERE, "src", "react.js"), "react.js"],
  ...readdirSync(join(HERE, "types"))
    .filter((name) => name.endsWith(".d.ts"))
    .sort()
    .map((name) => [join(HERE, "types", name), name]),
  [join(ROOT, "LICENSE"), "LICENSE"],
];

/** The Python package's version: `__version__ = "..."` in asgi_adminstats/__init__.py. */
export function pythonVersion() {
  const source = readFileSync(join(ROOT, "asgi_adminstats", "__init__.py"), "utf8");
  const match = source.match(/^__version__\s*=\s*["']([^"']+)["']/m);
  if (!match) throw new Error("no __version__ in asgi_adminstats/__init__.py");
  return match[1];
}

function main() {
  const { version } = JSON.parse(readFileSync(join(HERE, "package.json"), "utf8"));
  const expected = pythonVersion();
  if (version !== expected) {
    console.error(
      `js/package.json has version ${version}, the Python package ${expected}: ` +
        "release both together (set js/package.json's version).",
    );
    process.exit(1);
  }
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST);
  for (const [source, name] of SOURCES) {
    copyFileSync(source, join(DIST, name));
    console.log(`dist/${name} <- ${source.slice(ROOT.length + 1)}`);
  }
  console.log(`asgi-adminstats ${version}: ${SOURCES.length} files in js/dist`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
