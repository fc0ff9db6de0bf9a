/**
 * `irsa admin` against the real server process over HTTPS (moto for IAM, the file store, the
 * platform API's fake for users): every command's readable output (golden files in
 * tests/testdata/admin/) and JSON, dry runs that change nothing, prune and its revocation, and
 * explain's failing step in each case.
 */
import assert from "node:assert/strict";
import {
  CreateRoleCommand,
  type IAMClient,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { startFakePlatformApi } from "./fakes/platform_api.ts";
import {
  EXAMPLE,
  freshProxyTrustPolicy,
  inAccount,
  type Moto,
  type SeededWorld,
} from "./fixtures/moto.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { Conformance } from "./openapi_conformance.ts";
import { runMain, startServerProcess } from "./server_process.ts";
import { heldSubjects, pairJson, serverEnv, useMotoWorld } from "./world.ts";

const [LIST_ROLE, READ_ROLE, UPDATE_ROLE] = EXAMPLE.roleNames;
const MANUAL_ROLE = "acme-manual-role";
const AUDIENCE_ROLE = "acme-audience-role";
const LIST_ORG = "irsa-iamrole-list-bucket";
const READ_ORG = "irsa-iamrole-read-bucket";
const RUNS = {
  jdoe: "646d27b817c28b5ea4b5b0c1",
  nomap: "646f604955daf764547c5b77",
  full: "6470000000000000000000a1",
  manual: "6470000000000000000000b2",
  aud: "6470000000000000000000c3",
};
const subjectOf = (run: string) => `*:domino-compute:run-${run}`;
const proxyArn = (name: string) => `arn:aws:iam::${EXAMPLE.eksAccount}:role/${name}`;
const GOLDEN = new URL("./testdata/admin/", import.meta.url);

let moto: Moto;
let iam: IAMClient;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, iam, tls, world } = w));
Deno.test.beforeEach(async () => {
  for (const name of [MANUAL_ROLE, AUDIENCE_ROLE]) {
    await iam.send(inAccount(
      EXAMPLE.eksAccount,
      new CreateRoleCommand({
        RoleName: name,
        AssumeRolePolicyDocument: freshProxyTrustPolicy(world.oidcProviderArn, EXAMPLE.oidcHost),
      }),
    ));
  }
});

const setPolicy = (role: string, document: string) =>
  iam.send(inAccount(
    EXAMPLE.eksAccount,
    new UpdateAssumeRolePolicyCommand({ RoleName: role, PolicyDocument: document }),
  ));

/** A trust policy of the example provider holding `subjects` under `audience`. */
function policyWith(subjects: string[], audience = "sts.amazonaws.com") {
  const host = EXAMPLE.oidcHost;
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{
      Effect: "Allow",
      Principal: { Federated: world.oidcProviderArn },
      Action: "sts:AssumeRoleWithWebIdentity",
      Condition: { StringLike: { [`${host}:aud`]: audience, [`${host}:sub`]: subjects } },
    }],
  });
}

/** The server, its users, and `irsa admin` run as a subprocess against it. */
async function startWorld() {
  const platform = startFakePlatformApi();
  const issuer = await startOidcIssuer();
  const dir = await Deno.makeTempDir();
  const users: Record<string, string[]> = {
    jdoe: [LIST_ORG, READ_ORG],
    nomap: ["unmapped-org"],
    full: ["irsa-full"],
    manual: ["irsa-manual"],
    aud: ["irsa-audience"],
  };
  for (const [name, organizations] of Object.entries(users)) {
    platform.addUser({
      token: `user-token-${name}`,
      canonicalName: name,
      canonicalId: `u-${name}`,
      organizations,
    });
  }
  platform.addUser({
    token: "user-token-boss",
    apiKey: "boss-api-key",
    canonicalName: "boss",
    canonicalId: "u-boss",
    isAdmin: true,
  });
  const caFile = `${dir}/ca.pem`;
  await Deno.writeTextFile(caFile, tls.caCert);
  const mappingFile = `${dir}/mappings.json`;
  const server = await startServerProcess(
    [
      "--tls-cert",
      tls.certPath,
      "--tls-key",
      tls.keyPath,
      "--verifier",
      "domino",
      "--mapping-file",
      mappingFile,
      "--trust-pod-token-alone",
      "--cleanup-interval-seconds",
      "0",
    ],
    serverEnv(moto, world, issuer, { DOMINO_USER_HOST: platform.url }),
    tls.caCert,
  );
  /** `irsa admin <args>` as the admin, trusting the server's CA. */
  const admin = (args: string[], env: Record<string, string> = {}) =>
    runMain(["admin", ...args], {
      IRSA_SERVER: server.url,
      DOMINO_IRSA_SSL_CERT: caFile,
      IRSA_TOKEN: "user-token-boss",
      ...env,
    });
  /** The user's pod syncs, as its sidecar does. */
  const sync = async (user: string) => {
    const run = RUNS[user as keyof typeof RUNS];
    const res = await server.fetch("/map_iam_roles_to_pod_sa", {
      method: "POST",
      headers: {
        Authorization: `Bearer user-token-${user}`,
        Accept: "application/json",
        "X-Irsa-Workload-Token": await issuer.serviceAccountToken({ serviceAccount: `run-${run}` }),
      },
      body: JSON.stringify({ run_id: run, irsa_workload_type: "edge-workload" }),
    });
    return { status: res.status, json: await res.json() };
  };
  const writeFile = async (name: string, text: string) => {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    return `${dir}/${name}`;
  };
  return {
    server,
    platform,
    dir,
    mappingFile,
    admin,
    sync,
    writeFile,
    held: (role: string) => heldSubjects(iam, world, role),
    async [Symbol.asyncDispose]() {
      await server.stop();
      await platform.close();
      await issuer.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Compares readable output with its golden file; UPDATE_GOLDEN=1 writes it instead. */
async function golden(name: string, actual: string) {
  const text = actual.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, "<time>");
  const url = new URL(name, GOLDEN);
  if (Deno.env.get("UPDATE_GOLDEN") === "1") {
    await Deno.mkdir(GOLDEN, { recursive: true });
    await Deno.writeTextFile(url, text);
    return;
  }
  assert.equal(text, await Deno.readTextFile(url), `golden file tests/testdata/admin/${name}`);
}

const MAPPINGS_YAML = `# The example organizations
all_role_mappings:
  ${LIST_ORG}:
    - iam_role_arn: ${pairJson(LIST_ROLE).iam_role_arn}
      proxy_iam_role_arn: ${pairJson(LIST_ROLE).proxy_iam_role_arn}
  ${READ_ORG}:
    iam_role_arn: ${pairJson(READ_ROLE).iam_role_arn}
    proxy_iam_role_arn: ${pairJson(READ_ROLE).proxy_iam_role_arn}
`;

/** Everything a change could touch: the mapping file and every proxy role's subjects in moto. */
async function snapshot(w: Awaited<ReturnType<typeof startWorld>>) {
  const file = await Deno.readTextFile(w.mappingFile).catch(() => "(none)");
  const roles = await Promise.all(
    [LIST_ROLE, READ_ROLE, UPDATE_ROLE, MANUAL_ROLE, AUDIENCE_ROLE].map((r) => w.held(r)),
  );
  const grants = await Deno.readTextFile(`${w.dir}/irsa-grants.json`).catch(() => "(none)");
  return { file, roles, grants };
}

Deno.test("admin mappings apply, get and --dry-run: readable and JSON; a dry run changes nothing", async () => {
  await using w = await startWorld();
  const file = await w.writeFile("mappings.yaml", MAPPINGS_YAML);

  // The file store creates its (empty) file at its first read, whoever reads: before the dry run.
  assert.equal((await w.admin(["mappings", "get"])).stdout, "No mappings.\n");
  const before = await snapshot(w);
  const dry = await w.admin(["mappings", "apply", "-f", file, "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  await golden("apply_dry_run.txt", dry.stdout);
  assert.deepEqual(await snapshot(w), before, "the dry run changed nothing");

  const applied = await w.admin(["mappings", "apply", "-f", file, "-o", "json"]);
  assert.equal(applied.code, 0, applied.stderr);
  const answer = JSON.parse(applied.stdout);
  assert.equal(answer.dry_run, false);
  assert.deepEqual(answer.changes.map((c: { action: string }) => c.action), ["added", "added"]);

  const got = await w.admin(["mappings", "get"]);
  assert.equal(got.code, 0, got.stderr);
  await golden("mappings_get.txt", got.stdout);
  const json = JSON.parse((await w.admin(["mappings", "get", "-o", "json"])).stdout);
  assert.deepEqual(Object.keys(json.all_role_mappings), [LIST_ORG, READ_ORG]);
  assert.equal(json.all_role_mappings[READ_ORG][0].proxy_iam_role_arn, proxyArn(READ_ROLE));

  // What get answers applies back as it is: nothing changes.
  const yaml = await w.admin(["mappings", "get", "-o", "yaml"]);
  const again = await w.admin([
    "mappings",
    "apply",
    "-f",
    await w.writeFile("again.yaml", yaml.stdout),
    "-o",
    "json",
    "--prune",
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    JSON.parse(again.stdout).changes.map((c: { action: string }) => c.action),
    ["unchanged", "unchanged"],
  );
});

Deno.test("admin mappings apply refuses a bad pair before anything changes, and says why", async () => {
  await using w = await startWorld();
  await w.admin(["mappings", "apply", "-f", await w.writeFile("m.yaml", MAPPINGS_YAML)]);
  const before = await snapshot(w);
  const bad = await w.writeFile(
    "bad.json",
    JSON.stringify({
      [LIST_ORG]: pairJson(UPDATE_ROLE),
      other: { iam_role_arn: "not-an-arn", proxy_iam_role_arn: proxyArn(LIST_ROLE) },
    }),
  );
  const out = await w.admin(["mappings", "apply", "-f", bad, "--prune"]);
  assert.equal(out.code, 1);
  assert.equal(out.stdout, "");
  assert.match(out.stderr, /not-an-arn/);
  // Past the schema, the server's own rules: an organization mapped to no pairs.
  const empty = await w.writeFile("empty.json", JSON.stringify({ [LIST_ORG]: [] }));
  const refused = await w.admin(["mappings", "apply", "-f", empty]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /maps to no pairs/);
  // And the editable set: a proxy role of another account is refused, naming the organization.
  const foreign = await w.writeFile(
    "foreign.json",
    JSON.stringify({
      [READ_ORG]: {
        ...pairJson(READ_ROLE),
        proxy_iam_role_arn: "arn:aws:iam::333333333333:role/x",
      },
    }),
  );
  const outside = await w.admin(["mappings", "apply", "-f", foreign, "--dry-run"]);
  assert.equal(outside.code, 1);
  assert.match(
    outside.stderr,
    /"irsa-iamrole-read-bucket" pair 0: proxy role .*333333333333.* irsa may edit/,
  );
  assert.deepEqual(await snapshot(w), before, "nothing refused changed anything");
});

Deno.test("admin mappings apply --prune removes an organization and revokes what it entitled", async () => {
  await using w = await startWorld();
  await w.admin(["mappings", "apply", "-f", await w.writeFile("m.yaml", MAPPINGS_YAML)]);
  assert.equal((await w.sync("jdoe")).status, 200);
  const subject = subjectOf(RUNS.jdoe);
  assert.deepEqual(await w.held(READ_ROLE), [subject]);

  const only = await w.writeFile(
    "list-only.json",
    JSON.stringify({ all_role_mappings: { [LIST_ORG]: [pairJson(LIST_ROLE)] } }),
  );
  // Without --prune the other organization is kept.
  const kept = JSON.parse(
    (await w.admin(["mappings", "apply", "-f", only, "--dry-run", "-o", "json"])).stdout,
  );
  assert.deepEqual(kept.changes.map((c: { action: string }) => c.action), ["unchanged", "kept"]);

  const before = await snapshot(w);
  const dry = await w.admin(["mappings", "apply", "-f", only, "--prune", "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  await golden("apply_prune_dry_run.txt", dry.stdout);
  assert.deepEqual(await snapshot(w), before, "the dry run changed nothing");

  const pruned = await w.admin(["mappings", "apply", "-f", only, "--prune"]);
  assert.equal(pruned.code, 0, pruned.stderr);
  await golden("apply_prune.txt", pruned.stdout);
  assert.deepEqual(await w.held(READ_ROLE), [], "the revocation followed");
  assert.deepEqual(await w.held(LIST_ROLE), [subject]);
  const mappings = JSON.parse((await w.admin(["mappings", "get", "-o", "json"])).stdout);
  assert.deepEqual(Object.keys(mappings.all_role_mappings), [LIST_ORG]);
});

Deno.test("admin capacity and trust: bars, holders and JSON", async () => {
  await using w = await startWorld();
  await w.admin(["mappings", "apply", "-f", await w.writeFile("m.yaml", MAPPINGS_YAML)]);
  assert.equal((await w.sync("jdoe")).status, 200);
  // A subject irsa did not grant: shown, but with no holder.
  await setPolicy(
    LIST_ROLE,
    policyWith([subjectOf(RUNS.jdoe), "system:serviceaccount:other:hand-made"]),
  );

  const capacity = await w.admin(["capacity"]);
  assert.equal(capacity.code, 0, capacity.stderr);
  await golden("capacity.txt", capacity.stdout);
  const cj = JSON.parse((await w.admin(["capacity", "-o", "json"])).stdout);
  assert.deepEqual(cj.roles.map((r: { subjects: number }) => r.subjects), [1, 1]);

  const trust = await w.admin(["trust", proxyArn(LIST_ROLE)]);
  assert.equal(trust.code, 0, trust.stderr);
  await golden("trust.txt", trust.stdout);
  const tj = JSON.parse((await w.admin(["trust", proxyArn(LIST_ROLE), "-o", "json"])).stdout);
  assert.deepEqual(
    tj.subjects.map((
      s: { subject: string; user?: string; managed: boolean },
    ) => [s.subject, s.user, s.managed]),
    [
      [subjectOf(RUNS.jdoe), "jdoe", true],
      ["system:serviceaccount:other:hand-made", undefined, false],
    ],
  );
  assert.equal(tj.subjects[0].workload_type, "edge-workload");
  assert.equal(tj.subjects[0].run_id, RUNS.jdoe);

  // The API key works as a credential too; a non-admin's token does not.
  const byKey = await w.admin(["capacity", "-o", "json"], {
    IRSA_TOKEN: "",
    DOMINO_USER_API_KEY: "boss-api-key",
  });
  assert.equal(byKey.code, 0, byKey.stderr);
  // Inside a workspace: the pod-local proxy's token; or a token file.
  w.platform.setAccessToken("user-token-boss");
  const byProxy = await w.admin(["capacity", "-o", "json"], {
    IRSA_TOKEN: "",
    DOMINO_API_PROXY: w.platform.url,
  });
  assert.equal(byProxy.code, 0, byProxy.stderr);
  const tokenFile = await w.writeFile("token", "user-token-boss\n");
  const byFile = await w.admin(["capacity", "--token-file", tokenFile], { IRSA_TOKEN: "wrong" });
  assert.equal(byFile.code, 0, byFile.stderr);
  const denied = await w.admin(["capacity"], { IRSA_TOKEN: "user-token-jdoe" });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /403/);
});

Deno.test("admin explain names the failing step: none, no mapped organization, full pool, flag false, audience", async () => {
  await using w = await startWorld();
  const many = Array.from(
    { length: 38 },
    (_, i) => `*:domino-compute:run-${i.toString(16).padStart(24, "e")}`,
  );
  await setPolicy(UPDATE_ROLE, policyWith(many));
  await setPolicy(AUDIENCE_ROLE, policyWith([subjectOf(RUNS.aud)], "sts.amazonaws.com.cn"));
  const doc = {
    [LIST_ORG]: pairJson(LIST_ROLE),
    [READ_ORG]: pairJson(READ_ROLE),
    "irsa-full": pairJson(UPDATE_ROLE),
    "irsa-manual": {
      ...pairJson(MANUAL_ROLE, LIST_ROLE),
      update_iam_role_trust_policy: "false",
    },
    "irsa-audience": {
      ...pairJson(AUDIENCE_ROLE, READ_ROLE),
      update_iam_role_trust_policy: false,
    },
  };
  const applied = await w.admin([
    "mappings",
    "apply",
    "-f",
    await w.writeFile("m.json", JSON.stringify(doc)),
  ]);
  assert.equal(applied.code, 0, applied.stderr);
  for (const user of Object.keys(RUNS)) await w.sync(user);

  const explain = async (user: string, profile: string) => {
    const args = [
      "explain",
      "--user",
      user,
      "--run",
      RUNS[user as keyof typeof RUNS],
      "--profile",
      profile,
    ];
    const readable = await w.admin(args);
    const json = await w.admin([...args, "-o", "json"]);
    return { readable, json: JSON.parse(json.stdout), code: json.code };
  };

  const ok = await explain("jdoe", LIST_ROLE);
  assert.equal(ok.code, 0, ok.readable.stderr);
  assert.equal(ok.json.ok, true);
  await golden("explain_ok.txt", ok.readable.stdout);

  const nomap = await explain("nomap", LIST_ROLE);
  assert.equal(nomap.code, 1);
  assert.equal(nomap.json.failed_step, "mappings");
  assert.match(nomap.json.steps[0].detail, /unmapped-org.*grant record/);

  const full = await explain("full", UPDATE_ROLE);
  assert.equal(full.json.failed_step, "proxy_role");
  await golden("explain_full.txt", full.readable.stdout);

  const manual = await explain("manual", LIST_ROLE);
  assert.equal(manual.json.failed_step, "update_trust_policy");
  assert.deepEqual(await w.held(MANUAL_ROLE), [], "irsa left the admin's role alone");

  const aud = await explain("aud", READ_ROLE);
  assert.equal(aud.json.failed_step, "provider_audience");
  assert.equal(
    aud.json.steps.find((s: { id: string }) => s.id === "subject_in_policy").status,
    "passed",
  );
  assert.match(aud.readable.stdout, /sts\.amazonaws\.com\.cn/);

  const unknown = await w.admin(["explain", "--user", "nobody", "-o", "json"]);
  assert.equal(JSON.parse(unknown.stdout).failed_step, "organizations");
});

Deno.test("irsa admin: usage errors exit 2, --help on every command exits 0", async () => {
  const usage = await runMain(["admin", "mappings", "apply"], { IRSA_TOKEN: "t" });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /needs --filename/);
  assert.equal((await runMain(["admin", "capacity", "--bogus"])).code, 2);
  assert.equal((await runMain(["admin", "trust"])).code, 2);
  assert.equal((await runMain(["admin", "capacity", "-o", "xml"])).code, 2);
  const noCreds = await runMain(["admin", "capacity", "--server", "https://127.0.0.1:1"]);
  assert.equal(noCreds.code, 2);
  assert.match(noCreds.stderr, /no credentials/);
  for (
    const cmd of [[], ["mappings", "get"], ["mappings", "apply"], ["capacity"], ["trust"], [
      "explain",
    ], ["report"]]
  ) {
    const help = await runMain(["admin", ...cmd, "--help"]);
    assert.equal(help.code, 0, cmd.join(" "));
    assert.match(help.stdout, /Usage: irsa admin/);
  }
});

Deno.test("the admin routes' answers keep to /openapi.json (the real server process)", async () => {
  await using w = await startWorld();
  const conformance = new Conformance(await (await w.server.fetch("/openapi.json")).json());
  await w.admin(["mappings", "apply", "-f", await w.writeFile("m.yaml", MAPPINGS_YAML)]);
  await w.sync("jdoe");
  const call = async (path: string, body: unknown, token = "user-token-boss") => {
    const res = await w.server.fetch(path, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    await conformance.checkResponse("POST", path, res);
    return { status: res.status, json: await res.json() };
  };
  const only = { all_role_mappings: { [LIST_ORG]: pairJson(LIST_ROLE) } };
  assert.equal((await call("/trust", { proxy_iam_role_arn: proxyArn(LIST_ROLE) })).status, 200);
  assert.equal((await call("/trust", { proxy_iam_role_arn: "nope" })).status, 400);
  assert.equal((await call("/trust", { proxy_iam_role_arn: proxyArn("missing") })).status, 404);
  // Another account's role of the same name (the asset role): never read as this account's.
  const asset = `arn:aws:iam::${EXAMPLE.assetsAccount}:role/${LIST_ROLE}`;
  const elsewhere = await call("/trust", { proxy_iam_role_arn: asset });
  assert.equal(elsewhere.status, 400, JSON.stringify(elsewhere.json));
  assert.equal(elsewhere.json.code, "role_not_editable");
  assert.match(elsewhere.json.message, /222222222222/);
  assert.equal((await call("/explain", { user: "jdoe", run_id: RUNS.jdoe })).status, 200);
  assert.equal((await call("/explain", { user: "nobody" })).status, 200);
  assert.equal((await call("/explain", { user: "jdoe" }, "user-token-jdoe")).status, 403);
  assert.equal(
    (await call("/apply_role_mappings", { ...only, dry_run: true, prune: true })).status,
    200,
  );
  const applied = await call("/apply_role_mappings", { ...only, prune: true });
  assert.equal(applied.status, 200);
  assert.equal(applied.json.revoked_subjects, 1);
  assert.equal(
    (await call("/apply_role_mappings", { all_role_mappings: { "bad org": pairJson(LIST_ROLE) } }))
      .status,
    400,
  );
  // Names a parser would drop are refused, not lost: the document is applied whole or not at all.
  for (const name of ["__proto__", "prototype", "toString"]) {
    const doc = JSON.parse(`{${JSON.stringify(name)}: ${JSON.stringify(pairJson(LIST_ROLE))}}`);
    const refused = await call("/apply_role_mappings", { all_role_mappings: doc, prune: true });
    assert.equal(refused.status, 400, name);
    assert.match(refused.json.message, new RegExp(name.replace(/_/g, "_")), name);
  }
  const res = await w.server.fetch("/capacity", {
    headers: { Authorization: "Bearer user-token-boss" },
  });
  await conformance.checkResponse("GET", "/capacity", res);
  assert.equal(res.status, 200);
  assert.ok(conformance.checked.size >= 8);
});

/** Debian's chromium, or why there is none (outside CI the report test is then skipped). */
const CHROMIUM = "/usr/bin/chromium";
const chromiumMissing = (() => {
  try {
    Deno.statSync(CHROMIUM);
    return undefined;
  } catch {
    return `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`;
  }
})();
if (chromiumMissing && Deno.env.get("CI") !== "true") {
  console.error(`tests/admin_test.ts: skipping the HTML report test: ${chromiumMissing}`);
}

/** Runs headless Chromium on `url` with a fresh profile; returns its standard output. */
async function chromium(url: string, flags: string[]): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "irsa-chromium-" });
  try {
    const out = await new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        `--user-data-dir=${profile}`,
        ...flags,
        url,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(90_000),
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}

Deno.test({
  name:
    "admin report --html: one self-contained page that headless Chromium shows with every role and its fill",
  ignore: chromiumMissing !== undefined && Deno.env.get("CI") !== "true",
  async fn() {
    await using w = await startWorld();
    await setPolicy(
      UPDATE_ROLE,
      policyWith(
        Array.from(
          { length: 6 },
          (_, i) => `*:domino-compute:run-${i.toString(16).padStart(24, "d")}`,
        ),
      ),
    );
    const doc = {
      [LIST_ORG]: pairJson(LIST_ROLE),
      [READ_ORG]: pairJson(READ_ROLE),
      "irsa-full": pairJson(UPDATE_ROLE),
      "irsa-manual": { ...pairJson(MANUAL_ROLE, LIST_ROLE), update_iam_role_trust_policy: "false" },
    };
    await w.admin(["mappings", "apply", "-f", await w.writeFile("m.json", JSON.stringify(doc))]);
    await w.sync("jdoe");
    const file = `${w.dir}/report.html`;
    const out = await w.admin(["report", "--html", file]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, "");
    const html = await Deno.readTextFile(file);
    // Self-contained and readable without JavaScript: no scripts, nothing fetched from elsewhere.
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(/i);
    assert.doesNotMatch(html, /(src|href)\s*=/i);

    const shot = `${w.dir}/report.png`;
    await chromium(`file://${file}`, [`--screenshot=${shot}`, "--window-size=1400,1500"]);
    const png = await Deno.readFile(shot);
    assert.deepEqual([...png.slice(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
    assert.ok(png.length > 10_000, "the screenshot shows something");
    if (Deno.env.get("UPDATE_GOLDEN") === "1") {
      await Deno.copyFile(shot, new URL("../docs/admin_report.png", import.meta.url));
    }

    const dom = await chromium(`file://${file}`, ["--dump-dom"]);
    const capacity = JSON.parse((await w.admin(["capacity", "-o", "json"])).stdout).roles as {
      proxy_iam_role_arn: string;
      managed: boolean;
      characters?: number;
      quota?: number;
    }[];
    assert.equal(capacity.length, 4);
    for (const role of capacity) {
      const row = new RegExp(`<tr data-role="${role.proxy_iam_role_arn}">(.*?)</tr>`, "s").exec(
        dom,
      );
      assert.ok(row, `the DOM shows ${role.proxy_iam_role_arn}`);
      if (!role.managed) {
        assert.match(row[1], /not managed/);
        continue;
      }
      const pct = Math.round((100 * role.characters!) / role.quota!);
      assert.match(
        row[1],
        new RegExp(`data-fill="${pct}">${pct}%<`),
        `${role.proxy_iam_role_arn} fill`,
      );
      assert.match(row[1], new RegExp(`width: ?${Math.min(100, pct)}%`), "its bar");
    }
    assert.match(dom, /jdoe/, "who holds the roles");
    assert.match(dom, /mappings applied/, "the last changes from the audit trail");
  },
});

Deno.test("irsa --help points to irsa admin", async () => {
  const help = await runMain(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /irsa admin --help/);
});
