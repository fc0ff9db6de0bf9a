/** The load benchmark runs at a small size and loses nothing; times are reported, never asserted. */
import assert from "node:assert/strict";
import { baseEnv, RUN_PERMISSIONS } from "./server_process.ts";

const BENCH = decodeURIComponent(new URL("../scripts/bench.ts", import.meta.url).pathname);

Deno.test("deno task bench works at a small size: irsa maps every start and loses no subject", async () => {
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
        "--repeat",
        "2",
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
        r: { algorithm: string; replicas: number | null; workers: number | null },
      ) => [r.algorithm, r.replicas, r.workers]),
      [
        ["irsa (coalesced)", 1, null],
        ["irsa (coalesced)", 3, null],
        ["per-request (current service)", null, 1],
        ["per-request (current service)", null, 5],
        ["per-request (current service)", null, 16],
        ["floor (one read + one write per role)", null, null],
        ["HTTP floor (same requests, hello-world server)", null, null],
      ],
    );
    const [one, three, serial, , , floor] = result.rows;
    // Each irsa row is the median of the interleaved repeats, which the JSON lists.
    assert.equal(one.runs_wall_ms.length, 2);
    assert.ok(one.runs_wall_ms.includes(one.wall_ms));
    for (const row of [one, three, serial, floor]) {
      assert.equal(row.subjects_lost, 0, row.algorithm);
      assert.equal(row.failed_requests, 0, row.algorithm);
    }
    // The per-request algorithm makes a read and a write per request and role; irsa batches, and
    // the floor is one of each per role.
    assert.equal(serial.iam_writes, 24);
    assert.ok(one.iam_writes < 24);
    assert.deepEqual([floor.iam_reads, floor.iam_writes], [2, 2]);
    // The last lines, as docs/development.md quotes them; the numbers are reported, never judged here.
    const stdout = new TextDecoder().decode(out.stdout).trimEnd().split("\n");
    const tail = stdout.slice(-7).map((l) => l.replace(/\d+(\.\d+)?/g, "#"));
    assert.deepEqual(tail, [
      "irsa/(floor + HTTP floor), # replica: #",
      "irsa/floor, # replica: #",
      "# replicas/# replica: #",
      "lost by irsa: #",
      "per-request # workers/irsa: #, lost # of #",
      "per-request # workers/irsa: #, lost # of #",
      "per-request # workers/irsa: #, lost # of #",
    ]);
    assert.equal(stdout.at(-4), "lost by irsa: 0");
    assert.match(stdout.at(-3)!, /^per-request 1 workers\/irsa: [\d.]+, lost 0 of 24$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
