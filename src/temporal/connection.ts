import fs from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from '../config/index';

/** Connection options for a cluster or Temporal Cloud, from the environment (address, TLS/mTLS, API key). */
export function temporalConnectionOptions(
  cfg: Config['temporal'],
  address: string,
): ConnectionOptions & NativeConnectionOptions {
  const tls =
    cfg.address && cfg.tls.enabled
      ? {
          ...(cfg.tls.caPath ? { serverRootCACertificate: fs.readFileSync(cfg.tls.caPath) } : {}),
          ...(cfg.tls.certPath && cfg.tls.keyPath
            ? { clientCertPair: { crt: fs.readFileSync(cfg.tls.certPath), key: fs.readFileSync(cfg.tls.keyPath) } }
            : {}),
        }
      : undefined;
  return {
    address,
    ...(tls ? { tls } : {}),
    ...(cfg.address && cfg.apiKey ? { apiKey: cfg.apiKey } : {}),
  };
}

export async function connectClient(
  cfg: Config['temporal'],
  address: string,
): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect(temporalConnectionOptions(cfg, address));
  return { client: new Client({ connection, namespace: cfg.namespace }), connection };
}

export async function connectWorker(cfg: Config['temporal'], address: string): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(cfg, address));
}
