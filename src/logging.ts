import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. One root logger per process, children per component. */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', name = 'patchops'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

/** Routes the Temporal SDK's own logs (worker state, activity failures) into pino. Call once per process. */
export async function installTemporalLogger(logger: Logger, options: { metricsAddress?: string } = {}): Promise<void> {
  const { Runtime, makeTelemetryFilterString } = await import('@temporalio/worker');
  const sdk = logger.child({ component: 'temporal-sdk' });
  const at =
    (level: 'trace' | 'debug' | 'info' | 'warn' | 'error') => (message: string, meta?: Record<string, unknown>) =>
      sdk[level](meta ?? {}, message);
  try {
    Runtime.install({
      // patchops stops its worker itself, in order (src/cli/context.ts runUntilSignal, the demo): the SDK's default of
      // shutting every worker down on SIGINT left a Temporal query unanswered while the stack was still stopping.
      shutdownSignals: [],
      logger: {
        log: (level, message, meta) => at(level.toLowerCase() as 'info')(message, meta),
        trace: at('trace'),
        debug: at('debug'),
        info: at('info'),
        warn: at('warn'),
        error: at('error'),
      },
      telemetryOptions: {
        logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
        // The SDK's own Prometheus exporter (TEMPORAL_METRICS_ADDRESS): task slots, poll latency, failures.
        ...(options.metricsAddress ? { metrics: { prometheus: { bindAddress: options.metricsAddress } } } : {}),
      },
    });
  } catch {
    // Already installed in this process (tests): keep the first.
  }
}
