/**
 * The generated reference (scripts/reference.ts): each committed page of docs/reference/ is what
 * the program's declarations render today, and the settings page lays out a table as documented.
 */
import assert from "node:assert/strict";
import { PAGES, settingsReference } from "../scripts/reference.ts";
import { read, setting } from "../src/lib/settings.ts";

const ROOT = new URL("../", import.meta.url);

for (const page of PAGES) {
  Deno.test(`${page.path} is what \`deno task reference\` writes from the code`, async () => {
    const generated = await page.render();
    let committed: string | undefined;
    try {
      committed = await Deno.readTextFile(new URL(page.path, ROOT));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (committed === generated) return;
    const was = committed?.split("\n") ?? [];
    const now = generated.split("\n");
    const line = now.findIndex((l, i) => l !== was[i]);
    assert.fail(
      committed === undefined
        ? `${page.path} is missing: run \`deno task reference\` and commit it`
        : `${page.path} is out of date: run \`deno task reference\` and commit the result. ` +
          `First difference, line ${line + 1}:\n  committed: ${
            JSON.stringify(was[line] ?? null)
          }\n  generated: ${JSON.stringify(now[line] ?? null)}`,
    );
  });
}

Deno.test("settingsReference: a table per mode with flag, variables, default or required, description", () => {
  const table = {
    name: setting({
      flag: "name",
      env: ["X_NAME", "Y_NAME"],
      help: "A name like <user>|<org>.",
      schema: read.string,
    }),
    dry: setting({
      flag: "dry",
      env: [],
      default: "false",
      help: "Change *nothing*.",
      schema: read.boolean,
      boolean: true,
    }),
    host: setting({
      flag: "host",
      env: ["X_HOST"],
      default: "",
      help: "Host.",
      schema: read.string,
    }),
  };
  const page = settingsReference({
    server: table,
    sidecar: {},
    admin: {
      flags: [{ name: "output", short: "o", value: "FORMAT", help: "table" }],
      authentication: "",
    },
  });
  const lines = page.split("\n");
  const at = lines.indexOf("## `irsa server`");
  assert.ok(at > 0, page);
  assert.deepEqual(lines.slice(at + 9, at + 14), [
    "| Flag                  | Environment variables | Default  | Description                  |",
    "| --------------------- | --------------------- | -------- | ---------------------------- |",
    "| `--name`              | `X_NAME`, `Y_NAME`    | required | A name like \\<user>\\|\\<org>. |",
    "| `--dry` (alone: true) |                       | `false`  | Change \\*nothing\\*.          |",
    "| `--host`              | `X_HOST`              | empty    | Host.                        |",
  ]);
  assert.match(page, /flags win over variables, variables over defaults/);
  assert.match(page, /`irsa server` exits with code 2/);
  assert.ok(page.includes("| `-o`, `--output FORMAT` |"), page);
});
