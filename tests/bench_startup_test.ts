/** The start-up benchmark runs and ends with its one summary line; times are reported, never asserted. */
import assert from "node:assert/strict";
import { baseEnv, RUN_PERMISSIONS } from "./server_process.ts";

const BENCH = decodeURIComponent(new URL("../scripts/bench_startup.ts", import.meta.url).pathname);

Deno.test("deno task bench:startup works: the sidecar syncs against the stub, and the last line has its shape", async () => {
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
        "--out",
        `${dir}/s.json`,
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
      /^sidecar\/floor: \d+\.\d\d \(sidecar \d+\.\d ms, floor \d+\.\d ms, RSS after sync \d+\.\d MiB\)$/,
    );
    const result = JSON.parse(await Deno.readTextFile(`${dir}/s.json`));
    assert.ok(result.rss_after_sync_mib.vm_hwm > 0, "VmHWM was read after the sync");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
