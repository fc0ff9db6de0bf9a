/**
 * A turn: work that one replica at a time should do (the cleanup's passes), decided by a Lease.
 * Whoever takes it keeps it by taking it again before it expires; when it stops, it gives the turn
 * up so that another replica takes it at once rather than after the Lease's duration.
 */

import type { Logger } from "../lib/log.ts";
import type { Lease } from "./client.ts";
import type { LeaseMutex } from "./lease_mutex.ts";

/** One replica's side of a turn. */
export interface Turn {
  /** Whether this replica has the turn now: it takes (or renews) the Lease, or another holds it. */
  take(): Promise<boolean>;
  /** Gives the turn up, if this replica has it. */
  release(): Promise<void>;
}

/** The turn named `name`, over `mutex` (whose Lease duration should outlast one period of work). */
export function createLeaseTurn(mutex: LeaseMutex, name: string, logger: Logger): Turn {
  let held: Lease | undefined;
  return {
    async take() {
      const taken = await mutex.tryAcquire(name);
      if (taken && !held) logger.info("this replica has the turn", { lease: name });
      if (!taken && held) {
        logger.info("this replica lost the turn (another took it, or the API failed)", {
          lease: name,
        });
      }
      held = taken?.lease;
      return taken !== undefined;
    },
    async release() {
      if (!held) return;
      const lease = held;
      held = undefined;
      await mutex.release(lease);
    },
  };
}
