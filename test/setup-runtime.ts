// Per test worker: the Temporal SDK logs at WARN, so the output shows test results rather than worker state changes.
import { DefaultLogger, Runtime } from '@temporalio/worker';

try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Already installed in this worker.
}
