/** A watch's body: one JSON value a line, ended at once when its signal aborts. */

/**
 * The lines of `body`, parsed. The body is cancelled as `signal` aborts, rather than trusting the
 * fetch's abort to end a read in flight: stopping servers were seen waiting until a watch's
 * `timeoutSeconds` ended it. A cancel ends a pending read at once; the iteration then throws the
 * signal's reason.
 */
export async function* jsonLines(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) if (line.trim() !== "") yield JSON.parse(line);
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}
