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
    ? "the compiled binary prints its help, refuses bad usage with 2, and serves /healthz in both modes"
    : "the compiled binary (skipped: DENORT_BIN does not name a denort binary, and deno compile cannot download one here)",
  ignore: !denort,
  async fn() {
    const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.compile;
    const dir = await Deno.makeTempDir();
    try {
      // The task's own steps (bundle the sidecar, compile) and flags, the binary in a temporary folder.
      for (const step of task.split("&&")) {
        const args = step.trim().split(/\s+/).slice(1).map((a) =>
          a === "dist/irsa" ? `${dir}/irsa` : a
        );
        const build = await new Deno.Command(Deno.execPath(), {
          args,
          cwd: ROOT,
          env: { ...baseEnv(), DENORT_BIN: denort! },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
      }
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

      // The sidecar mode runs the bundle the binary embeds (dist/sidecar.js, by --include).
      const sidecar = new Deno.Command(`${dir}/irsa`, {
        args: ["sidecar", "--port", "0", "--api-proxy", "http://127.0.0.1:1"],
        env: { ...baseEnv(), AWS_CONFIG_FILE: `${dir}/aws/config` },
        clearEnv: true,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const sidecarLogs = sidecar.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes("irsa sidecar listening")) {
        const { value, done } = await sidecarLogs.read();
        if (done) break;
        text += value;
      }
      const sidecarUrl = JSON.parse(
        text.split("\n").find((l) => l.includes("irsa sidecar listening"))!,
      ).url;
      const health = await fetch(`${sidecarUrl}/healthz`);
      assert.equal((await health.json()).config_file, `${dir}/aws/config`);
      sidecar.kill("SIGTERM");
      assert.equal((await sidecar.status).code, 0);
      while (!(await sidecarLogs.read()).done) { /* drain */ }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
