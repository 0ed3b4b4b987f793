/**
 * Password authentication for the embedded database's wire-protocol server. PGlite answers every startup message
 * with AuthenticationOk whatever the user and password, and pglite-socket has no authentication hook, so this
 * module runs the startup phase itself as PostgreSQL defines it (protocol 3.0, "Start-up" and "SASL
 * Authentication"): SSLRequest/GSSENCRequest are declined, the StartupMessage must name the one user, and the
 * client proves the password with SCRAM-SHA-256 (RFC 5802 / RFC 7677, no channel binding), which node-postgres,
 * psql and every libpq client speak. Only then is the StartupMessage handed on to PGlite, whose AuthenticationOk
 * and parameter statuses follow our AuthenticationSASLFinal as a real server's would.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';

export const EMBEDDED_USER = 'postgres';

const PROTOCOL_3 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const SCRAM_ITERATIONS = 4096;
const AUTH_TIMEOUT_MS = 10_000;

/** One backend message: type byte, int32 length (itself included), body. */
function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function authentication(code: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const c = Buffer.alloc(4);
  c.writeInt32BE(code);
  return message('R', Buffer.concat([c, data]));
}

/** ErrorResponse with severity FATAL, as a server sends before closing a connection it refuses. */
function fatal(sqlstate: string, text: string): Buffer {
  const fields = [`SFATAL`, `VFATAL`, `C${sqlstate}`, `M${text}`].map((f) => Buffer.from(`${f}\0`, 'utf8'));
  return message('E', Buffer.concat([...fields, Buffer.from([0])]));
}

const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/** Reads whole protocol messages off a socket during the startup phase. */
class StartupReader {
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  private failed: Error | null = null;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    this.wake();
  };
  private readonly onEnd = () => {
    this.failed ??= new Error('the client closed the connection during authentication');
    this.wake();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onEnd);
  }

  private wake() {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  private async need(n: number): Promise<void> {
    while (this.buffer.length < n) {
      if (this.failed) throw this.failed;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** A message without a type byte (SSLRequest, StartupMessage): int32 length, int32 code, rest. */
  async untyped(): Promise<{ code: number; whole: Buffer }> {
    await this.need(8);
    const length = this.buffer.readInt32BE(0);
    if (length < 8 || length > 10_000) throw new Error(`a startup packet of ${length} bytes is not valid`);
    await this.need(length);
    const whole = this.buffer.subarray(0, length);
    this.buffer = this.buffer.subarray(length);
    return { code: whole.readInt32BE(4), whole };
  }

  /** A typed frontend message: its type and body. */
  async typed(): Promise<{ type: string; body: Buffer }> {
    await this.need(5);
    const length = this.buffer.readInt32BE(1);
    if (length < 4 || length > 10_000)
      throw new Error(`a message of ${length} bytes is not valid during authentication`);
    await this.need(1 + length);
    const type = String.fromCharCode(this.buffer[0]!);
    const body = this.buffer.subarray(5, 1 + length);
    this.buffer = this.buffer.subarray(1 + length);
    return { type, body };
  }

  /** Stops reading and returns what the client sent after the last message read. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onEnd);
    return this.buffer;
  }
}

function startupParameters(whole: Buffer): Map<string, string> {
  const parts = whole.subarray(8).toString('utf8').split('\0');
  const params = new Map<string, string>();
  for (let i = 0; i + 1 < parts.length && parts[i] !== ''; i += 2) params.set(parts[i]!, parts[i + 1]!);
  return params;
}

function attributes(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) m.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return m;
}

export type StartupOutcome =
  | { ok: true; /** The StartupMessage and anything the client sent after it, for the database. */ forward: Buffer }
  | { ok: false; reason: string };

/**
 * Runs the startup phase on a fresh connection. On success the socket is paused and `forward` holds the bytes
 * PGlite must see first. On failure an ErrorResponse has been sent and the socket is closed.
 */
export async function authenticateStartup(socket: Socket, password: string): Promise<StartupOutcome> {
  const reader = new StartupReader(socket);
  const timer = setTimeout(() => socket.destroy(new Error('authentication timed out')), AUTH_TIMEOUT_MS);
  const refuse = (sqlstate: string, text: string): StartupOutcome => {
    reader.detach();
    if (socket.writable) {
      socket.end(fatal(sqlstate, text));
      setTimeout(() => socket.destroy(), 1000).unref(); // a client that keeps its half open is not waited for
    } else {
      socket.destroy();
    }
    return { ok: false, reason: text };
  };
  try {
    let startup: Buffer | null = null;
    while (!startup) {
      const { code, whole } = await reader.untyped();
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) socket.write('N');
      else if (code === CANCEL_REQUEST)
        return refuse('08P01', 'cancel requests are not supported by the embedded database');
      else if (code === PROTOCOL_3) startup = whole;
      else
        return refuse(
          '08P01',
          `unsupported frontend protocol ${code >> 16}.${code & 0xffff}: the embedded database speaks 3.0`,
        );
    }
    const user = startupParameters(startup).get('user') ?? '';
    if (user !== EMBEDDED_USER) {
      return refuse(
        '28000',
        `the embedded database has one user, "${EMBEDDED_USER}"; "${user}" is not it (its password is in PATCHOPS_DATA_DIR/pglite.password)`,
      );
    }

    socket.write(authentication(10, Buffer.from('SCRAM-SHA-256\0\0', 'latin1')));
    const initial = await reader.typed();
    if (initial.type !== 'p') return refuse('08P01', 'expected a SASLInitialResponse');
    const nul = initial.body.indexOf(0);
    const mechanism = initial.body.subarray(0, nul).toString('latin1');
    if (mechanism !== 'SCRAM-SHA-256')
      return refuse('28000', `SASL mechanism ${mechanism} is not supported: use SCRAM-SHA-256`);
    const clientFirst = initial.body.subarray(nul + 5).toString('utf8');
    const gs2 = /^([ny]),[^,]*,/.exec(clientFirst);
    if (!gs2) return refuse('08P01', 'malformed SCRAM client-first-message');
    const clientFirstBare = clientFirst.slice(gs2[0].length);
    const clientNonce = attributes(clientFirstBare).get('r');
    if (!clientNonce) return refuse('08P01', 'SCRAM client-first-message has no nonce');

    const salt = randomBytes(16);
    const nonce = clientNonce + randomBytes(18).toString('base64');
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${SCRAM_ITERATIONS}`;
    socket.write(authentication(11, Buffer.from(serverFirst, 'utf8')));

    const response = await reader.typed();
    if (response.type !== 'p') return refuse('08P01', 'expected a SASLResponse');
    const clientFinal = response.body.toString('utf8');
    const proofAt = clientFinal.lastIndexOf(',p=');
    const final = attributes(clientFinal);
    const withoutProof = clientFinal.slice(0, proofAt);
    if (proofAt < 0 || final.get('r') !== nonce || final.get('c') !== Buffer.from(gs2[0]).toString('base64')) {
      return refuse('08P01', 'malformed SCRAM client-final-message');
    }
    const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(sha256(clientKey), authMessage);
    const proof = Buffer.from(final.get('p') ?? '', 'base64');
    const recovered = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) recovered[i] = (proof[i] ?? 0) ^ signature[i]!;
    if (proof.length !== 32 || !timingSafeEqual(sha256(recovered), sha256(clientKey))) {
      return refuse('28P01', `password authentication failed for user "${user}"`);
    }
    const serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    socket.write(authentication(12, Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8')));
    return { ok: true, forward: Buffer.concat([startup, reader.detach()]) };
  } catch (e) {
    reader.detach();
    socket.destroy();
    return { ok: false, reason: (e as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
