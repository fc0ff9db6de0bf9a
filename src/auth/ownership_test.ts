import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import type { RunLookup, RunPod } from "../kube/run_lookup.ts";
import type { Caller, WorkloadVerifier } from "./caller.ts";
import { type OwnershipOptions, provePod } from "./ownership.ts";

const RUN = "646d27b817c28b5ea4b5b0c1";
const OPTIONS: OwnershipOptions = {
  computeNamespace: "domino-compute",
  runIdPattern: /^[0-9a-f]{24}$/,
  userBasedServiceAccounts: true,
  userServiceAccounts: new Map([["integration-test", "aws-test"]]),
  trustPodTokenAlone: true,
  format: "wildcard",
};
const caller = (username: string): Caller => ({ username, organizations: [], isAdmin: false });
/** A verifier that says every token is a pod's running as `name` (the real one is tested apart). */
const podOf = (name: string): WorkloadVerifier => ({
  verify: () => Promise.resolve({ serviceAccount: { namespace: "domino-compute", name } }),
});
const forbidden = (pattern: RegExp) => (e: unknown) =>
  e instanceof AppError && e.code === "forbidden" && pattern.test(e.message);

Deno.test("a pod token alone (the admin's opt-in) proves only the caller's own per-user account", async () => {
  // Named as the caller, or mapped to them: proven.
  for (const [user, account] of [["jdoe", "jdoe"], ["integration-test", "aws-test"]]) {
    const pod = await provePod(caller(user), undefined, "t", {
      workloads: podOf(account),
      ownership: OPTIONS,
    });
    assert.equal(pod.subject, `*:domino-compute:${account}`);
  }
  // Another user's account, named or mapped, or a mapped user's own name: refused, and the
  // message names the account, the user, the account the platform gives them and the fix.
  for (
    const [user, account, expected] of [
      ["jdoe", "bob", "jdoe"],
      ["jdoe", "aws-test", "jdoe"],
      ["integration-test", "integration-test", "aws-test"],
    ]
  ) {
    await assert.rejects(
      provePod(caller(user), undefined, "t", { workloads: podOf(account), ownership: OPTIONS }),
      forbidden(
        new RegExp(
          `Service account "${account}" is not "${user}"'s: the platform runs "${user}"'s pods as "${expected}".*user_mappings`,
        ),
      ),
    );
  }
});

Deno.test("an account the user mappings give to two users is granted to neither, by run lookup", async () => {
  const pods: RunPod[] = [{
    name: `run-${RUN}-a`,
    serviceAccountName: "team",
    startingUsername: "alice",
    phase: "Running",
  }];
  const runs: RunLookup = {
    findRunPods: () => Promise.resolve(pods),
    findPodsRunningAs: () => Promise.resolve(pods),
  };
  const ownership = {
    ...OPTIONS,
    userServiceAccounts: new Map([["alice", "team"], ["bob", "team"]]),
  };
  await assert.rejects(
    provePod(caller("alice"), RUN, undefined, { runs, ownership }),
    forbidden(/"team" is not "alice"'s alone: the user mappings give it to 1 other user/),
  );
  // With the mappings giving it to alice alone, the same run is proven.
  const alone = { ...OPTIONS, userServiceAccounts: new Map([["alice", "team"]]) };
  const pod = await provePod(caller("alice"), RUN, undefined, { runs, ownership: alone });
  assert.equal(pod.subject, "*:domino-compute:team");
});
