/**
 * A guard around the trust editor: a role outside the editable set is never read or written,
 * whoever asks (a run start, a stop, the cleanup, /capacity) and wherever the role came from
 * (a mapping written before the rule existed included).
 */

import { AppError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerMetrics } from "../observe/metrics.ts";
import type { RoleOutcome, TrustEditor } from "./trust_editor.ts";

/** Why a role is not editable, or undefined when it is; see `src/core/editable.ts`. */
export type EditableCheck = (roleArn: string) => string | undefined;

/** What {@link guardEditor} needs besides the editor and the check. */
export interface GuardDeps {
  readonly logger: Logger;
  readonly metrics?: ServerMetrics;
}

/**
 * Wraps `editor` so that every operation on a role `editable` refuses answers without reaching
 * IAM: `edit` with a failed outcome of code `role_not_editable`, `prune` and `subjects` by
 * throwing that error, `holds` with false.
 */
export function guardEditor(
  editor: TrustEditor,
  editable: EditableCheck,
  deps: GuardDeps,
): TrustEditor {
  const refusal = (roleArn: string, reason: string) =>
    new AppError("role_not_editable", reason, { role: roleArn });
  return {
    edit(roleArn, edit, audit, options) {
      const reason = editable(roleArn);
      if (reason === undefined) return editor.edit(roleArn, edit, audit, options);
      const action = edit.add !== undefined ? "add" : "remove";
      deps.metrics?.trustPolicyEdits.inc({ action, outcome: "failed" });
      deps.logger.warn("refused to edit a role outside the editable set", {
        role: roleArn,
        action,
        user: audit.user,
        run: audit.run,
        request_id: audit.requestId,
        reason,
      });
      const outcome: RoleOutcome = {
        roleArn,
        status: "failed",
        error: { code: "role_not_editable", message: reason },
      };
      return Promise.resolve(outcome);
    },
    prune(roleArn, select, audit) {
      const reason = editable(roleArn);
      if (reason === undefined) return editor.prune(roleArn, select, audit);
      return Promise.reject(refusal(roleArn, reason));
    },
    subjects(roleArn) {
      const reason = editable(roleArn);
      if (reason === undefined) return editor.subjects(roleArn);
      return Promise.reject(refusal(roleArn, reason));
    },
    arriving: () => editor.arriving(),
    capacity: () => editor.capacity().filter((r) => editable(r.roleArn) === undefined),
    holds: (roleArn, subject) => editable(roleArn) === undefined && editor.holds(roleArn, subject),
    // Outside the set nothing is read: the edit refuses it, naming the rule.
    refusal: (roleArn, subject) =>
      editable(roleArn) === undefined
        ? editor.refusal(roleArn, subject)
        : Promise.resolve(undefined),
  };
}
