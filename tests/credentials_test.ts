/**
 * The sidecar's credential endpoint as a process: the chain proxy role → asset role performed by
 * the sidecar through the strict STS (the pod's token and both trust policies checked), the authorization token,
 * and refusals, including a role unmapped and resynced.
 */
import assert from "node:assert/strict";
import { EXAMPLE } from "./fixtures/moto.ts";
import { orgOf, startCredentialWorld } from "./credential_world.ts";

const LIST = "acme-list-bucket-role";
const READ = "acme-read-bucket-role";

Deno.test("the real sidecar vends each profile's asset-role credentials behind its token, and stops at once when a role is unmapped", async () => {
  const w = await startCredentialWorld({ roles: [LIST, READ] });
  try {
    const token = (await Deno.readTextFile(w.authTokenFile)).trim();
    assert.match(token, /^[\w-]{43}$/);
    assert.equal((await Deno.stat(w.authTokenFile)).mode! & 0o777, 0o644);
    const config = await Deno.readTextFile(w.configFile);
    assert.match(
      config,
      new RegExp(
        `\\[profile ${LIST}\\]\\nsource_profile = src_${LIST}\\n(.+\\n)*credential_process = /bin/sh ${w.dir}/\\.aws/irsa-credential-process ${LIST}\\n`,
      ),
    );
    assert.doesNotMatch(config, /\[profile default\]/, "two profiles and none named: no default");

    // Both profiles by name: the asset role of the assets account, session = the user.
    for (const role of [LIST, READ]) {
      const who = await w.identityOf(role);
      assert.equal(who.account, EXAMPLE.assetsAccount);
      assert.equal(who.arn, `arn:aws:sts::222222222222:assumed-role/${role}/jdoe`);
    }
    const process = await (await w.credentials(`/credentials/${READ}?format=process`)).json();
    assert.equal(process.Version, 1);
    assert.equal(process.AccessKeyId, (await w.identityOf(READ)).accessKeyId, "cached: one chain");

    // Refusals: JSON errors, never a credential.
    const refusals: [string, string | null, number, RegExp][] = [
      [`/credentials/${LIST}`, null, 401, /Missing Authorization header/],
      [`/credentials/${LIST}`, "wrong", 401, /Wrong authorization token/],
      [`/credentials/${LIST}`, token.slice(0, -1), 401, /Wrong authorization token/],
      ["/credentials/acme-update-bucket-role", token, 404, /not mapped to this workspace/],
      ["/credentials", token, 409, /2 profiles .* and no default/],
    ];
    for (const [path, t, status, message] of refusals) {
      const res = await w.credentials(path, t);
      const text = await res.text();
      assert.equal(res.status, status, `${path}: ${text}`);
      assert.match(JSON.parse(text).message, message);
      assert.doesNotMatch(text, /AccessKeyId|SecretAccessKey|Token"/);
    }

    // The read role is unmapped; after the pod's resync it is refused at once.
    await w.mapping(orgOf(READ), null);
    const refreshed = await (await w.sidecar.fetch("/refresh")).json();
    assert.deepEqual(refreshed.profiles, [LIST]);
    const gone = await w.credentials(`/credentials/${READ}`);
    assert.equal(gone.status, 404);
    assert.match((await gone.json()).message, /no longer mapped to this workspace/);
    // The only profile left is now the default one, for the container provider and [default].
    const only = await (await w.credentials("/credentials")).json();
    assert.equal(only.AccessKeyId, (await w.identityOf(LIST)).accessKeyId);
    assert.match(
      await Deno.readTextFile(w.configFile),
      /\[profile default\]\nsource_profile = src_acme-list-bucket-role\n/,
    );

    // The credential_process helper, as a container without python3 runs it: with curl, then
    // with neither, when it names what is missing.
    const helper = `${w.dir}/.aws/irsa-credential-process`;
    const bin = `${w.dir}/bin`;
    await Deno.mkdir(bin);
    const runHelper = async (path: string) => {
      const out = await new Deno.Command("/bin/sh", {
        args: [helper, LIST],
        env: { PATH: path },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const d = new TextDecoder();
      return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
    };
    for (const tool of ["curl", "cat"]) {
      const found = await new Deno.Command("/bin/sh", { args: ["-c", `command -v ${tool}`] })
        .output();
      await Deno.symlink(new TextDecoder().decode(found.stdout).trim(), `${bin}/${tool}`);
    }
    const withCurl = await runHelper(bin);
    assert.equal(withCurl.code, 0, withCurl.stderr);
    assert.equal(JSON.parse(withCurl.stdout).Version, 1);
    const bare = await runHelper(`${w.dir}/nothing`);
    assert.equal(bare.code, 127);
    assert.match(bare.stderr, /neither python3 nor curl; one of them is needed/);
    const withPython = await runHelper(Deno.env.get("PATH")!);
    assert.equal(withPython.code, 0, withPython.stderr);
    assert.equal(
      JSON.parse(withPython.stdout).AccessKeyId,
      JSON.parse(withCurl.stdout).AccessKeyId,
    );

    const health = await (await w.sidecar.fetch("/healthz")).json();
    assert.ok(health.credentials.vended >= 8, JSON.stringify(health.credentials));
    assert.equal(health.credentials.refused, 6);
    // Nothing credential-bearing in the log.
    const secrets = [token, process.SecretAccessKey, process.SessionToken];
    for (const line of w.sidecar.logs) {
      for (const s of secrets) assert.ok(!line.includes(s), `a secret in the log: ${line}`);
    }
  } finally {
    await w.close();
  }
});

Deno.test("with --credentials false (the chart's sidecar.credentials.enabled: false) the sidecar writes the 1.8 profiles only and serves no credentials", async () => {
  const w = await startCredentialWorld({ roles: [LIST], sidecarArgs: ["--credentials", "false"] });
  try {
    const config = await Deno.readTextFile(w.configFile);
    assert.match(config, new RegExp(`\\[profile ${LIST}\\]\\nsource_profile = src_${LIST}\\n`));
    assert.doesNotMatch(config, /credential_process|\[profile default\]/);
    await assert.rejects(Deno.stat(w.authTokenFile), Deno.errors.NotFound);
    const res = await w.credentials(`/credentials/${LIST}`, "anything");
    assert.equal(res.status, 404);
    assert.doesNotMatch(await res.text(), /AccessKeyId/);
    assert.equal((await (await w.sidecar.fetch("/healthz")).json()).credentials, undefined);
  } finally {
    await w.close();
  }
});
