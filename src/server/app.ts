/** The server's Hono app: middleware, the error funnel and every route group, built from passed-in dependencies. */

import { Hono } from "hono";
import type { AuthEnv } from "../auth/bearer.ts";
import { installErrorFunnel, limitBody, refuseOtherMethods, requestIds } from "../http/http.ts";
import type { ServerDeps } from "../routes/deps.ts";
import { registerAdminRoutes } from "../routes/admin.ts";
import { registerCapacityRoutes } from "../routes/capacity.ts";
import { registerOperationRoutes } from "../routes/operations.ts";
import { registerPodRoleRoutes } from "../routes/pod_roles.ts";
import { registerRoleMappingRoutes } from "../routes/role_mappings.ts";
import { registerServiceAccountRoutes } from "../routes/service_accounts.ts";

/** Builds the server app; tests call `app.request()` on it in-process. */
export function createApp(deps: ServerDeps): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  installErrorFunnel(app, deps.logger);
  app.use(requestIds());
  app.use(async function timing(c, next) {
    const started = performance.now();
    await next();
    // The matched route pattern, never the raw path: labels must not carry ids.
    deps.metrics.requestDuration.observe(
      { route: c.req.routePath, method: c.req.method, status: String(c.res.status) },
      (performance.now() - started) / 1000,
    );
  });
  app.use(refuseOtherMethods(deps.api));
  app.use(limitBody());
  registerOperationRoutes(app, deps);
  registerPodRoleRoutes(app, deps);
  registerRoleMappingRoutes(app, deps);
  registerCapacityRoutes(app, deps);
  registerServiceAccountRoutes(app, deps);
  registerAdminRoutes(app, deps);
  // Built once here so that a description the document cannot express stops the start, not a GET.
  deps.api.document();
  return app;
}
