/** Faults between the server and IAM: throttling, 5xx, and a server killed in the middle of a batch. */
import assert from "node:assert/strict";
import type { IAMClient } from "@aws-sdk/client-iam";
import { startFaultProxy } from "./fault_proxy.ts";
import {
  EXAMPLE,
  type Moto,
  type SeededWorld,
  seedExampleRoles,
  startMoto,
} from "./fixtures/moto.ts";
import { type OidcIssuer, startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { heldSubjects, serverEnv } from "./world.ts";

let moto: Moto;
let iam: IAMClient;
let issuer: OidcIssuer;
let world: SeededWorld;
let dir: string;

Deno.test.beforeAll(async () => {
  moto = await startMoto();
  iam = moto.iamClient();
  issuer = await startOidcIssuer();
  dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/mappings.json`,
    JSON.stringify(
      Object.fromEntries(["acme-list-bucket-role", "acme-read-bucket-role"].map((r) => [
        `org-${r}`,
        JSON.stringify({
          iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/${r}`,
          proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${r}`,
        }),
      ])),
    ),
  );
});
Deno.test.afterAll(async () => {
  await issuer.close();
  await moto.stop();
  await Deno.remove(dir, { recursive: true });
});
Deno.test.beforeEach(async () => {
  await moto.reset();
  world = await seedExampleRoles(iam);
});

const server = (iamEndpoint: string) =>
  startServerProcess([
    "--insecure-http",
    "--mapping-file",
    `${dir}/mappings.json`,
    "--trust-policy-quota",
    "8192",
  ], serverEnv(moto, world, issuer, { AWS_ENDPOINT_URL_IAM: iamEndpoint }));

const held = (role: string) => heldSubjects(iam, world, role);

/** One workspace start as the sidecar makes it: true when every role was mapped. */
async function start(s: ServerProcess, id: string): Promise<boolean> {
  try {
    const user = await issuer.userToken({
      username: "jdoe",
      groups: ["org-acme-list-bucket-role", "org-acme-read-bucket-role"],
    });
    const res = await s.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${user}`,
        "X-Irsa-Workload-Token": await issuer.serviceAccountToken({ serviceAccount: `run-${id}` }),
        Accept: "application/json",
      },
      body: "{}",
    });
    const body = await res.json();
    return res.status === 200 && body.roles.every((r: { status: string }) => r.status !== "failed");
  } catch {
    return false; // No answer: the sidecar retries.
  }
}

const ids = (n: number, base: number) =>
  Array.from({ length: n }, (_, i) => (base + i).toString(16).padStart(24, "0"));
const subjectOf = (id: string) => `*:domino-compute:run-${id}`;

Deno.test("with 10% of IAM calls throttled and 5% failing, every start still ends mapped", async () => {
  // Deterministic draws: about one call in ten throttled and some 5xx, the very first call included,
  // so the test never passes for want of a fault.
  let draw = 0;
  const random = () => [0, 0.99, 0.99, 0.99, 0.99, 0.99, 0.01, 0.99, 0.99, 0.99][draw++ % 10];
  const proxy = startFaultProxy(moto.endpoint, {
    readLatencyMs: 5,
    writeLatencyMs: 10,
    throttleRate: 0.1,
    serverErrorRate: 0.05,
  }, random);
  const s = await server(proxy.url);
  try {
    const runs = ids(30, 0x100);
    let pending = runs;
    for (let round = 0; pending.length > 0 && round < 5; round++) {
      const ok = await Promise.all(pending.map((id) => start(s, id)));
      pending = pending.filter((_, i) => !ok[i]);
    }
    assert.deepEqual(pending, []);
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      assert.deepEqual((await held(role)).sort(), runs.map(subjectOf).sort());
    }
    assert.ok(proxy.counts.throttled + proxy.counts.serverErrors > 0, "faults were injected");
  } finally {
    await s.stop();
    await proxy.close();
  }
});

Deno.test("a server killed in the middle of a batch loses no subject it answered with success", async () => {
  // The first 10 starts are one batch, answered after about 1100 ms; the other 10 arrive at 300 ms,
  // during that write, and their batch is still writing when the server is killed at 1500 ms.
  const proxy = startFaultProxy(moto.endpoint, { readLatencyMs: 50, writeLatencyMs: 1000 });
  let s = await server(proxy.url);
  try {
    const runs = ids(20, 0x200);
    const answers = runs.map((id, i) =>
      i < 10 ? start(s, id) : new Promise((r) => setTimeout(r, 300)).then(() => start(s, id))
    );
    await new Promise((r) => setTimeout(r, 1500));
    await s.stop("SIGKILL");
    const ok = await Promise.all(answers);
    const answered = runs.filter((_, i) => ok[i]);
    const lost = runs.filter((_, i) => !ok[i]);
    assert.ok(lost.length > 0, "the kill interrupted some requests");
    assert.ok(answered.length > 0, "some requests were answered before the kill");
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      const now = await held(role);
      for (const id of answered) {
        assert.ok(now.includes(subjectOf(id)), `${id} was answered but is missing from ${role}`);
      }
    }
    // The sidecars whose answers were lost retry against the restarted server, and succeed.
    s = await server(proxy.url);
    const retried = await Promise.all(lost.map((id) => start(s, id)));
    assert.ok(retried.every(Boolean));
    for (const role of ["acme-list-bucket-role", "acme-read-bucket-role"]) {
      assert.deepEqual((await held(role)).sort(), runs.map(subjectOf).sort());
    }
  } finally {
    await s.stop();
    await proxy.close();
  }
});
