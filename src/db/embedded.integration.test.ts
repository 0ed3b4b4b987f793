import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort } from '../temporal/dev-server';
import { startEmbeddedPostgres } from './embedded';

describe('embedded PGlite on the wire protocol', () => {
  it('keeps concurrent parameterised queries and transactions of many connections apart', async () => {
    const embedded = await startEmbeddedPostgres({ port: await freePort() });
    const pool = new pg.Pool({ connectionString: embedded.url, max: 10 });
    try {
      await pool.query('create table t (id int primary key, v text)');
      const big = 'y'.repeat(200_000); // large enough to arrive in several socket chunks
      const failures: string[] = [];
      await Promise.all(
        Array.from({ length: 150 }, async (_, i) => {
          try {
            if (i % 3 === 0) {
              const c = await pool.connect();
              try {
                await c.query('begin');
                await c.query('insert into t values ($1, $2)', [i, big]);
                await c.query('commit');
              } finally {
                c.release();
              }
            } else {
              const r = await pool.query('select $1::int + 1 as n, length($2::text) as l', [i, big]);
              if (r.rows[0]?.n !== i + 1 || r.rows[0]?.l !== big.length)
                failures.push(`query ${i}: wrong row ${JSON.stringify(r.rows[0])}`);
            }
          } catch (e) {
            failures.push(`query ${i}: ${(e as Error).message}`);
          }
        }),
      );
      expect(failures).toEqual([]);
      expect((await pool.query('select count(*)::int as n from t')).rows[0]).toEqual({ n: 50 });
    } finally {
      await pool.end();
      await embedded.stop();
    }
  });
});
