/**
 * The binary that `deno task compile` builds. deno compile downloads its runtime (denort) unless
 * DENORT_BIN names one; where neither is possible this test reports itself skipped, never faked.
 */
import assert from "node:assert/strict";
import { baseEnv } from "./server_process.ts";

const denort = Deno.env.get("DENORT_BIN");
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

Deno.test({
  name: denort
    ? "the compiled binary prints its help, refuses bad usage with 2, and serves /healthz"
    : "the compiled binary (skipped: DENORT_BIN does not name a denort binary, and deno compile cannot download one here)",
  ignore: !denort,
  async fn() {
    const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.compile;
    const dir = await Deno.makeTempDir();
    try {
      // The task's own flags, with the output moved to a temporary folder.
      const args = task.split(/\s+/).slice(1).map((a) => (a === "dist/irsa" ? `${dir}/irsa` : a));
      const build = await new Deno.Command(Deno.execPath(), {
        args,
        cwd: ROOT,
        env: { ...baseEnv(), DENORT_BIN: denort! },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
      const run = async (...a: string[]) => {
        const out = await new Deno.Command(`${dir}/irsa`, {
          args: a,
          env: baseEnv(),
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        return {
          code: out.code,
          text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
        };
      };
      const help = await run("--help");
      assert.equal(help.code, 0);
      assert.match(help.text, /OIDC_PROVIDER/);
      assert.equal((await run("bogus")).code, 2);
      const server = new Deno.Command(`${dir}/irsa`, {
        args: [
          "server",
          "--insecure-http",
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--oidc-provider",
          "oidc.example/id/X",
          "--jwt-issuer",
          "http://127.0.0.1:1/realm",
          "--mapping-file",
          `${dir}/m.json`,
        ],
        env: baseEnv(),
        clearEnv: true,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const reader = server.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let logs = "";
      while (!logs.includes("irsa server listening")) {
        const { value, done } = await reader.read();
        if (done) break;
        logs += value;
      }
      const url = JSON.parse(
        logs.split("\n").find((l) => l.includes("irsa server listening"))!,
      ).url;
      const res = await fetch(`${url}/healthz`);
      assert.deepEqual(await res.json(), { status: "Healthy" });
      server.kill("SIGTERM");
      assert.equal((await server.status).code, 0);
      while (!(await reader.read()).done) { /* drain */ }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
