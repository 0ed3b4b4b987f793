/** A running repetition; stop() cancels the next run and waits for one in progress. */
export interface Repeating {
  stop(): Promise<void>;
}

/**
 * Runs `run` at start (unless `runAtStart` is false) and then `everyMs` after each run ended, so runs never overlap.
 * `run` should handle its own errors; a rejection is passed to `onError` (default: ignored) and the loop goes on.
 * With `unref` the timer does not keep the process alive.
 */
export function repeatEvery(
  run: () => Promise<void>,
  everyMs: number,
  opts: { runAtStart?: boolean; unref?: boolean; onError?: (err: unknown) => void } = {},
): Repeating {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const later = () => {
    if (stopped) return;
    timer = setTimeout(tick, everyMs);
    if (opts.unref) timer.unref();
  };
  const tick = () => {
    timer = undefined;
    if (stopped) return;
    running = run()
      .catch((err: unknown) => opts.onError?.(err))
      .finally(() => {
        running = undefined;
        later();
      });
  };
  if (opts.runAtStart === false) later();
  else tick();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
