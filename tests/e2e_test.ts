/**
 * The whole chain with real parts: moto behind the strict STS (which verifies the pod's token and
 * judges both trust policies, with a propagation delay), the test OIDC issuer (user tokens), the
 * real API server (the pod's token, from TokenRequest), the real server and the real sidecar as
 * subprocesses, and the AWS SDK's own credential chain reading the written file.
 */
import assert from "node:assert/strict";
import { assumeChain } from "./chain.ts";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { EXAMPLE, seedExampleRoles, startMoto } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startStrictSts } from "./fixtures/strict_sts.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { baseEnv, RUN_PERMISSIONS } from "./server_process.ts";
import {
  heldSubjects,
  pairJson as pair,
  startFileStoreServer,
  startWorkspace,
  strictStsEnv,
} from "./world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const SUBJECT = `*:domino-compute:run-${RUN}`;
const CLIENT = decodeURIComponent(new URL("./e2e_client.ts", import.meta.url).pathname);
/** How long a trust policy takes to reach the strict STS here. */
const PROPAGATION_MS = 1_000;

/** Polls until `fn` is true or the deadline passes. */
async function until(what: string, fn: () => Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("a workspace starts, its profiles chain to the asset role through the SDK, refresh follows mappings, and SIGTERM cleans up", async () => {
  const moto = await startMoto();
  const tls = await makeTestTls();
  const issuer = await startOidcIssuer();
  const platform = startFakePlatformApi();
  const dir = await Deno.makeTempDir();
  const iam = moto.iamClient();
  const stopped: (() => Promise<unknown>)[] = [];
  try {
    const world = await seedExampleRoles(iam);
    const subjects = (role: string) => heldSubjects(iam, world, role);
    await Deno.writeTextFile(
      `${dir}/mappings.json`,
      JSON.stringify({ "irsa-iamrole-list-bucket": JSON.stringify(pair("acme-list-bucket-role")) }),
    );
    // The run's Pending pod in domino-compute and its pod-bound token, as the kubelet mounts it.
    const cluster = await sharedKubeApiServer();
    const compute = await cluster.createNamespace("domino-compute", { exact: true });
    await cluster.createPod(compute, {
      name: `run-${RUN}-abcde`,
      serviceAccountName: `run-${RUN}`,
    });
    const podToken = await cluster.tokenRequest(compute, `run-${RUN}`, { pod: `run-${RUN}-abcde` });
    const sts = startStrictSts({
      motoEndpoint: moto.endpoint,
      propagationMs: PROPAGATION_MS,
      issuers: { [EXAMPLE.oidcHost]: { url: cluster.issuer, caCert: cluster.caCert } },
    });
    stopped.push(() => sts.close());
    const server = await startFileStoreServer(
      moto,
      world,
      issuer,
      tls,
      `${dir}/mappings.json`,
      cluster,
      strictStsEnv(sts.endpoint),
    );
    stopped.push(() => server.stop());

    // The workspace pod: its user token behind the pod-local proxy, its projected token and labels as files.
    const { sidecar, configFile } = await startWorkspace({
      issuer,
      platform,
      server,
      caFile: tls.caCertPath,
      sts: sts.endpoint,
      dir,
      runId: RUN,
      username: "jdoe",
      groups: ["irsa-iamrole-list-bucket", "irsa-iamrole-update-bucket"],
      podToken,
    });
    let sidecarStopped = false;
    stopped.push(() => (sidecarStopped ? Promise.resolve() : sidecar.stop()));
    const health = async () => {
      const res = await sidecar.fetch("/healthz");
      return { status: res.status, body: await res.json() };
    };
    await until("the first sync", async () => (await health()).status === 200);

    // 1. The proxy role's trust policy holds exactly this pod's subject.
    assert.deepEqual(await subjects("acme-list-bucket-role"), [SUBJECT]);
    assert.deepEqual(await subjects("acme-read-bucket-role"), []);
    const first = await Deno.readTextFile(configFile);
    assert.match(
      first,
      /\[profile acme-list-bucket-role\]\nsource_profile = src_acme-list-bucket-role\n/,
    );
    assert.match(first, /role_session_name = jdoe/);
    await until(
      "the propagation check",
      async () => (await health()).body.usable["acme-list-bucket-role"] === "usable",
    );

    // 2. The AWS SDK's own chain: AssumeRoleWithWebIdentity on the proxy role, then AssumeRole on the asset role.
    const sdkChain = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", ...RUN_PERMISSIONS, CLIENT, "acme-list-bucket-role"],
        env: {
          ...baseEnv(),
          AWS_CONFIG_FILE: configFile,
          AWS_SHARED_CREDENTIALS_FILE: `${dir}/none`,
          AWS_ENDPOINT_URL_STS: sts.endpoint,
          AWS_REGION: "us-east-1",
        },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const client = await sdkChain();
    assert.equal(client.code, 0, new TextDecoder().decode(client.stderr));
    const identity = JSON.parse(new TextDecoder().decode(client.stdout));
    assert.equal(identity.Account, EXAMPLE.assetsAccount);
    assert.match(identity.Arn, /^arn:aws:sts::222222222222:assumed-role\/acme-list-bucket-role\//);

    // 3. A mapping change, then /refresh: the new profile appears without a restart; a hand-made one stays.
    await Deno.writeTextFile(configFile, first + "\n[profile mine]\nregion = eu-west-1\n");
    const admin = await issuer.userToken({ username: "boss", admin: true });
    const put = await server.fetch("/update_role_mapping", {
      method: "POST",
      headers: { Authorization: `Bearer ${admin}` },
      body: JSON.stringify({
        domino_org: "irsa-iamrole-update-bucket",
        ...pair("acme-update-bucket-role"),
      }),
    });
    assert.equal(put.status, 200);
    await put.body?.cancel();
    const refreshed = await (await sidecar.fetch("/refresh")).json();
    assert.deepEqual(refreshed.profiles, ["acme-list-bucket-role", "acme-update-bucket-role"]);
    const second = await Deno.readTextFile(configFile);
    assert.match(second, /\[profile acme-update-bucket-role\]/);
    assert.match(second, /\[profile mine\]\nregion = eu-west-1\n/);
    assert.deepEqual(await subjects("acme-update-bucket-role"), [SUBJECT]);
    await new Promise((r) => setTimeout(r, PROPAGATION_MS + 100));
    const update = world.pairs.find((p) => p.name === "acme-update-bucket-role")!;
    assert.equal((await assumeChain(sts.endpoint, podToken, update)).ok, true);
    const del = await server.fetch("/delete_role_mapping", {
      method: "DELETE",
      headers: { Authorization: `Bearer ${admin}` },
      body: JSON.stringify({ domino_org: "irsa-iamrole-update-bucket" }),
    });
    assert.equal(del.status, 200);
    await del.body?.cancel();
    const again = await sidecar.fetch("/refresh", { method: "POST" });
    assert.deepEqual((await again.json()).profiles, ["acme-list-bucket-role"]);
    assert.doesNotMatch(await Deno.readTextFile(configFile), /acme-update-bucket-role/);
    // The deleted mapping's role, once the removal has reached STS, refuses the pod.
    await new Promise((r) => setTimeout(r, PROPAGATION_MS + 100));
    assert.deepEqual(await assumeChain(sts.endpoint, podToken, update), {
      ok: false,
      step: "AssumeRoleWithWebIdentity",
      error: "AccessDenied",
    });

    // 4. SIGTERM: the sidecar removes this pod's subject, then exits 0.
    sidecarStopped = true;
    assert.equal(await sidecar.stop(), 0);
    assert.deepEqual(await subjects("acme-list-bucket-role"), []);
    assert.ok(sidecar.logs.some((l) => l.includes("released this pod's subject")));
    // Once the removal has reached STS, the same chain is refused at its first step.
    await new Promise((r) => setTimeout(r, PROPAGATION_MS + 100));
    const refused = await sdkChain();
    assert.notEqual(refused.code, 0);
    assert.match(
      new TextDecoder().decode(refused.stderr),
      /Not authorized to perform sts:AssumeRoleWithWebIdentity/,
    );
  } finally {
    for (const stop of stopped.reverse()) await stop();
    iam.destroy();
    await platform.close();
    await issuer.close();
    await moto.stop();
    await tls.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});
