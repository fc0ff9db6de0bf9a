/**
 * A workspace pod for the credential endpoint's tests: moto (IAM, STS and S3), the test issuer,
 * the real server and the real sidecar as subprocesses, an object in the assets account's bucket,
 * and the run container's environment as the chart's Mutation sets it. STS calls go through the
 * strict STS of the tests (tests/fixtures/strict_sts.ts), which checks the pod's token and both
 * trust policies as AWS does; moto's own STS would accept any token for any role.
 */

import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import { EXAMPLE, MOTO_ACCOUNT_HEADER, seedExampleRoles, startMoto } from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import { startStrictSts } from "./fixtures/strict_sts.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { type ServerProcess, startIrsaProcess } from "./server_process.ts";
import { pairJson, sidecarEnv, startFileStoreServer } from "./world.ts";

export const RUN = "646d27b817c28b5ea4b5b0c1";
export const OBJECT_KEY = "data/hello.csv";
export const OBJECT_BODY = "greeting,who\nhello,acme\n";

/** An S3 request seen by the proxy; `mark` is the last mark a client sent before it. */
export interface S3Request {
  readonly mark: string;
  readonly method: string;
  readonly path: string;
  /** Undefined for an unsigned request. */
  readonly accessKeyId?: string;
}

/** Options of {@link startCredentialWorld}. */
export interface CredentialWorldOptions {
  /** Organizations of the user, each mapped to the role of the same suffix. */
  readonly roles: readonly string[];
  readonly sidecarArgs?: readonly string[];
}

/** What a test gets. */
export interface CredentialWorld {
  readonly sidecar: ServerProcess;
  readonly server: ServerProcess;
  readonly dir: string;
  readonly configFile: string;
  readonly authTokenFile: string;
  /** STS and S3 as clients see them: moto behind the recording proxy. */
  readonly aws: string;
  /** The S3 requests so far, in order. */
  readonly s3Requests: readonly S3Request[];
  /** Who holds an access key that STS handed out here (moto's GetCallerIdentity). */
  identityOfKey(accessKeyId: string): Promise<{ arn: string; account: string }>;
  /** The environment of the run container (the Mutation's variables, pointed at local parts). */
  runEnv(extra?: Record<string, string>): Record<string, string>;
  /** GET on the sidecar with the authorization token (or `token`). */
  credentials(path: string, token?: string | null): Promise<Response>;
  /** Who an access key the sidecar vends for `profile` is, by moto's GetCallerIdentity. */
  identityOf(profile: string): Promise<{ accessKeyId: string; arn: string; account: string }>;
  /** Maps or unmaps an organization's role on the server (as an admin). */
  mapping(org: string, role: string | null): Promise<void>;
  close(): Promise<void>;
}

/** The organization the world maps to `role`: `acme-list-bucket-role` → `irsa-iamrole-list-bucket`. */
export const orgOf = (role: string) => `irsa-iamrole-${role.replace(/^acme-|-role$/g, "")}`;

/** Starts the world; `close` it. */
export async function startCredentialWorld(o: CredentialWorldOptions): Promise<CredentialWorld> {
  const moto = await startMoto();
  const tls = await makeTestTls();
  const issuer = await startOidcIssuer();
  const platform = startFakePlatformApi();
  const dir = await Deno.makeTempDir();
  const iam = moto.iamClient();
  const closing: (() => Promise<unknown>)[] = [
    () => Promise.resolve(iam.destroy()),
    () => platform.close(),
    () => issuer.close(),
    () => moto.stop(),
    () => tls.cleanup(),
    () => Deno.remove(dir, { recursive: true }),
  ];
  const close = async () => {
    for (const step of closing.splice(0)) await step().catch(() => {});
  };
  try {
    const world = await seedExampleRoles(iam);
    // The assets account's bucket and one object (moto takes the account from its header).
    for (const [path, body] of [["", undefined], [`/${OBJECT_KEY}`, OBJECT_BODY]]) {
      const res = await fetch(`${moto.endpoint}/${EXAMPLE.bucket}${path}`, {
        method: "PUT",
        headers: { [MOTO_ACCOUNT_HEADER]: EXAMPLE.assetsAccount },
        body,
      });
      if (!res.ok) throw new Error(`moto S3 PUT ${path}: ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    }
    // STS that checks what it is asked: the pod token against the cluster issuer's keys, the
    // proxy role's trust policy, the asset role's trust and the proxy role's permission.
    const strict = startStrictSts({
      motoEndpoint: moto.endpoint,
      issuers: { [EXAMPLE.oidcHost]: { url: issuer.clusterIssuer } },
    });
    closing.unshift(() => strict.close());
    // Between every client (the sidecar included) and moto: records the credentials each STS
    // answer hands out, and the access key of each S3 request, after the marks clients send.
    const issued = new Map<
      string,
      { accessKeyId: string; secretAccessKey: string; sessionToken: string }
    >();
    const s3Requests: S3Request[] = [];
    let mark = "";
    const proxy = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const url = new URL(req.url);
        if (url.pathname.startsWith("/__mark__/")) {
          mark = decodeURIComponent(url.pathname.slice("/__mark__/".length));
          return new Response("marked\n");
        }
        // STS's Query API posts to "/"; everything else is S3.
        const base = url.pathname === "/" ? strict.endpoint : moto.endpoint;
        const upstream = await fetch(`${base}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          body: req.body,
        });
        if (url.pathname !== "/") {
          const key = /Credential=([^/]+)\//.exec(req.headers.get("authorization") ?? "")?.[1] ??
            url.searchParams.get("X-Amz-Credential")?.split("/")[0];
          s3Requests.push({ mark, method: req.method, path: url.pathname, accessKeyId: key });
          return upstream;
        }
        const text = await upstream.text();
        const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(text)?.[1];
        const accessKeyId = tag("AccessKeyId");
        if (accessKeyId) {
          issued.set(accessKeyId, {
            accessKeyId,
            secretAccessKey: tag("SecretAccessKey")!,
            sessionToken: tag("SessionToken")!,
          });
        }
        return new Response(text, { status: upstream.status, headers: upstream.headers });
      },
    );
    closing.unshift(() => proxy.shutdown());
    const aws = `http://127.0.0.1:${proxy.addr.port}`;

    await Deno.writeTextFile(
      `${dir}/mappings.json`,
      JSON.stringify(
        Object.fromEntries(o.roles.map((r) => [orgOf(r), JSON.stringify(pairJson(r))])),
      ),
    );
    const server = await startFileStoreServer(moto, world, issuer, tls, `${dir}/mappings.json`);
    closing.unshift(() => server.stop());
    platform.setAccessToken(
      await issuer.userToken({ username: "jdoe", groups: o.roles.map(orgOf) }),
    );
    await Deno.writeTextFile(
      `${dir}/token`,
      await issuer.serviceAccountToken({ serviceAccount: `run-${RUN}` }),
    );
    await Deno.writeTextFile(`${dir}/labels`, `dominodatalab.com/execution-id="${RUN}"\n`);
    const env = sidecarEnv({
      apiProxy: platform.url,
      serverUrl: server.url,
      caFile: tls.caCertPath,
      dir,
      runId: RUN,
      username: "jdoe",
      sts: aws,
    });
    const sidecar = await startIrsaProcess("sidecar", [...(o.sidecarArgs ?? [])], env);
    closing.unshift(() => sidecar.stop());
    const authTokenFile = `${dir}/.aws/irsa-credentials-token`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await sidecar.fetch("/healthz");
      const ok = res.status === 200;
      await res.body?.cancel();
      if (ok) break;
      if (Date.now() > deadline) {
        throw new Error(`the sidecar did not sync:\n${sidecar.logs.join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const admin = await issuer.userToken({ username: "boss", admin: true });

    const credentials = async (path: string, token?: string | null) => {
      const value = token === undefined ? (await Deno.readTextFile(authTokenFile)).trim() : token;
      return await sidecar.fetch(path, value === null ? {} : { headers: { Authorization: value } });
    };
    return {
      sidecar,
      server,
      dir,
      configFile: env.AWS_CONFIG_FILE,
      authTokenFile,
      aws,
      s3Requests,
      async identityOfKey(accessKeyId) {
        const c = issued.get(accessKeyId);
        if (!c) throw new Error(`access key ${accessKeyId} was not handed out by STS here`);
        const sts = new STSClient({ endpoint: moto.endpoint, region: "us-east-1", credentials: c });
        try {
          const who = await sts.send(new GetCallerIdentityCommand({}));
          return { arn: who.Arn!, account: who.Account! };
        } finally {
          sts.destroy();
        }
      },
      runEnv: (extra = {}) => ({
        HOME: dir,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        AWS_CONFIG_FILE: env.AWS_CONFIG_FILE,
        AWS_SHARED_CREDENTIALS_FILE: `${dir}/no-credentials-file`,
        AWS_WEB_IDENTITY_TOKEN_FILE: env.AWS_WEB_IDENTITY_TOKEN_FILE,
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `${sidecar.url}/credentials`,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: authTokenFile,
        AWS_REGION: "us-east-1",
        AWS_DEFAULT_REGION: "us-east-1",
        AWS_STS_REGIONAL_ENDPOINTS: "regional",
        DOMINO_IRSA_PROXY: sidecar.url,
        // Test only: a pod reaches the real STS and S3.
        AWS_ENDPOINT_URL_STS: aws,
        AWS_ENDPOINT_URL_S3: aws,
        AWS_EC2_METADATA_DISABLED: "true",
        ...extra,
      }),
      credentials,
      async identityOf(profile) {
        const res = await credentials(`/credentials/${profile}`);
        const c = await res.json();
        if (res.status !== 200) throw new Error(`/credentials/${profile}: ${JSON.stringify(c)}`);
        const sts = new STSClient({
          endpoint: moto.endpoint,
          region: "us-east-1",
          credentials: {
            accessKeyId: c.AccessKeyId,
            secretAccessKey: c.SecretAccessKey,
            sessionToken: c.Token,
          },
        });
        try {
          const who = await sts.send(new GetCallerIdentityCommand({}));
          return { accessKeyId: c.AccessKeyId, arn: who.Arn!, account: who.Account! };
        } finally {
          sts.destroy();
        }
      },
      async mapping(org, role) {
        const res = await server.fetch(
          role ? "/update_role_mapping" : "/delete_role_mapping",
          {
            method: role ? "POST" : "DELETE",
            headers: { Authorization: `Bearer ${admin}` },
            body: JSON.stringify(
              role ? { domino_org: org, ...pairJson(role) } : { domino_org: org },
            ),
          },
        );
        if (res.status !== 200) {
          throw new Error(`mapping ${org}: ${res.status} ${await res.text()}`);
        }
        await res.body?.cancel();
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
