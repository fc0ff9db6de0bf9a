/**
 * One call for many callers: the first caller's call runs at once; callers that come while it is in
 * flight wait and go together into the next one, which starts when it ends. So every answer comes
 * from a call that started after it was asked for (never staler than a call of its own), and a
 * burst costs two or three calls, not one each.
 */
export function coalesce<I, O>(
  /** Answers every input, one output each, in order; a throw fails every input of the call. */
  run: (inputs: readonly I[]) => Promise<readonly O[]>,
): (input: I) => Promise<O> {
  let waiting: { input: I; answer: PromiseWithResolvers<O> }[] = [];
  let running = false;

  const drain = async () => {
    running = true;
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      try {
        const outputs = await run(batch.map((w) => w.input));
        batch.forEach((w, i) => w.answer.resolve(outputs[i]));
      } catch (error) {
        batch.forEach((w) => w.answer.reject(error));
      }
    }
    running = false;
  };

  return (input) => {
    const answer = Promise.withResolvers<O>();
    waiting.push({ input, answer });
    if (!running) drain();
    return answer.promise;
  };
}
