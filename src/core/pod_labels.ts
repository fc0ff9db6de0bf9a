/** The downward-API labels file: one `key="value"` line per label, values quoted as Go's %q does. */

/** The label the platform's mutation sets to the workload type (`edge-workload`, `cluster-master`, `cluster-worker`). */
export const WORKLOAD_TYPE_LABEL = "dominodatalab.com/irsa-workload-type";

/**
 * Parses the labels file. Lines that are not `key="value"` are skipped rather than fatal: a
 * label the sidecar does not need must never stop it.
 */
export function parsePodLabels(text: string): Map<string, string> {
  const labels = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([^=\s]+)="((?:[^"\\]|\\.)*)"\s*$/.exec(line.trim());
    if (!m) continue;
    labels.set(
      m[1],
      m[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c)),
    );
  }
  return labels;
}
