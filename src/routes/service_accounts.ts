/** POST and DELETE /service_account: per-user ServiceAccounts in the compute namespace, for admins. */

import type { Context, Hono } from "hono";
import * as v from "valibot";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import { AppError } from "../lib/errors.ts";
import { jsonBody } from "../http/http.ts";
import { DNS_1123_LABEL, DNS_1123_LABEL_RULE } from "../kube/service_accounts.ts";
import type { ServerDeps } from "./deps.ts";

/** The body of both methods. */
export const ServiceAccountBody = v.object({
  service_account_name: v.pipe(
    v.string("service_account_name must be a string"),
    v.regex(
      DNS_1123_LABEL,
      `service_account_name must be a DNS-1123 label: ${DNS_1123_LABEL_RULE}`,
    ),
  ),
});

const answer = <S extends string>(statuses: readonly [S, S]) =>
  v.strictObject({
    status: v.picklist(statuses),
    service_account_name: v.string(),
    namespace: v.string(),
  });

/** The answer of POST /service_account. */
export const CreatedServiceAccountAnswer = answer(["created", "exists"]);

/** The answer of DELETE /service_account. */
export const DeletedServiceAccountAnswer = answer(["deleted", "absent"]);

/** Registers /service_account. */
export function registerServiceAccountRoutes(app: Hono<AuthEnv>, deps: ServerDeps): void {
  const admin = bearerAuth(deps.users, { admin: true });
  const accounts = () => {
    if (!deps.serviceAccounts) {
      throw new AppError(
        "unavailable",
        "Cannot manage service accounts: this server has no Kubernetes API (set --kubernetes-api / IRSA_KUBERNETES_API, or run it in the cluster)",
      );
    }
    return deps.serviceAccounts;
  };
  const errors = {
    409: "The ServiceAccount exists and was not created by irsa",
    502: "The Kubernetes API answered badly",
    503: "No Kubernetes API, it cannot be reached, or the token's verifier cannot",
  };

  deps.api.add({
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
  });
  // Both methods: the name from the body, the change, one audit line, the answer.
  const handle =
    (change: "created" | "deleted", act: (name: string) => Promise<string>) =>
    async (c: Context<AuthEnv>) => {
      const { service_account_name: name } = await jsonBody(c, ServiceAccountBody);
      const status = await act(name);
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
  app.post("/service_account", admin, handle("created", (name) => accounts().create(name)));

  deps.api.add({
    method: "delete",
    path: "/service_account",
    summary:
      'Deletes a ServiceAccount that irsa created; "status" is "deleted", or "absent" when there was none (still 200).',
    access: "admin",
    body: ServiceAccountBody,
    responses: {
      200: { description: "Deleted, or none was there", json: DeletedServiceAccountAnswer },
    },
    errors,
  });
  app.delete("/service_account", admin, handle("deleted", (name) => accounts().remove(name)));
}
