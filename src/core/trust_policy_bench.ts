import { editTrustPolicy, oidcProviderArn } from "./trust_policy.ts";

const HOST = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const OPTS = {
  providerArn: oidcProviderArn("111111111111", HOST),
  audience: "sts.amazonaws.com",
  format: "wildcard" as const,
  quota: 4096,
};
const run = (i: number) => `*:domino-compute:run-${i.toString(16).padStart(24, "0")}`;
const FRESH = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{
    Effect: "Allow",
    Principal: { Federated: OPTS.providerArn },
    Action: "sts:AssumeRoleWithWebIdentity",
    Condition: { StringLike: { [`${HOST}:aud`]: "sts.amazonaws.com", [`${HOST}:sub`]: "" } },
  }],
});
const HALF_FULL =
  editTrustPolicy(FRESH, { add: Array.from({ length: 30 }, (_, i) => run(i)) }, OPTS).document;
const ENCODED = encodeURIComponent(HALF_FULL);

Deno.bench("trust policy: add one subject to a policy holding 30", {
  group: "edit",
  baseline: true,
}, () => {
  editTrustPolicy(HALF_FULL, { add: [run(100)] }, OPTS);
});
Deno.bench(
  "trust policy: add a batch of 20 subjects to a policy holding 30",
  { group: "edit" },
  () => {
    editTrustPolicy(HALF_FULL, { add: Array.from({ length: 20 }, (_, i) => run(200 + i)) }, OPTS);
  },
);
Deno.bench(
  "trust policy: URL-encoded GetRole document, subject already present",
  { group: "edit" },
  () => {
    editTrustPolicy(ENCODED, { add: [run(3)] }, OPTS);
  },
);
