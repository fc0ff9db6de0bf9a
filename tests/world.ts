/** The example world shared by the end-to-end tests, the benchmark and the demo: environments and checks. */

import { GetRoleCommand, type IAMClient } from "@aws-sdk/client-iam";
import { subjectsOf } from "../src/core/trust_policy.ts";
import {
  EXAMPLE,
  inAccount,
  type Moto,
  type SeededWorld,
  seedExampleRoles,
  startMoto,
} from "./fixtures/moto.ts";
import type { OidcIssuer } from "./fixtures/oidc_issuer.ts";
import { makeTestTls, type TestTls } from "./fixtures/tls.ts";
import type { KubeApiServer } from "./fixtures/kube_apiserver.ts";
import type { FakePlatformApi } from "./fakes/platform_api.ts";
import { type ServerProcess, startIrsaProcess } from "./server_process.ts";

/** The wire form of the example pair for a role name: asset in the assets account, proxy in the EKS account. */
export function pairJson(name: string, assetName = name) {
  return {
    iam_role_arn: `arn:aws:iam::${EXAMPLE.assetsAccount}:role/${assetName}`,
    proxy_iam_role_arn: `arn:aws:iam::${EXAMPLE.eksAccount}:role/${name}`,
  };
}

/** The environment of a server process: moto as the EKS account's server user, the test issuers. */
export function serverEnv(
  moto: Moto,
  world: SeededWorld,
  issuer: OidcIssuer,
  extra: Record<string, string> = {},
) {
  return {
    ...moto.env,
    AWS_ACCESS_KEY_ID: world.serverCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: world.serverCredentials.secretAccessKey,
    AWS_CONFIG_FILE: "/nonexistent",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
    OIDC_PROVIDER: EXAMPLE.oidcHost,
    IRSA_CLUSTER_ISSUER: issuer.clusterIssuer,
    IRSA_JWT_ISSUER: issuer.issuer,
    ...extra,
  };
}

/** The environment the platform's mutation gives a workspace's sidecar, pointed at local parts. */
export function sidecarEnv(
  o: {
    apiProxy: string;
    serverUrl: string;
    caFile: string;
    dir: string;
    runId: string;
    username: string;
    sts: string;
  },
) {
  return {
    DOMINO_API_PROXY: o.apiProxy,
    DOMINO_IRSA_ENDPOINT: `${o.serverUrl}/map_iam_roles_to_pod_sa`,
    DOMINO_IRSA_SSL_CERT: o.caFile,
    AWS_CONFIG_FILE: `${o.dir}/.aws/config`,
    AWS_WEB_IDENTITY_TOKEN_FILE: `${o.dir}/token`,
    POD_INFO_PATH: `${o.dir}/labels`,
    DOMINO_RUN_ID: o.runId,
    DOMINO_STARTING_USERNAME: o.username,
    AWS_REGION: "us-east-1",
    AWS_STS_REGIONAL_ENDPOINTS: "regional",
    AWS_ENDPOINT_URL_STS: o.sts,
  };
}

/** The managed subjects a proxy role's trust policy holds in moto. */
export async function heldSubjects(
  iam: IAMClient,
  world: SeededWorld,
  role: string,
): Promise<string[]> {
  const out = await iam.send(inAccount(EXAMPLE.eksAccount, new GetRoleCommand({ RoleName: role })));
  return subjectsOf(out.Role!.AssumeRolePolicyDocument!, {
    providerArn: world.oidcProviderArn,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: Number.MAX_SAFE_INTEGER,
  });
}

/** What a workspace pod is made of here: a user, a run, and the folder that stands for its volumes. */
export interface WorkspaceOptions {
  readonly issuer: OidcIssuer;
  readonly platform: FakePlatformApi;
  readonly server: ServerProcess;
  readonly caFile: string;
  readonly sts: string;
  readonly dir: string;
  readonly runId: string;
  readonly username: string;
  readonly groups: string[];
  /** The pod's projected token; by default the test issuer's (the demo runs without a cluster). */
  readonly podToken?: string;
  /** Flags of `irsa sidecar`, e.g. `--propagation-deadline-seconds`. */
  readonly args?: string[];
}

/**
 * Starts a workspace as the platform would: the user's token behind the pod-local proxy, the pod's
 * projected token and labels as files, and `irsa sidecar` with the mutation's environment.
 */
export async function startWorkspace(
  o: WorkspaceOptions,
): Promise<{ sidecar: ServerProcess; configFile: string }> {
  o.platform.setAccessToken(await o.issuer.userToken({ username: o.username, groups: o.groups }));
  await Deno.writeTextFile(
    `${o.dir}/token`,
    o.podToken ?? await o.issuer.serviceAccountToken({ serviceAccount: `run-${o.runId}` }),
  );
  await Deno.writeTextFile(
    `${o.dir}/labels`,
    `dominodatalab.com/execution-id="${o.runId}"\ndominodatalab.com/irsa-workload-type="edge-workload"\n`,
  );
  const env = sidecarEnv({
    apiProxy: o.platform.url,
    serverUrl: o.server.url,
    caFile: o.caFile,
    dir: o.dir,
    runId: o.runId,
    username: o.username,
    sts: o.sts,
  });
  return {
    sidecar: await startIrsaProcess("sidecar", o.args ?? [], env),
    configFile: env.AWS_CONFIG_FILE,
  };
}

/** The AWS endpoints of a process whose IAM and STS calls go through the strict STS. */
export function strictStsEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ENDPOINT_URL_IAM: endpoint,
    AWS_ENDPOINT_URL_STS: endpoint,
  };
}

/**
 * `irsa server` over HTTPS with the file store, as the e2e test and the demo run it; pod tokens
 * from `cluster`'s issuer (an API server of tests/fixtures/kube_apiserver.ts) when given, else
 * from the test issuer's cluster realm; `env` last (e.g. {@link strictStsEnv}).
 */
export function startFileStoreServer(
  moto: Moto,
  world: SeededWorld,
  issuer: OidcIssuer,
  tls: TestTls,
  mappingFile: string,
  cluster?: { readonly issuer: string; readonly caCertPath: string },
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  return startIrsaProcess(
    "server",
    // No run lookup here: the pod's token alone proves the pod, as the admin opts in.
    [
      "--tls-cert",
      tls.certPath,
      "--tls-key",
      tls.keyPath,
      "--mapping-file",
      mappingFile,
      "--trust-pod-token-alone",
    ],
    serverEnv(
      moto,
      world,
      issuer,
      {
        ...(cluster
          ? { IRSA_CLUSTER_ISSUER: cluster.issuer, IRSA_CA_FILE: cluster.caCertPath }
          : {}),
        ...env,
      },
    ),
    tls.caCert,
  );
}

/** What a subprocess test module shares: moto, its IAM client, a test TLS pair, the example roles. */
export interface MotoWorld {
  readonly moto: Moto;
  readonly iam: IAMClient;
  readonly tls: TestTls;
  readonly world: SeededWorld;
}

/**
 * Starts moto and a TLS pair once for the calling module, stops them after its last test, and
 * resets moto and seeds the example roles before each test; then hands the lot to `use` (the
 * module keeps them in variables of its own). Hooks the module registers after this one run after
 * it, so they can add roles of their own.
 */
export function useMotoWorld(use: (w: MotoWorld) => void): void {
  let moto: Moto;
  let iam: IAMClient;
  let tls: TestTls;
  Deno.test.beforeAll(async () => {
    moto = await startMoto();
    iam = moto.iamClient();
    tls = await makeTestTls();
  });
  Deno.test.afterAll(async () => {
    await moto.stop();
    await tls.cleanup();
  });
  Deno.test.beforeEach(async () => {
    await moto.reset();
    use({ moto, iam, tls, world: await seedExampleRoles(iam) });
  });
}

/** The flags of a server that keeps its mappings in a ConfigMap of this API server, as its admin. */
export function configMapStoreArgs(cluster: KubeApiServer): string[] {
  return [
    "--mapping-store",
    "configmap",
    "--kubernetes-api",
    cluster.url,
    "--kubernetes-token-file",
    cluster.adminTokenFile,
    "--kubernetes-ca-file",
    cluster.caCertPath,
  ];
}
