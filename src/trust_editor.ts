/** Edits proxy roles' trust policies through IAM: one edit per role at a time, audited, each role's outcome its own. */

import type { RolePolicyStore } from "./aws/iam.ts";
import { parseRoleArn } from "./core/arn.ts";
import type { SubjectFormat } from "./core/subject.ts";
import { editTrustPolicy, oidcProviderArn, type SubjectEdit } from "./core/trust_policy.ts";
import { AppError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { ServerMetrics } from "./metrics.ts";

/** What became of one role in a request. */
export type RoleStatus = "added" | "present" | "removed" | "absent" | "failed";

/** The outcome of editing one role. */
export interface RoleOutcome {
  readonly roleArn: string;
  readonly status: RoleStatus;
  readonly error?: { readonly code: string; readonly message: string };
  /** Trust-policy length after the edit, and its quota. */
  readonly length?: number;
  readonly quota?: number;
}

/** Who asked, for the audit log line. */
export interface AuditContext {
  readonly user: string;
  readonly run?: string;
  readonly requestId?: string;
}

/** Dependencies of {@link createTrustEditor}. */
export interface TrustEditorDeps {
  readonly roles: RolePolicyStore;
  /** The cluster's OIDC provider, host form. */
  readonly oidcProvider: string;
  readonly audience: string;
  readonly format: SubjectFormat;
  readonly quota: number;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
}

/** Applies subject edits to proxy roles. */
export interface TrustEditor {
  /** Adds or removes one subject on a role; never throws, the failure is in the outcome. */
  edit(
    roleArn: string,
    edit: { add?: string; remove?: string },
    audit: AuditContext,
  ): Promise<RoleOutcome>;
}

/** Creates the editor; edits of one role run one after another so that none is lost in this process. */
export function createTrustEditor(deps: TrustEditorDeps): TrustEditor {
  const tails = new Map<string, Promise<unknown>>();
  const serially = <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const run = (tails.get(key) ?? Promise.resolve()).then(work, work);
    const tail = run.catch(() => {});
    tails.set(key, tail);
    // Forget a role once its queue drains, so the map does not grow with every role ever seen.
    tail.then(() => tails.get(key) === tail && tails.delete(key));
    return run;
  };

  return {
    async edit(roleArn, { add, remove }, audit) {
      const action = add !== undefined ? "add" : "remove";
      try {
        const role = parseRoleArn(roleArn);
        const subjectEdit: SubjectEdit = {
          add: add === undefined ? [] : [add],
          remove: remove === undefined ? [] : [remove],
        };
        const options = {
          providerArn: oidcProviderArn(role.account, deps.oidcProvider, role.partition),
          audience: deps.audience,
          format: deps.format,
          quota: deps.quota,
        };
        return await serially(role.arn, async (): Promise<RoleOutcome> => {
          const current = await deps.roles.getTrustPolicy(role.name);
          const result = editTrustPolicy(current, subjectEdit, options, role.name);
          if (result.changed) {
            await deps.roles.putTrustPolicy(role.name, result.document);
            deps.logger.info("trust policy changed", {
              audit: true,
              action,
              user: audit.user,
              run: audit.run,
              request_id: audit.requestId,
              role: role.arn,
              subjects_before: result.before,
              subjects_after: result.subjects,
              policy_length: result.length,
              policy_quota: result.quota,
            });
          }
          const status: RoleStatus = add !== undefined
            ? (result.changed ? "added" : "present")
            : (result.changed ? "removed" : "absent");
          deps.metrics.trustPolicyEdits.inc({ action, outcome: status });
          return { roleArn, status, length: result.length, quota: result.quota };
        });
      } catch (e) {
        const error = e instanceof AppError
          ? { code: e.code, message: e.message }
          : { code: "internal", message: "Unexpected error" };
        deps.metrics.trustPolicyEdits.inc({ action, outcome: "failed" });
        deps.logger.warn("trust policy edit failed", {
          action,
          role: roleArn,
          user: audit.user,
          run: audit.run,
          error: e,
        });
        return { roleArn, status: "failed", error };
      }
    },
  };
}
