/** The server's Hono app: middleware, the error funnel and every route, built from passed-in dependencies. */

import { Hono } from "hono";
import { type AuthEnv, bearerAuth } from "../auth/bearer.ts";
import type { ServerDeps } from "../grants/deps.ts";
import { installErrorFunnel, limitBody, requestIds } from "../http/middleware.ts";
import { refuseOtherMethods } from "../http/openapi.ts";
import { mountRoutes } from "../http/route.ts";
import { adminRoutes } from "../routes/admin.ts";
import { capacityRoutes } from "../routes/capacity.ts";
import { operationRoutes } from "../routes/operations.ts";
import { podRoleRoutes } from "../routes/pod_roles.ts";
import { roleMappingRoutes } from "../routes/role_mappings.ts";
import { serviceAccountRoutes } from "../routes/service_accounts.ts";

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
  mountRoutes(app, [
    ...operationRoutes(deps),
    ...podRoleRoutes(deps),
    ...roleMappingRoutes(deps),
    ...capacityRoutes(deps),
    ...serviceAccountRoutes(deps),
    ...adminRoutes(deps),
  ], {
    api: deps.api,
    guards: { user: bearerAuth(deps.users), admin: bearerAuth(deps.users, { admin: true }) },
  });
  // Built once here so that a description the document cannot express stops the start, not a GET.
  deps.api.document();
  return app;
}
