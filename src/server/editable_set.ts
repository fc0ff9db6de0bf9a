/** The editable set at start: the server's own identity (STS) and the settings, which must agree. */

import { getCallerArn } from "../aws/sts.ts";
import { callerIdentityFromArn, describeEditable, type EditableRoles } from "../core/editable.ts";
import { AppError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerConfig } from "./config.ts";

/**
 * The editable set: the account and partition of the server's own credentials (STS
 * GetCallerIdentity) or the settings, which must then agree with them, since the IAM adapter
 * edits roles by name in the credentials' account. When both are set and STS cannot answer, the
 * settings are used alone (the server's own role is then known only from --server-role-name).
 */
export async function editableRoles(config: ServerConfig, logger: Logger): Promise<EditableRoles> {
  const set = config.editable;
  const explicit = set.account !== undefined && set.partition !== undefined;
  let identity;
  try {
    identity = callerIdentityFromArn(
      await getCallerArn({
        region: config.awsRegion,
        endpoint: config.stsEndpoint,
        timeoutMs: config.iamTimeoutMs,
      }),
    );
  } catch (error) {
    if (!explicit) {
      const why = error instanceof Error ? error.message : String(error);
      throw new AppError(
        "unavailable",
        `${why}; set --proxy-role-account and --proxy-role-partition (and --server-role-name) to start without it`,
      );
    }
    logger.warn("cannot learn the server's own identity; using the configured editable set", {
      error,
    });
  }
  for (const key of ["account", "partition"] as const) {
    if (identity && set[key] !== undefined && set[key] !== identity[key]) {
      throw new AppError(
        "bad_request",
        `The ${key} of the editable proxy roles is ${
          JSON.stringify(set[key])
        } (--proxy-role-${key}), ` +
          `but the server's credentials are in ${key} ${JSON.stringify(identity[key])}: ` +
          "irsa edits roles with its own credentials, so it can only edit roles of their account",
      );
    }
  }
  const serverRoles = [
    ...new Set([identity?.roleName, set.serverRoleName].filter((r): r is string => !!r)),
  ];
  const rules: EditableRoles = {
    partition: set.partition ?? identity!.partition,
    account: set.account ?? identity!.account,
    prefix: set.prefix,
    names: set.names,
    serverRoles,
  };
  logger.info("editable proxy roles", describeEditable(rules));
  if (serverRoles.length === 0) {
    logger.warn(
      "the server's own role is unknown: its credentials are not an assumed role; set --server-role-name if it has one",
    );
  }
  return rules;
}
