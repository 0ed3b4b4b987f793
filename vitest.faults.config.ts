// `npm run test:faults`: the fault-injection suite of issue #15 (test/faults), kept out of `npm test` (vitest.config.ts
// excludes it) because it kills and restarts real processes for minutes. Everything else as in vitest.config.ts.
import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config';

export default defineConfig({
  test: {
    ...base.test,
    include: ['test/faults/**/*.faults.test.ts'],
    exclude: configDefaults.exclude,
    // One deployment at a time: the cases measure crash recovery, not contention between two of them.
    maxWorkers: 1,
  },
});
