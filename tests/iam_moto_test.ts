// Tests the IAM adapter against a real moto (bare, and behind the strict STS's quota and rate), and
// its retries and timeouts against a scripted fake.

import assert from "node:assert/strict";
import { GetRoleCommand, IAMClient, LimitExceededException } from "@aws-sdk/client-iam";
import { StandardRetryStrategy } from "@smithy/util-retry";
import {
  createIamClient,
  createIamTrustPolicyStore,
  type IamOperation,
  type IamOutcome,
  IamRetryStrategy,
} from "../src/aws/iam.ts";
import { AppError } from "../src/lib/errors.ts";
import {
  accountMiddleware,
  EXAMPLE,
  freshProxyTrustPolicy,
  inAccount,
  type Moto,
  MOTO_REGION,
  seedExampleRoles,
  startMoto,
  TEST_CREDENTIALS,
} from "./fixtures/moto.ts";
import { startStrictSts } from "./fixtures/strict_sts.ts";

const ROLE = "acme-list-bucket-role";
const TWO_RUNS = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{
    Effect: "Allow",
    Principal: {
      Federated: `arn:aws:iam::${EXAMPLE.eksAccount}:oidc-provider/${EXAMPLE.oidcHost}`,
    },
    Action: "sts:AssumeRoleWithWebIdentity",
    Condition: {
      StringLike: {
        [`${EXAMPLE.oidcHost}:aud`]: "sts.amazonaws.com",
        [`${EXAMPLE.oidcHost}:sub`]: [
          "*:domino-compute:run-646d27b817c28b5ea4b5b0c1",
          "*:domino-compute:run-646f604955daf764547c5b77",
        ],
      },
    },
  }],
});

let moto: Moto;

Deno.test.beforeAll(async () => {
  moto = await startMoto();
});

Deno.test.afterAll(async () => {
  await moto?.stop();
});

Deno.test.beforeEach(async () => {
  await moto.reset();
});

/** The AppError `promise` rejects with; fails if it resolves or rejects with anything else. */
async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

Deno.test("moto: a trust policy written through the adapter reads back as the same JSON", async () => {
  const admin = moto.iamClient();
  const eks = moto.iamClient({ account: EXAMPLE.eksAccount });
  try {
    const world = await seedExampleRoles(admin);
    const calls: [IamOperation, IamOutcome][] = [];
    const store = createIamTrustPolicyStore(eks, {
      onCall: (op, outcome) => calls.push([op, outcome]),
    });

    assert.equal(
      await store.getTrustPolicy(ROLE),
      freshProxyTrustPolicy(world.oidcProviderArn, world.oidcHost),
    );
    await store.putTrustPolicy(ROLE, TWO_RUNS);
    assert.equal(await store.getTrustPolicy(ROLE), TWO_RUNS);
    assert.deepEqual(calls, [
      ["GetRole", "ok"],
      ["UpdateAssumeRolePolicy", "ok"],
      ["GetRole", "ok"],
    ]);

    // Why the adapter decodes: GetRole itself answers with the document URL-encoded.
    const raw = (await eks.send(new GetRoleCommand({ RoleName: ROLE }))).Role
      ?.AssumeRolePolicyDocument;
    assert.ok(raw !== undefined && raw.startsWith("%7B") && raw.includes("%22"), `raw: ${raw}`);
    assert.notEqual(raw, TWO_RUNS);
    assert.equal(decodeURIComponent(raw), TWO_RUNS);
  } finally {
    admin.destroy();
    eks.destroy();
  }
});

Deno.test("moto: proxy roles live in the EKS account and asset roles in the assets account", async () => {
  const admin = moto.iamClient();
  const eks = moto.iamClient({ account: EXAMPLE.eksAccount });
  const assets = moto.iamClient({ account: EXAMPLE.assetsAccount });
  try {
    const world = await seedExampleRoles(admin);
    assert.equal(
      world.oidcProviderArn,
      `arn:aws:iam::111111111111:oidc-provider/${EXAMPLE.oidcHost}`,
    );
    assert.deepEqual(
      world.pairs.map((pair) => [pair.proxyRoleArn, pair.assetRoleArn]),
      EXAMPLE.roleNames.map((name) => [
        `arn:aws:iam::111111111111:role/${name}`,
        `arn:aws:iam::222222222222:role/${name}`,
      ]),
    );

    const trustOf = async (client: IAMClient) =>
      JSON.parse(await createIamTrustPolicyStore(client).getTrustPolicy(ROLE));
    assert.equal(
      (await trustOf(eks)).Statement[0].Principal.Federated,
      world.oidcProviderArn,
    );
    assert.deepEqual((await trustOf(assets)).Statement[0].Principal, {
      AWS: "arn:aws:iam::111111111111:root",
    });
    // moto's default account (what "testing" credentials act in) has no such role.
    const missing = await rejection(createIamTrustPolicyStore(admin).getTrustPolicy(ROLE));
    assert.equal(missing.code, "iam_role_not_found");

    // The header is one way to pick an account; the server user's access key is the other, and
    // the only one a subprocess has.
    const server = createIamClient({
      region: MOTO_REGION,
      endpoint: moto.endpoint,
      credentials: world.serverCredentials,
    });
    try {
      assert.equal((await trustOf(server)).Statement[0].Principal.Federated, world.oidcProviderArn);
    } finally {
      server.destroy();
    }
    // The same explicit per-command choice seedExampleRoles uses.
    const asset = await admin.send(
      inAccount(EXAMPLE.assetsAccount, new GetRoleCommand({ RoleName: ROLE })),
    );
    assert.equal(asset.Role?.Arn, world.pairs[0].assetRoleArn);
  } finally {
    admin.destroy();
    eks.destroy();
    assets.destroy();
  }
});

Deno.test("moto: a missing role maps to iam_role_not_found for reads and writes", async () => {
  const eks = moto.iamClient({ account: EXAMPLE.eksAccount });
  try {
    const calls: [IamOperation, IamOutcome][] = [];
    const store = createIamTrustPolicyStore(eks, {
      onCall: (op, outcome) => calls.push([op, outcome]),
    });

    const read = await rejection(store.getTrustPolicy("no-such-role"));
    assert.equal(read.code, "iam_role_not_found");
    assert.equal(
      read.message,
      'Cannot read the trust policy of role "no-such-role": the role does not exist',
    );
    assert.equal(read.details.awsCode, "NoSuchEntity");
    assert.equal(read.details.httpStatus, 404);

    const write = await rejection(store.putTrustPolicy("no-such-role", TWO_RUNS));
    assert.equal(write.code, "iam_role_not_found");
    assert.match(write.message, /^Cannot update the trust policy of role "no-such-role"/);
    assert.deepEqual(calls, [
      ["GetRole", "iam_role_not_found"],
      ["UpdateAssumeRolePolicy", "iam_role_not_found"],
    ]);
  } finally {
    eks.destroy();
  }
});

Deno.test("moto: a document IAM rejects as malformed maps to invalid_policy", async () => {
  const admin = moto.iamClient();
  const eks = moto.iamClient({ account: EXAMPLE.eksAccount });
  try {
    await seedExampleRoles(admin);
    const store = createIamTrustPolicyStore(eks);
    const notTrust = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: "*" }, Action: "s3:GetObject" }],
    });
    const error = await rejection(store.putTrustPolicy(ROLE, notTrust));
    assert.equal(error.code, "invalid_policy");
    assert.equal(
      error.message,
      `Cannot update the trust policy of role "${ROLE}": IAM rejected the document as malformed`,
    );
  } finally {
    admin.destroy();
    eks.destroy();
  }
});

// ---- Retries and timeouts, against a fake IAM that answers from a script. ----

type Answer = { status: number; code?: string; message?: string } | "hang";

const IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/";

function iamErrorXml(code: string, message: string): string {
  return `<ErrorResponse xmlns="${IAM_XMLNS}"><Error><Type>Sender</Type><Code>${code}</Code>` +
    `<Message>${message}</Message></Error><RequestId>fake-request-id</RequestId></ErrorResponse>`;
}

const UPDATE_OK_XML = `<UpdateAssumeRolePolicyResponse xmlns="${IAM_XMLNS}"><ResponseMetadata>` +
  `<RequestId>fake-request-id</RequestId></ResponseMetadata></UpdateAssumeRolePolicyResponse>`;

/** A fake IAM on 127.0.0.1 that gives the scripted answers in order (the last one repeats). */
async function withFakeIam(
  answers: Answer[],
  fn: (endpoint: string, actions: string[]) => Promise<void>,
): Promise<void> {
  const actions: string[] = [];
  const release = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const form = new URLSearchParams(await request.text());
      actions.push(form.get("Action") ?? "?");
      const answer = answers[Math.min(actions.length, answers.length) - 1];
      if (answer === "hang") {
        await release.promise;
        return new Response("too late", { status: 500 });
      }
      const body = answer.code === undefined
        ? UPDATE_OK_XML
        : iamErrorXml(answer.code, answer.message ?? answer.code);
      return new Response(body, { status: answer.status, headers: { "content-type": "text/xml" } });
    },
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, actions);
  } finally {
    release.resolve();
    await server.shutdown();
  }
}

const noWait = { computeNextBackoffDelay: () => 0, setDelayBase: () => {} };

function fakeClient(endpoint: string, options: { timeoutMs?: number; maxAttempts?: number } = {}) {
  return createIamClient({
    region: MOTO_REGION,
    endpoint,
    credentials: TEST_CREDENTIALS,
    backoff: noWait,
    ...options,
  });
}

const QUOTA = {
  status: 409,
  code: "LimitExceeded",
  message: "Cannot exceed quota for ACLSizePerRole: 2048",
};
const THROTTLED = { status: 400, code: "Throttling", message: "Rate exceeded" };
const UNAVAILABLE = { status: 503, code: "ServiceUnavailable", message: "Service unavailable" };
const OK = { status: 200 };

Deno.test("fake IAM: LimitExceeded fails at once as policy_quota_exceeded", async () => {
  await withFakeIam([QUOTA], async (endpoint, actions) => {
    const client = fakeClient(endpoint, { maxAttempts: 5 });
    try {
      const error = await rejection(
        createIamTrustPolicyStore(client).putTrustPolicy(ROLE, TWO_RUNS),
      );
      assert.equal(error.code, "policy_quota_exceeded");
      assert.equal(
        error.message,
        `Cannot update the trust policy of role "${ROLE}": ` +
          "the policy is over its IAM size quota of 2048 characters",
      );
      assert.deepEqual(actions, ["UpdateAssumeRolePolicy"]);
      assert.equal(error.details.attempts, 1);
    } finally {
      client.destroy();
    }
  });
});

Deno.test("fake IAM: the SDK's own standard strategy would retry LimitExceeded", async () => {
  // Guards the reason IamRetryStrategy exists: if the SDK stops retrying quota errors, this fails.
  await withFakeIam([QUOTA], async (endpoint, actions) => {
    const client = new IAMClient({
      region: MOTO_REGION,
      endpoint,
      credentials: TEST_CREDENTIALS,
      retryStrategy: new StandardRetryStrategy({ maxAttempts: 3, backoff: noWait }),
    });
    try {
      await assert.rejects(
        createIamTrustPolicyStore(client).putTrustPolicy(ROLE, TWO_RUNS),
        { code: "policy_quota_exceeded" },
      );
      assert.equal(actions.length, 3);
    } finally {
      client.destroy();
    }
  });
});

Deno.test("fake IAM: Throttling and 5xx are retried with backoff until IAM answers", async () => {
  await withFakeIam([THROTTLED, UNAVAILABLE, OK], async (endpoint, actions) => {
    const delays: number[] = [];
    const client = createIamClient({
      region: MOTO_REGION,
      endpoint,
      credentials: TEST_CREDENTIALS,
      maxAttempts: 3,
      backoff: {
        computeNextBackoffDelay: (attempt) => (delays.push(attempt), 1),
        setDelayBase: () => {},
      },
    });
    try {
      await createIamTrustPolicyStore(client).putTrustPolicy(ROLE, TWO_RUNS);
      assert.equal(actions.length, 3);
      assert.deepEqual(delays, [0, 1]);
    } finally {
      client.destroy();
    }
  });
});

Deno.test("fake IAM: Throttling that outlasts maxAttempts fails as upstream_error", async () => {
  await withFakeIam([THROTTLED], async (endpoint, actions) => {
    const client = fakeClient(endpoint, { maxAttempts: 4 });
    try {
      const error = await rejection(createIamTrustPolicyStore(client).getTrustPolicy(ROLE));
      assert.equal(error.code, "upstream_error");
      assert.equal(
        error.message,
        `Cannot read the trust policy of role "${ROLE}": iam:GetRole failed with "Throttling"`,
      );
      assert.deepEqual(actions, ["GetRole", "GetRole", "GetRole", "GetRole"]);
    } finally {
      client.destroy();
    }
  });
});

Deno.test("fake IAM: AccessDenied maps to iam_access_denied naming the role and the action", async () => {
  const denied = {
    status: 403,
    code: "AccessDenied",
    message: "User: arn:aws:sts::111111111111:assumed-role/irsa/x is not authorized",
  };
  await withFakeIam([denied], async (endpoint, actions) => {
    const client = fakeClient(endpoint);
    try {
      const error = await rejection(
        createIamTrustPolicyStore(client).putTrustPolicy(ROLE, TWO_RUNS),
      );
      assert.equal(error.code, "iam_access_denied");
      assert.equal(
        error.message,
        `Cannot update the trust policy of role "${ROLE}": IAM denied iam:UpdateAssumeRolePolicy`,
      );
      // IAM's message names the caller; it goes to the log, not to the answer.
      assert.doesNotMatch(error.message, /assumed-role/);
      assert.match(String(error.details.awsMessage), /assumed-role/);
      assert.equal(actions.length, 1);
    } finally {
      client.destroy();
    }
  });
});

Deno.test("fake IAM: an answer slower than timeoutMs throws, each attempt", async () => {
  await withFakeIam(["hang"], async (endpoint, actions) => {
    const client = fakeClient(endpoint, { timeoutMs: 200, maxAttempts: 2 });
    try {
      const started = Date.now();
      const error = await rejection(createIamTrustPolicyStore(client).getTrustPolicy(ROLE));
      const elapsed = Date.now() - started;
      assert.equal(error.code, "upstream_error");
      assert.equal(
        error.message,
        `Cannot read the trust policy of role "${ROLE}": IAM did not answer in time`,
      );
      assert.equal(error.details.awsCode, "TimeoutError");
      assert.equal(actions.length, 2);
      assert.ok(elapsed >= 400 && elapsed < 3_000, `took ${elapsed} ms`);
    } finally {
      client.destroy();
    }
  });
});

Deno.test("IamRetryStrategy refuses LimitExceeded and grants Throttling a retry", async () => {
  type ErrorInfo = Parameters<IamRetryStrategy["refreshRetryTokenForRetry"]>[1];
  // The middleware classifies both as throttling (see the test of the SDK's own strategy above).
  const throttling = (error: Error) => ({ error, errorType: "THROTTLING" }) as ErrorInfo;
  const strategy = new IamRetryStrategy({ maxAttempts: 3, backoff: noWait });
  const token = await strategy.acquireInitialRetryToken("");

  const quota = new LimitExceededException({ message: QUOTA.message, $metadata: {} });
  await assert.rejects(strategy.refreshRetryTokenForRetry(token, throttling(quota)));
  // IAM does not model Throttling; the SDK names such errors after their wire code.
  const throttled = Object.assign(new Error("Rate exceeded"), { name: "Throttling" });
  const next = await strategy.refreshRetryTokenForRetry(token, throttling(throttled));
  assert.equal(next.getRetryCount(), 1);
});

Deno.test("strict IAM: its Throttling is retried until a write fits the rate, its LimitExceeded fails at once", async () => {
  const admin = moto.iamClient();
  const sts = startStrictSts({ motoEndpoint: moto.endpoint, throttlePerSecond: 1 });
  const waits: number[] = [];
  const client = createIamClient({
    region: MOTO_REGION,
    endpoint: sts.endpoint,
    credentials: TEST_CREDENTIALS,
    maxAttempts: 5,
    backoff: {
      computeNextBackoffDelay: (attempt) => (waits.push(attempt), 400),
      setDelayBase: () => {},
    },
  });
  client.middlewareStack.add(accountMiddleware(EXAMPLE.eksAccount), { step: "build" });
  try {
    await seedExampleRoles(admin);
    const store = createIamTrustPolicyStore(client);
    await store.putTrustPolicy(ROLE, TWO_RUNS);
    await store.putTrustPolicy(ROLE, TWO_RUNS); // within the same second: throttled, then retried
    assert.ok(waits.length >= 1 && waits.length <= 3, `waits: ${waits}`);
    assert.equal(await store.getTrustPolicy(ROLE), TWO_RUNS);

    await new Promise((r) => setTimeout(r, 1_000));
    waits.length = 0;
    const over = JSON.parse(TWO_RUNS);
    over.Statement[0].Condition.StringLike[`${EXAMPLE.oidcHost}:sub`] = Array.from(
      { length: 60 },
      (_, i) => `*:domino-compute:run-${String(i).padStart(24, "0")}`,
    );
    const error = await rejection(store.putTrustPolicy(ROLE, JSON.stringify(over)));
    assert.equal(error.code, "policy_quota_exceeded");
    assert.equal(error.details.attempts, 1);
    assert.deepEqual(waits, []);
  } finally {
    client.destroy();
    admin.destroy();
    await sts.close();
  }
});
