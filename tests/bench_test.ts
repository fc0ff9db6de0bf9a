/** The load benchmark runs at a small size and loses nothing; times are reported, never asserted. */
import assert from "node:assert/strict";
import { baseEnv, RUN_PERMISSIONS } from "./server_process.ts";

const BENCH = decodeURIComponent(new URL("../scripts/bench.ts", import.meta.url).pathname);

Deno.test("deno task bench works at a small size: every start mapped, no subject lost", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...RUN_PERMISSIONS,
        "--allow-run",
        BENCH,
        "--starts",
        "12",
        "--roles",
        "2",
        "--read-ms",
        "5",
        "--write-ms",
        "10",
        "--out",
        `${dir}/bench.json`,
      ],
      env: baseEnv(),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const result = JSON.parse(await Deno.readTextFile(`${dir}/bench.json`));
    assert.deepEqual(
      result.rows.map((
        r: { algorithm: string; replicas: number | null },
      ) => [r.algorithm, r.replicas]),
      [
        ["irsa (coalesced)", 1],
        ["irsa (coalesced)", 3],
        ["per-request (current service)", 1],
        ["floor (one read + one write per role)", null],
      ],
    );
    for (const row of result.rows) {
      assert.equal(row.subjects_lost, 0, row.algorithm);
      assert.equal(row.failed_requests, 0, row.algorithm);
    }
    // The per-request algorithm makes a read and a write per request and role; irsa batches.
    assert.equal(result.rows[2].iam_writes, 24);
    assert.ok(result.rows[0].iam_writes < 24);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
