import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { authenticateStartup, EMBEDDED_USER } from './embedded-auth';

export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * The embedded default: PGlite (Postgres compiled to WASM) persisted under `dataDir`, served on the
 * Postgres wire protocol so that the product talks to it through node-postgres exactly as it talks to a
 * real server. `dataDir` undefined = in memory (tests).
 *
 * It listens on a loopback address only, and a client must prove the password (SCRAM-SHA-256) as user
 * `postgres`: PGlite itself would take anyone as superuser. The password comes from `passwordFile` (created
 * with a random password, mode 0600, when missing), else it is random for this process.
 *
 * PGlite is one backend: connections are multiplexed and a transaction on one makes the others wait.
 */
export async function startEmbeddedPostgres(options: {
  dataDir?: string;
  port: number;
  host?: string;
  passwordFile?: string;
}): Promise<EmbeddedPostgres> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host)) {
    throw new Error(
      `the embedded database listens on a loopback address only, not "${host}": other machines must not reach it. Use 127.0.0.1, or set DATABASE_URL to a PostgreSQL server for a shared database.`,
    );
  }
  const password = options.passwordFile
    ? await embeddedPassword(options.passwordFile)
    : randomBytes(24).toString('base64url');
  if (options.dataDir) await fs.mkdir(path.dirname(options.dataDir), { recursive: true });
  // pg_trgm: the trigram indexes endpoint search uses (migration 0021).
  const db = await PGlite.create({ ...(options.dataDir ? { dataDir: options.dataDir } : {}), extensions: { pg_trgm } });
  const server = new PGLiteSocketServer({ db, port: options.port, host, maxConnections: 20 });
  // Replace the server's per-message queue with one that keeps an extended-protocol sequence together.
  (server as unknown as { queryQueue: ProtocolAwareQueue }).queryQueue = new ProtocolAwareQueue(db);
  const authenticating = requirePassword(server, password);
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw new Error(
      `Could not serve the embedded database on ${host}:${options.port} (${(err as Error).message}). ` +
        'Another patchops may be running; stop it, or set PATCHOPS_EMBEDDED_PG_PORT to a free port.',
      { cause: err },
    );
  }
  const address = server.getServerConn();
  const port = Number(address.split(':').pop() ?? options.port);
  return {
    url: embeddedUrl(host, port, password),
    async stop() {
      for (const socket of authenticating) socket.destroy();
      await server.stop();
      await db.close();
    },
  };
}

export function embeddedUrl(host: string, port: number, password: string): string {
  return `postgres://${EMBEDDED_USER}:${encodeURIComponent(password)}@${host}:${port}/postgres?sslmode=disable`;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return host === '::1';
}

/**
 * The embedded database's password, kept in `file` (mode 0600) and created with 24 random bytes on first use.
 * A file others can read is refused: anyone who reads it is the database's superuser.
 */
export async function embeddedPassword(file: string): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  try {
    await fs.writeFile(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // already there (or another process created it first)
  }
  const stat = await fs.stat(file);
  if ((stat.mode & 0o077) !== 0) {
    throw new Error(
      `${file} can be read by other users (mode ${(stat.mode & 0o777).toString(8)}): it holds the embedded database's password. Run: chmod 600 ${file}`,
    );
  }
  const password = (await fs.readFile(file, 'utf8')).trim();
  if (password.length < 16)
    throw new Error(
      `${file} holds no usable password (fewer than 16 characters): delete it to have a new one generated`,
    );
  return password;
}

/**
 * Puts the startup-phase password check (embedded-auth.ts) in front of the server's own connection handling:
 * only an authenticated connection reaches PGlite. Returns the connections not handed to PGlite that are still
 * open (authenticating, or refused and not yet closed by their client), to destroy on stop.
 */
function requirePassword(server: PGLiteSocketServer, password: string): Set<Socket> {
  const s = server as unknown as { handleConnection(socket: Socket): Promise<void> };
  const serve = s.handleConnection.bind(server);
  const authenticating = new Set<Socket>();
  s.handleConnection = async (socket: Socket) => {
    authenticating.add(socket);
    socket.once('close', () => authenticating.delete(socket));
    const outcome = await authenticateStartup(socket, password);
    if (!outcome.ok) return; // refused: the socket is ended, and destroyed on stop if the client keeps it half-open
    authenticating.delete(socket);
    socket.unshift(outcome.forward);
    await serve(socket);
    socket.resume();
  };
  return authenticating;
}

interface QueuedMessage {
  handlerId: number;
  message: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (err: Error) => void;
}

/** Extended-query (and COPY) messages after which the same connection must go on: Parse, Bind, Describe, Execute, Close, Flush, CopyData. */
const OPEN_SEQUENCE = new Set(['P', 'B', 'D', 'E', 'C', 'H', 'd'].map((c) => c.charCodeAt(0)));

/**
 * pglite-socket 0.2.17 queues each wire message separately and only keeps one connection's messages
 * together inside a transaction. node-postgres sends every parameterised query as Parse/Bind/Describe/
 * Execute/Sync, so under concurrency another connection's Parse lands in between and PostgreSQL answers
 * "portal \"\" does not exist" / "unnamed prepared statement does not exist". This queue is the same
 * design with one more rule: after a message that opens or continues a sequence, only that connection is
 * served until its Sync (or its transaction ends). Same public methods as the library's queue.
 */
export class ProtocolAwareQueue {
  private queue: QueuedMessage[] = [];
  private processing = false;
  private owner: number | null = null;
  private sequenceOpen = false;

  constructor(private readonly db: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ handlerId, message, onData, resolve, reject });
      if (!this.processing) void this.processQueue();
    });
  }

  private async processQueue(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.queue.length > 0) {
        const sticky = this.owner !== null && (this.sequenceOpen || this.db.isInTransaction());
        const index = sticky ? this.queue.findIndex((q) => q.handlerId === this.owner) : 0;
        if (index === -1) break; // wait for the owner's next message
        const [item] = this.queue.splice(index, 1);
        if (!item) break;
        let bytes = 0;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(item.message, {
              onRawData: (data: Uint8Array) => {
                bytes += data.length;
                item.onData(data);
              },
            }),
          );
        } catch (err) {
          this.owner = null;
          this.sequenceOpen = false;
          item.reject(err as Error);
          continue;
        }
        this.owner = item.handlerId;
        this.sequenceOpen = OPEN_SEQUENCE.has(item.message[0] ?? 0);
        item.resolve(bytes);
      }
    } finally {
      this.processing = false;
    }
  }

  getQueueLength(): number {
    return this.queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    this.queue = this.queue.filter((q) => {
      if (q.handlerId !== handlerId) return true;
      q.reject(new Error('Handler disconnected'));
      return false;
    });
  }

  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.owner !== handlerId) return;
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
    this.owner = null;
    this.sequenceOpen = false;
    await this.processQueue();
  }
}
