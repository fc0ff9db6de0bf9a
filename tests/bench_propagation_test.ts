/** The propagation benchmark runs and ends with its summary line; times are reported, never asserted. */
import assert from "node:assert/strict";
import { baseEnv, RUN_PERMISSIONS } from "./server_process.ts";

const BENCH = decodeURIComponent(
  new URL("../scripts/bench_propagation.ts", import.meta.url).pathname,
);

Deno.test("deno task bench:propagation works: a chained call succeeds through the strict STS, and the last line has its shape", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...RUN_PERMISSIONS,
        "--allow-run",
        BENCH,
        "--runs",
        "1",
        "--delay-ms",
        "300",
        "--out",
        `${dir}/p.json`,
      ],
      env: baseEnv(),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const last = new TextDecoder().decode(out.stdout).trimEnd().split("\n").at(-1)!;
    assert.match(
      last,
      /^sidecar start to first chained call, simulated delay 300 ms: median \d+ ms of 1$/,
    );
    const result = JSON.parse(await Deno.readTextFile(`${dir}/p.json`));
    assert.equal(result.runs.length, 1);
    assert.ok(result.runs[0].chain_attempts >= 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
