import assert from "node:assert/strict";
import { assumeRole, assumeRoleWithWebIdentity, StsError, type StsOptions } from "./sts.ts";

const ANSWER = (action: string, key: string) =>
  `<${action}Response><${action}Result><Credentials><AccessKeyId>${key}</AccessKeyId>` +
  `<SecretAccessKey>s&amp;cret</SecretAccessKey><SessionToken>tok&lt;en</SessionToken>` +
  `<Expiration>2026-12-04T17:00:00Z</Expiration></Credentials></${action}Result></${action}Response>`;

/** STS answered by a function; each request is kept. */
function fakeSts(answer: (form: URLSearchParams) => Response) {
  const requests: { headers: Headers; form: URLSearchParams }[] = [];
  const options: StsOptions = {
    endpoint: "https://sts.us-east-1.amazonaws.com",
    region: "us-east-1",
    timeoutMs: 1000,
    now: () => Date.UTC(2026, 11, 4, 16),
    fetch: async (_url, init) => {
      const form = new URLSearchParams(String(init!.body));
      requests.push({ headers: new Headers(init!.headers), form });
      return await Promise.resolve(answer(form));
    },
  };
  return { options, requests };
}

Deno.test("the chain's two calls: web identity unsigned, AssumeRole signed with the first's credentials", async () => {
  const sts = fakeSts((form) =>
    new Response(ANSWER(form.get("Action")!, `ASIA-${form.get("Action")}`))
  );
  const proxy = await assumeRoleWithWebIdentity(sts.options, "arn:proxy", "pod-token", "jdoe", 900);
  assert.equal(proxy.secretAccessKey, "s&cret");
  assert.equal(proxy.sessionToken, "tok<en");
  assert.equal(proxy.expiration, Date.UTC(2026, 11, 4, 17));
  const asset = await assumeRole(sts.options, proxy, "arn:asset", "jdoe", 900);
  assert.equal(asset.accessKeyId, "ASIA-AssumeRole");
  const [first, second] = sts.requests;
  assert.equal(first.headers.get("authorization"), null);
  assert.equal(first.form.get("WebIdentityToken"), "pod-token");
  assert.equal(first.form.get("DurationSeconds"), "900");
  assert.match(
    second.headers.get("authorization")!,
    /^AWS4-HMAC-SHA256 Credential=ASIA-AssumeRoleWithWebIdentity\/20261204\/us-east-1\/sts\/aws4_request, /,
  );
  assert.equal(second.headers.get("x-amz-security-token"), "tok<en");
  assert.equal(second.form.get("RoleArn"), "arn:asset");
  assert.equal(second.form.get("RoleSessionName"), "jdoe");
});

Deno.test("STS errors carry the code and message; an answer without credentials is refused", async () => {
  const denied = fakeSts(() =>
    new Response(
      "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>",
      { status: 403 },
    )
  );
  await assert.rejects(
    assumeRoleWithWebIdentity(denied.options, "arn:proxy", "t", "jdoe", 900),
    (e) => e instanceof StsError && e.code === "AccessDenied" && /Not authorized/.test(e.message),
  );
  const empty = fakeSts(() => new Response("<AssumeRoleResponse/>"));
  await assert.rejects(
    assumeRoleWithWebIdentity(empty.options, "arn:proxy", "t", "jdoe", 900),
    (e) => e instanceof StsError && e.code === "MalformedAnswer",
  );
});
