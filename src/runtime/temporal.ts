import path from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import type { Config } from '../config/index';
import type { Logger } from '../logging';
import type { HealthCheck } from '../shared/contracts';
import { obtainTemporalCli } from '../temporal/cli-binary';
import { connectClient } from '../temporal/connection';
import { startDevServer } from '../temporal/dev-server';

export interface RunningTemporal {
  address: string;
  namespace: string;
  uiUrl: string | undefined;
  embedded: boolean;
  client: Client;
  connection: Connection;
  health: HealthCheck;
  stop(): Promise<void>;
}

/** TEMPORAL_ADDRESS → that cluster; unset → the CLI's dev server, state in <dataDir>/temporal.sqlite, UI on TEMPORAL_UI_PORT. */
export async function startTemporal(
  config: Config,
  logger: Logger,
  onProgress: (message: string) => void = (m) => logger.info(m),
): Promise<RunningTemporal> {
  let address = config.temporal.address;
  let uiUrl: string | undefined;
  let stopServer: (() => Promise<void>) | undefined;
  if (!address) {
    const cli = await obtainTemporalCli({
      explicitPath: config.temporal.cliPath,
      cacheDir: config.cacheDir,
      onProgress,
    });
    logger.info({ path: cli.path, route: cli.route }, 'temporal CLI found');
    const server = await startDevServer({
      cliPath: cli.path,
      dbFile: path.join(config.dataDir, 'temporal.sqlite'),
      pidFile: path.join(config.dataDir, 'temporal.pid'),
      logFile: path.join(config.dataDir, 'temporal.log'),
      port: config.temporal.devPort,
      uiPort: config.temporal.uiPort,
      namespace: config.temporal.namespace,
    });
    address = server.address;
    uiUrl = server.uiUrl;
    stopServer = server.stop;
    logger.info({ address, uiUrl, pid: server.pid }, 'temporal dev server started');
  }
  let client: Client;
  let connection: Connection;
  try {
    ({ client, connection } = await connectClient(config.temporal, address));
  } catch (e) {
    await stopServer?.();
    throw new Error(`Cannot reach Temporal at ${address} (TEMPORAL_ADDRESS): ${(e as Error).message}`, { cause: e });
  }
  return {
    address,
    namespace: config.temporal.namespace,
    uiUrl,
    embedded: Boolean(stopServer),
    client,
    connection,
    health: {
      name: 'temporal',
      async check() {
        const info = await connection.workflowService.getSystemInfo({});
        return { status: 'up', detail: `${address} (server ${info.serverVersion || 'unknown'})` };
      },
    },
    async stop() {
      await connection.close().catch(() => undefined);
      await stopServer?.();
    },
  };
}
