import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../src/config/index';
import { obtainTemporalCli } from '../src/temporal/cli-binary';
import { startDevServer } from '../src/temporal/dev-server';
import { freePort } from './helpers/free-port';
import { bundleWorkflows } from '../src/worker/worker';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCliPath: string;
    workflowBundlePath: string;
  }
}

/**
 * Once per test run: obtain the Temporal CLI (building it into the cache the first time), start one dev
 * server (in memory, headless) for every workflow test, and bundle the workflow code once.
 */
export default async function setup(project: TestProject) {
  const config = loadConfig({
    PATCHOPS_CACHE_DIR: process.env.PATCHOPS_CACHE_DIR,
    TEMPORAL_CLI: process.env.TEMPORAL_CLI,
  });
  const cli = await obtainTemporalCli({
    explicitPath: config.temporal.cliPath,
    cacheDir: config.cacheDir,
    onProgress: (m) => process.stderr.write(`test setup: ${m}\n`),
  });
  const port = await freePort();
  const server = await startDevServer({ cliPath: cli.path, port, startTimeoutMs: 120_000 });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-bundle-'));
  const bundle = await bundleWorkflows();
  const codePath = path.join(dir, 'workflow-bundle.js');
  await fs.writeFile(codePath, bundle.code);
  project.provide('temporalAddress', server.address);
  project.provide('temporalCliPath', cli.path);
  project.provide('workflowBundlePath', codePath);
  return async () => {
    await server.stop();
    await fs.rm(dir, { recursive: true, force: true });
  };
}
