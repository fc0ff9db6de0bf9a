/**
 * The tree is the map: every source file sits in a layer folder, imports only from its own layer
 * or those below it, is part of no import cycle, and stays under 450 lines. The order is the one
 * docs/development.md states.
 */

import assert from "node:assert/strict";

/** Lowest first: each layer may import from itself and the layers before it. */
const LAYERS = [
  "lib",
  "core",
  "api",
  "observe",
  "http",
  "aws",
  "kube",
  "store",
  "trust",
  "auth",
  "grants",
  "routes",
  "server",
] as const;

/** The other modes: each may import from itself and from these layers only. */
const MODES: Record<string, readonly string[]> = {
  sidecar: ["lib", "core", "api"],
  admin: ["lib", "core", "api"],
};

const MAX_LINES = 450;
const SRC = new URL("../src/", import.meta.url);

async function sources(dir: URL, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) found.push(...await sources(new URL(`${entry.name}/`, dir), `${path}/`));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found.sort();
}

const isTest = (path: string) => /_(test|bench)\.ts$/.test(path);
const layerOf = (path: string) => path.split("/")[0];

/** The files of src/ a file imports (static, dynamic and type imports alike). */
function importsOf(path: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+\.ts)"/g)) {
    const url = new URL(m[1], new URL(path, SRC));
    found.push(url.href.slice(SRC.href.length));
  }
  return found;
}

/** May a file of layer `from` import one of layer `to`? */
function allowed(from: string, to: string): boolean {
  if (from === to) return true;
  if (from in MODES) return MODES[from].includes(to);
  const a = LAYERS.indexOf(from as typeof LAYERS[number]);
  const b = LAYERS.indexOf(to as typeof LAYERS[number]);
  return a >= 0 && b >= 0 && b < a;
}

/** Every cycle's first file, found by depth-first search over the import graph. */
export function cyclesIn(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const cycles: string[][] = [];
  const visit = (node: string, stack: string[]) => {
    if (state.get(node) === "done") return;
    if (state.get(node) === "open") {
      cycles.push([...stack.slice(stack.indexOf(node)), node]);
      return;
    }
    state.set(node, "open");
    for (const next of graph.get(node) ?? []) visit(next, [...stack, node]);
    state.set(node, "done");
  };
  for (const node of graph.keys()) visit(node, []);
  return cycles;
}

const files = await sources(SRC);
const texts = new Map(
  await Promise.all(
    files.map(async (f) => [f, await Deno.readTextFile(new URL(f, SRC))] as const),
  ),
);

Deno.test("no source file sits loose in src/, and every folder is a known layer or mode", () => {
  assert.deepEqual(files.filter((f) => !f.includes("/")), []);
  const folders = new Set(files.map(layerOf));
  const known = new Set<string>([...LAYERS, ...Object.keys(MODES)]);
  assert.deepEqual([...folders].filter((f) => !known.has(f)), []);
});

Deno.test("imports run only downwards: a layer never imports one above it", () => {
  const upward = files.filter((f) => !isTest(f)).flatMap((f) =>
    importsOf(f, texts.get(f)!).filter((to) => !allowed(layerOf(f), layerOf(to))).map((to) =>
      `${f} -> ${to}`
    )
  );
  assert.deepEqual(upward, []);
});

Deno.test("there is no import cycle among the source files", () => {
  const graph = new Map(
    files.filter((f) => !isTest(f)).map((f) => [f, importsOf(f, texts.get(f)!)] as const),
  );
  assert.deepEqual(cyclesIn(graph), []);
});

Deno.test("the cycle finder finds a cycle", () => {
  assert.deepEqual(cyclesIn(new Map([["a", ["b"]], ["b", ["a"]], ["c", ["a"]]])), [[
    "a",
    "b",
    "a",
  ]]);
});

Deno.test(`no source file outside tests is over ${MAX_LINES} lines`, () => {
  const long = files.filter((f) => !isTest(f)).map((f) =>
    [f, texts.get(f)!.split("\n").length] as const
  )
    .filter(([, lines]) => lines > MAX_LINES).map(([f, lines]) => `${f}: ${lines}`);
  assert.deepEqual(long, []);
});
