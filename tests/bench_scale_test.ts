/**
 * The scale benchmark at a small size (200 pods held over 3 replicas, 10 proxy roles at IAM's
 * quota): it runs, loses nothing, prints its four lines, and a start costs as many Kubernetes
 * writes with 200 pods held as with none. Times are reported, never asserted.
 */
import assert from "node:assert/strict";
import { baseEnv, RUN_PERMISSIONS } from "./server_process.ts";

const BENCH = decodeURIComponent(new URL("../scripts/bench_scale.ts", import.meta.url).pathname);

Deno.test("deno task bench:scale works at a small size: every pod held, none lost, writes per start flat", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...RUN_PERMISSIONS,
        "--allow-run",
        BENCH,
        ...["--pods", "200", "--sample", "10", "--ends", "40", "--out", `${dir}/scale.json`],
      ],
      env: baseEnv(),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr) + stdout);
    const lines = stdout.trim().split("\n").slice(-4);
    assert.equal(lines[0], "held: 200 pods, 0 lost");
    assert.match(lines[1], /^start p50\/p99 at 0 held: \d+\/\d+ ms, at 200 held: \d+\/\d+ ms$/);
    assert.match(lines[2], /^kubernetes writes per start: [\d.]+$/);
    assert.match(lines[3], /^revocation after pod end p50\/p99: \d+\/\d+ ms$/);
    const result = JSON.parse(await Deno.readTextFile(`${dir}/scale.json`));
    assert.match(result.load_average_at_end, /^[\d.]+ [\d.]+ [\d.]+$/);
    const writes = result.checkpoints.map((c: { kubernetes_writes_per_start: number }) =>
      c.kubernetes_writes_per_start
    );
    assert.equal(writes.length, 3);
    assert.ok(writes[2] <= writes[0] + 1, `writes per start at 0, 100, 200 held: ${writes}`);
    // A stop edits its grant's roles, not every role ever edited: flat too.
    const stops = result.checkpoints.map((c: { kubernetes_writes_per_stop: number }) =>
      c.kubernetes_writes_per_stop
    );
    assert.ok(stops[2] <= stops[0] + 1, `writes per stop at 0, 100, 200 held: ${stops}`);
    assert.match(
      stdout,
      /^grant record bytes written per start: \d+, \d+ .*etcd database peak \d+ MiB/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
