/** The last audit lines of this process, kept in memory for `GET /audit` and `irsa admin report`. */

import type { Fields, Logger } from "../lib/log.ts";

import type { AuditEntry } from "../api/admin.ts";

export type { AuditEntry };

/** The ring of the last audit lines, and a logger that fills it. */
export interface AuditTrail {
  /** The oldest first. */
  entries(): AuditEntry[];
  /** `logger` that also keeps every line logged with `audit: true`. */
  wrap(logger: Logger): Logger;
}

/** A trail of at most `limit` lines; `now` stamps them. */
export function createAuditTrail(limit = 200, now: () => Date = () => new Date()): AuditTrail {
  const ring: AuditEntry[] = [];
  const keep = (msg: string, fields?: Fields) => {
    if (fields?.audit !== true) return;
    const { audit: _, ...rest } = fields;
    ring.push({ ...rest, time: now().toISOString(), msg });
    if (ring.length > limit) ring.splice(0, ring.length - limit);
  };
  const wrap = (logger: Logger, base: Fields = {}): Logger => ({
    debug: (msg, fields) => logger.debug(msg, fields),
    info(msg, fields) {
      keep(msg, { ...base, ...fields });
      logger.info(msg, fields);
    },
    warn(msg, fields) {
      keep(msg, { ...base, ...fields });
      logger.warn(msg, fields);
    },
    error: (msg, fields) => logger.error(msg, fields),
    child: (fields) => wrap(logger.child(fields), { ...base, ...fields }),
  });
  return { entries: () => [...ring], wrap: (logger) => wrap(logger) };
}
