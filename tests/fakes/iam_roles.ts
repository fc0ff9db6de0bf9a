/**
 * A fake of IAM's role trust policies, named as a fake: it implements the same RolePolicyStore
 * interface as the real adapter and answers as IAM does for the calls we make: unknown roles are
 * `NoSuchEntity`, a document over the quota is `LimitExceeded`, and documents come back as written.
 */

import type { RolePolicyStore } from "../../src/aws/iam.ts";
import { AppError } from "../../src/lib/errors.ts";

/** The fake, with knobs for tests. */
export class FakeIamRoles implements RolePolicyStore {
  readonly policies = new Map<string, string>();
  readonly calls: { op: "GetRole" | "UpdateAssumeRolePolicy"; role: string }[] = [];
  /** Roles whose next calls fail with this error. */
  readonly failures = new Map<string, AppError>();

  /** How many calls of an operation were made. */
  count(op: "GetRole" | "UpdateAssumeRolePolicy"): number {
    return this.calls.filter((c) => c.op === op).length;
  }
  /** Added to every call, so that requests pile up behind an edit as they do against IAM. */
  latencyMs = 0;
  constructor(readonly quota = 2048) {}

  #wait(): Promise<void> {
    return this.latencyMs > 0
      ? new Promise((r) => setTimeout(r, this.latencyMs))
      : Promise.resolve();
  }

  async getTrustPolicy(roleName: string): Promise<string> {
    await this.#wait();
    this.calls.push({ op: "GetRole", role: roleName });
    const failure = this.failures.get(roleName);
    if (failure) throw failure;
    const doc = this.policies.get(roleName);
    if (doc === undefined) {
      throw new AppError("iam_role_not_found", `Role ${JSON.stringify(roleName)} does not exist`);
    }
    return doc;
  }

  async putTrustPolicy(roleName: string, document: string): Promise<void> {
    await this.#wait();
    this.calls.push({ op: "UpdateAssumeRolePolicy", role: roleName });
    const failure = this.failures.get(roleName);
    if (failure) throw failure;
    if (!this.policies.has(roleName)) {
      throw new AppError("iam_role_not_found", `Role ${JSON.stringify(roleName)} does not exist`);
    }
    // IAM does not count white space against the quota.
    if (document.replace(/\s/g, "").length > this.quota) {
      throw new AppError(
        "policy_quota_exceeded",
        `Cannot exceed quota for ACLSizePerRole: ${this.quota}`,
      );
    }
    this.policies.set(roleName, document);
  }
}
