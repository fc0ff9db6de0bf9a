/**
 * `deno task demo`: the whole chain on one machine. Starts moto (local IAM and STS) behind the
 * strict STS of the tests (it verifies the pod's token, judges the trust policies and lets a new
 * policy reach STS only after a few seconds, as AWS's propagation does), a test OIDC issuer,
 * `irsa server` (file store, HTTPS with a generated certificate) and `irsa sidecar` for one example
 * workspace; seeds the docs/design.md roles and mappings; prints the AWS config file, the edited
 * trust policy, the measured wait for it to reach STS and the caller identity reached through the
 * chain; then stops the workspace and prints STS's refusal of the same chain. Stops everything it
 * started.
 */
import { GetRoleCommand } from "@aws-sdk/client-iam";
import { startFakePlatformApi } from "../tests/fakes/platform_api.ts";
import { EXAMPLE, inAccount, seedExampleRoles, startMoto } from "../tests/fixtures/moto.ts";
import { startOidcIssuer } from "../tests/fixtures/oidc_issuer.ts";
import { startStrictSts } from "../tests/fixtures/strict_sts.ts";
import { makeTestTls } from "../tests/fixtures/tls.ts";
import { baseEnv, RUN_PERMISSIONS } from "../tests/server_process.ts";
import {
  pairJson as pair,
  startFileStoreServer,
  startWorkspace,
  strictStsEnv,
} from "../tests/world.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
/** The simulated time a written trust policy takes to reach STS. */
const PROPAGATION_MS = 4_000;
const CLIENT = decodeURIComponent(new URL("../tests/e2e_client.ts", import.meta.url).pathname);
const cleanups: (() => Promise<unknown> | unknown)[] = [];
const step = (title: string) => console.log(`\n=== ${title} ===\n`);

async function cleanup() {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch { /* keep stopping the rest */ }
  }
  cleanups.length = 0;
}
Deno.addSignalListener("SIGINT", async () => {
  console.log("\nStopping everything the demo started...");
  await cleanup();
  Deno.exit(130);
});

try {
  step(
    "Starting moto (local IAM and STS) behind the strict STS, a token issuer and the platform's token endpoint",
  );
  const moto = await startMoto();
  cleanups.push(() => moto.stop());
  const iam = moto.iamClient();
  const world = await seedExampleRoles(iam);
  console.log(
    `moto at ${moto.endpoint}: proxy roles in ${EXAMPLE.eksAccount}, asset roles in ${EXAMPLE.assetsAccount}`,
  );
  const issuer = await startOidcIssuer();
  cleanups.push(() => issuer.close());
  const sts = startStrictSts({
    motoEndpoint: moto.endpoint,
    propagationMs: PROPAGATION_MS,
    issuers: { [EXAMPLE.oidcHost]: { url: issuer.clusterIssuer } },
  });
  cleanups.push(() => sts.close());
  console.log(
    `strict STS at ${sts.endpoint}: a new trust policy reaches STS after ${PROPAGATION_MS} ms`,
  );
  const platform = startFakePlatformApi();
  cleanups.push(() => platform.close());
  const tls = await makeTestTls();
  cleanups.push(() => tls.cleanup());
  const dir = await Deno.makeTempDir({ prefix: "irsa-demo-" });
  cleanups.push(() => Deno.remove(dir, { recursive: true }));

  await Deno.writeTextFile(
    `${dir}/mappings.json`,
    JSON.stringify({
      "irsa-iamrole-list-bucket": JSON.stringify(pair("acme-list-bucket-role")),
      "irsa-iamrole-read-bucket": JSON.stringify(pair("acme-read-bucket-role")),
    }),
  );

  step("Starting irsa server (HTTPS, file store) with the organization mappings");
  const server = await startFileStoreServer(
    moto,
    world,
    issuer,
    tls,
    `${dir}/mappings.json`,
    undefined,
    strictStsEnv(sts.endpoint),
  );
  cleanups.push(() => server.stop());
  console.log(`irsa server at ${server.url}`);
  console.log(
    await Deno.readTextFile(`${dir}/mappings.json`).then((t) =>
      JSON.stringify(JSON.parse(t), null, 2)
    ),
  );

  step(
    `Starting a workspace: user jdoe in irsa-iamrole-list-bucket and irsa-iamrole-read-bucket, run ${RUN}`,
  );
  const started = performance.now();
  const { sidecar, configFile } = await startWorkspace({
    issuer,
    platform,
    server,
    caFile: tls.caCertPath,
    sts: sts.endpoint,
    dir,
    runId: RUN,
    username: "jdoe",
    groups: ["irsa-iamrole-list-bucket", "irsa-iamrole-read-bucket"],
  });
  cleanups.push(() => sidecar.stop());
  let health: Response;
  for (let i = 0;; i++) {
    health = await sidecar.fetch("/healthz");
    if (health.status === 200 || i > 200) break;
    await health.body?.cancel();
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`curl ${sidecar.url}/healthz\n${await health.text()}`);

  step("Waiting for the trust policies to reach STS (the sidecar's propagation check)");
  let usable: Record<string, string> = {};
  for (let i = 0; i < 600; i++) {
    usable = (await (await sidecar.fetch("/healthz")).json()).usable ?? {};
    const states = Object.values(usable);
    if (states.length > 0 && states.every((s) => s !== "checking")) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(
    `usable after ${
      Math.round(performance.now() - started)
    } ms from the sidecar's start (simulated delay ${PROPAGATION_MS} ms): ${
      JSON.stringify(usable)
    }`,
  );

  step(`The AWS config file the sidecar wrote (AWS_CONFIG_FILE=${configFile})`);
  console.log(await Deno.readTextFile(configFile));

  step("The trust policy irsa edited on proxy role acme-list-bucket-role");
  const role = await iam.send(
    inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: "acme-list-bucket-role" })),
  );
  console.log(
    JSON.stringify(JSON.parse(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!)), null, 2),
  );

  step('The caller identity through the chain: Session(profile_name="acme-list-bucket-role")');
  const chain = () =>
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
  const out = await chain();
  const text = new TextDecoder().decode(out.code === 0 ? out.stdout : out.stderr);
  console.log(out.code === 0 ? JSON.stringify(JSON.parse(text), null, 2) : text);
  console.log(
    "\n(AssumeRoleWithWebIdentity on the proxy role with the pod's token, then AssumeRole on the asset role.)",
  );

  step("Stopping the workspace: the sidecar removes its subject from the trust policies");
  cleanups.pop();
  await sidecar.stop();
  const after = await iam.send(
    inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: "acme-list-bucket-role" })),
  );
  const sub =
    JSON.parse(decodeURIComponent(after.Role!.AssumeRolePolicyDocument!)).Statement[0].Condition
      .StringLike[`${EXAMPLE.oidcHost}:sub`];
  console.log(`"${EXAMPLE.oidcHost}:sub": ${JSON.stringify(sub)}`);
  iam.destroy();

  step("The same chain once the removal has reached STS");
  await new Promise((r) => setTimeout(r, PROPAGATION_MS + 200));
  const refused = await chain();
  const error = new TextDecoder().decode(refused.stderr);
  const refusal = /AccessDenied[^\n]*|Not authorized[^\n]*/.exec(error)?.[0] ?? error.trim();
  console.log(refused.code === 0 ? "the chain still worked (unexpected)" : `refused: ${refusal}`);
  if (out.code !== 0 || refused.code === 0) Deno.exitCode = 1;
} catch (e) {
  console.error(`demo failed: ${(e as Error).message}`);
  Deno.exitCode = 1;
} finally {
  await cleanup();
}
