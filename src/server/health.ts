import type { DependencyState, HealthCheck } from '../shared/contracts';

export interface HealthReport {
  status: 'ok' | 'degraded';
  dependencies: Record<string, DependencyState>;
}

/** Runs every check in parallel, each bounded by `timeoutMs`; a check that throws or times out is down. */
export async function runHealthChecks(checks: HealthCheck[], timeoutMs = 3000): Promise<HealthReport> {
  const results = await Promise.all(
    checks.map(async (c): Promise<[string, DependencyState]> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const state = await Promise.race([
          c.check(),
          new Promise<DependencyState>((resolve) => {
            timer = setTimeout(
              () => resolve({ status: 'down', detail: `no answer within ${timeoutMs} ms` }),
              timeoutMs,
            );
          }),
        ]);
        return [c.name, state];
      } catch (e) {
        return [c.name, { status: 'down', detail: (e as Error).message }];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const dependencies = Object.fromEntries(results);
  const status = results.some(([, s]) => s.status === 'down') ? 'degraded' : 'ok';
  return { status, dependencies };
}
