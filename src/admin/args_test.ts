import assert from "node:assert/strict";
import { helpFor, parseArgs, UsageError } from "./args.ts";

Deno.test("parseArgs: flags before or after the words, --x=v, -o json, -ojson, -f FILE", () => {
  const p = parseArgs(["-o", "json", "mappings", "apply", "--dry-run", "-f=m.yaml", "--prune"]);
  assert.deepEqual(p.command?.words, ["mappings", "apply"]);
  assert.deepEqual(p.flags, { output: "json", "dry-run": true, filename: "m.yaml", prune: true });
  assert.deepEqual(parseArgs(["capacity", "-ojson"]).flags, { output: "json" });
  const t = parseArgs(["trust", "--server=https://x", "arn:aws:iam::1:role/r"]);
  assert.deepEqual(t.args, ["arn:aws:iam::1:role/r"]);
  assert.equal(t.flags.server, "https://x");
  assert.equal(parseArgs(["explain", "--help"]).help, true);
  assert.equal(parseArgs(["--help"]).command, undefined);
});

Deno.test("parseArgs: every misuse is a UsageError naming it", () => {
  const cases: [string[], RegExp][] = [
    [[], /no command/],
    [["mappings"], /unknown command "mappings"/],
    [["capacity", "--user", "x"], /unknown flag "--user"/],
    [["capacity", "extra"], /takes no arguments/],
    [["trust"], /needs ROLE_ARN/],
    [["capacity", "-o", "xml"], /-o must be table, json or yaml/],
    [["capacity", "--prune=yes"], /unknown flag/],
    [["mappings", "apply", "--prune=yes"], /takes no value/],
    [["explain", "--user"], /needs a USER/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(
      () => parseArgs(argv),
      (e: unknown) => e instanceof UsageError && message.test(e.message),
      argv.join(" "),
    );
  }
});

Deno.test("helpFor names every command, and each command's flags", () => {
  const all = helpFor();
  for (
    const c of ["mappings get", "mappings apply", "capacity", "trust ROLE_ARN", "explain", "report"]
  ) {
    assert.match(all, new RegExp(c));
  }
  const apply = helpFor(parseArgs(["mappings", "apply", "--help"]).command);
  assert.match(apply, /-f, --filename FILE/);
  assert.match(apply, /--dry-run/);
});
