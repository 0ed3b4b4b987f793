import type { FastifyInstance } from 'fastify';

/** Starts `app` on a free loopback port and returns its base URL (http://127.0.0.1:PORT). */
export async function listenOnLoopback(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}
