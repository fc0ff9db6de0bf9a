/** POST and DELETE /service_account: per-user ServiceAccounts in the compute namespace, for admins. */

import type { Context } from "hono";
import {
  CreatedServiceAccountAnswer,
  DeletedServiceAccountAnswer,
  ServiceAccountBody,
} from "../api/service_accounts.ts";
import type { AuthEnv } from "../auth/bearer.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { createServiceAccount, deleteServiceAccount } from "../grants/service_accounts.ts";
import { type Route, route } from "../http/route.ts";

const errors = {
  409: "The ServiceAccount exists and was not created by irsa",
  502: "The Kubernetes API answered badly, or (DELETE) a trust policy could not be edited",
  503: "No Kubernetes API, it cannot be reached, or the token's verifier cannot",
};

/** The service-account routes. */
export function serviceAccountRoutes(deps: ServerDeps): Route<AuthEnv>[] {
  // Both methods: the change, one audit line, the answer.
  const answer = (
    c: Context<AuthEnv>,
    change: "created" | "deleted",
    name: string,
    status: string,
  ) => {
    deps.logger.info(`service account ${change}`, {
      audit: true,
      user: c.get("caller").username,
      service_account: name,
      status,
    });
    return c.json({
      status,
      service_account_name: name,
      namespace: deps.ownership.computeNamespace,
    });
  };
  return [
    route({
      method: "post",
      path: "/service_account",
      summary:
        'Creates a ServiceAccount in the compute namespace, labelled as irsa\'s; "status" is "created", or "exists" when irsa had made it.',
      access: "admin",
      body: ServiceAccountBody,
      responses: {
        200: { description: "Created, or irsa's was there", json: CreatedServiceAccountAnswer },
      },
      errors,
      async handle(c, { service_account_name: name }) {
        return answer(c, "created", name, await createServiceAccount(deps, name));
      },
    }),
    route({
      method: "delete",
      path: "/service_account",
      summary:
        'Takes the ServiceAccount\'s subject off every trust policy, then deletes it if irsa created it; "status" is "deleted", or "absent" when there was none (still 200).',
      access: "admin",
      body: ServiceAccountBody,
      responses: {
        200: { description: "Deleted, or none was there", json: DeletedServiceAccountAnswer },
      },
      errors,
      async handle(c, { service_account_name: name }) {
        const by = { user: c.get("caller").username, requestId: c.get("requestId") };
        return answer(c, "deleted", name, await deleteServiceAccount(deps, by, name));
      },
    }),
  ];
}
