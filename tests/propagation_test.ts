/**
 * The sidecar's propagation check against an STS that is slow to see a new trust policy: the real
 * server and sidecar as subprocesses, moto behind the strict STS with a delay, the test issuer's
 * pod tokens. /healthz says `not-yet` while STS still refuses, then `usable` once it admits.
 */
import assert from "node:assert/strict";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { EXAMPLE, seedExampleRoles, startMoto } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startStrictSts } from "./fixtures/strict_sts.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { pairJson, startFileStoreServer, startWorkspace, strictStsEnv } from "./world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const ROLE = EXAMPLE.roleNames[0];
const ORG = "irsa-iamrole-list-bucket";
const PROPAGATION_MS = 3_000;

Deno.test("the sidecar's /healthz goes from not-yet to usable when the trust policy reaches STS", async () => {
  const moto = await startMoto();
  const tls = await makeTestTls();
  const issuer = await startOidcIssuer();
  const platform = startFakePlatformApi();
  const dir = await Deno.makeTempDir();
  const iam = moto.iamClient();
  const sts = startStrictSts({
    motoEndpoint: moto.endpoint,
    propagationMs: PROPAGATION_MS,
    issuers: { [EXAMPLE.oidcHost]: { url: issuer.clusterIssuer } },
  });
  const stopped: (() => Promise<unknown>)[] = [];
  try {
    const world = await seedExampleRoles(iam);
    await Deno.writeTextFile(
      `${dir}/mappings.json`,
      JSON.stringify({ [ORG]: JSON.stringify(pairJson(ROLE)) }),
    );
    const server = await startFileStoreServer(
      moto,
      world,
      issuer,
      tls,
      `${dir}/mappings.json`,
      undefined,
      strictStsEnv(sts.endpoint),
    );
    stopped.push(() => server.stop());
    const started = performance.now();
    const { sidecar } = await startWorkspace({
      issuer,
      platform,
      server,
      caFile: tls.caCertPath,
      sts: sts.endpoint,
      dir,
      runId: RUN,
      username: "jdoe",
      groups: [ORG],
      // Each check gives up after a second, well within the delay, so the first one ends not-yet.
      args: ["--propagation-deadline-seconds", "1"],
    });
    stopped.push(() => sidecar.stop());
    const usable = async () => {
      const res = await sidecar.fetch("/healthz");
      return (await res.json()).usable?.[ROLE];
    };
    const seen: string[] = [];
    const observe = async (until: string, refresh: boolean) => {
      while (performance.now() - started < 20_000) {
        const state = await usable();
        if (state !== undefined && seen.at(-1) !== state) seen.push(state);
        if (state === until) return performance.now() - started;
        if (refresh && state === "not-yet") await (await sidecar.fetch("/refresh")).body?.cancel();
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`/healthz never said ${until}: ${seen.join(" -> ")}`);
    };
    const notYet = await observe("not-yet", false);
    const ready = await observe("usable", true);
    console.error(
      `not-yet after ${Math.round(notYet)} ms, usable after ${Math.round(ready)} ms ` +
        `(delay ${PROPAGATION_MS} ms): ${seen.join(" -> ")}`,
    );
    assert.equal(seen[0], "checking");
    assert.ok(seen.indexOf("not-yet") < seen.indexOf("usable"));
    assert.ok(ready >= PROPAGATION_MS, `usable after ${ready} ms, before the delay`);
    assert.ok(sidecar.logs.some((l) => l.includes("role not assumable yet")));
  } finally {
    for (const stop of stopped.reverse()) await stop();
    iam.destroy();
    await sts.close();
    await platform.close();
    await issuer.close();
    await moto.stop();
    await tls.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});
