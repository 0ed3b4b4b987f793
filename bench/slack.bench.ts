/**
 * Slack ack latency: signed Approve clicks at a steady rate against the real server route (Bolt on the
 * Fastify receiver), each by a different user, spread over cycles of BENCH_VOTERS approvers. The work after
 * the ack (the Update, here a CycleService double that takes BENCH_UPDATE_MS like a Temporal round trip; the
 * audit row; the card model in the database; chat.update and the ephemeral reply to the fake Slack Web API)
 * runs while later clicks arrive.
 * Run: npm run bench:slack   (BENCH_RATE=50 clicks/s, BENCH_SECONDS=20, BENCH_UPDATE_MS=80, BENCH_VOTERS=10;
 * DATABASE_URL for PostgreSQL, else in-process PGlite)
 */
import { startFakeSlackApi } from '../test/fakes/slack-api';
import { RecordingCycleService } from '../test/fakes/recording-cycle-service';
import { createTestDatabase } from '../test/helpers/db';
import { blockActionsBody, signedHeaders } from '../test/helpers/slack-sign';
import { ACTION } from '../src/chat/core/card';
import { DecisionDesk } from '../src/chat/core/decisions';
import { createSlackBot } from '../src/chat/slack/app';
import { createSlackWebClient, SlackChatChannel } from '../src/chat/slack/channel';
import { createLogger } from '../src/logging';
import { buildServer } from '../src/server/app';

const RATE = Number(process.env.BENCH_RATE ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const UPDATE_MS = Number(process.env.BENCH_UPDATE_MS ?? 80);
const VOTERS = Number(process.env.BENCH_VOTERS ?? 10);
const WARMUP = 20;
const SECRET = 'bench-signing-secret';

const logger = createLogger('silent');
const db = await createTestDatabase();
const fake = await startFakeSlackApi();
const service = new RecordingCycleService();
service.delayMs = UPDATE_MS;
const client = createSlackWebClient('xoxb-bench', fake.url);
const channel = new SlackChatChannel({ client, db: db.db, logger, defaultChannel: 'C0BENCH' });
const desk = new DecisionDesk({ service, db: db.db, logger, chat: channel });
const bot = createSlackBot({
  botToken: 'xoxb-bench',
  signingSecret: SECRET,
  apiUrl: fake.url,
  db: db.db,
  service,
  desk,
  channel,
  logger,
  runCommand: async () => ({ ok: true, data: { verb: 'help', usage: '' }, text: '' }),
});
const server = await buildServer({ logger, health: [], routes: [bot.routes!] });
await server.listen({ host: '127.0.0.1', port: 0 });
const url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}/slack/events`;

const total = RATE * SECONDS;
const cycles = Math.ceil((total + WARMUP) / VOTERS);
const messages: Array<{ cycleId: string; channel: string; ts: string }> = [];
for (let c = 0; c < cycles; c++) {
  const cycleId = `PC-BENCH-${c}`;
  service.addCycle(cycleId, { requestedBy: 'cli:requester', needed: VOTERS + 1 });
  await channel.requestApproval({
    cycleId,
    policyName: 'bench',
    emergency: false,
    requestedBy: 'cli:requester',
    scope: {},
    endpoints: 1,
    bySeverity: { critical: 1 },
    byType: { security: 1 },
    topPatches: [],
    approvalsNeeded: VOTERS + 1,
  });
  const row = await db.db.query.chatMessages.findFirst({ where: (m, { eq }) => eq(m.cycleId, cycleId) });
  const [ch, ts] = row!.messageRef!.split(':');
  messages.push({ cycleId, channel: ch!, ts: ts! });
}

async function click(i: number): Promise<number> {
  const m = messages[Math.floor(i / VOTERS)]!;
  const body = blockActionsBody({
    userId: `UB${String(i).padStart(7, '0')}`,
    actionId: ACTION.approve,
    value: m.cycleId,
    channelId: m.channel,
    messageTs: m.ts,
  });
  const headers = signedHeaders(SECRET, body);
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers, body });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`click ${i}: HTTP ${res.status}`);
  return performance.now() - t0;
}

// warm-up (JIT, Bolt's first auth.test)
for (let i = total; i < total + WARMUP; i++) await click(i);
await new Promise((r) => setTimeout(r, 500));
fake.reset();

const latencies: number[] = [];
const pending: Array<Promise<void>> = [];
const start = performance.now();
for (let i = 0; i < total; i++) {
  const wait = start + (i * 1000) / RATE - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  pending.push(click(i).then((ms) => void latencies.push(ms)));
}
await Promise.all(pending);
const elapsed = (performance.now() - start) / 1000;
const deadline = Date.now() + 60_000;
while (fake.callsTo('chat.postEphemeral').length < total && Date.now() < deadline)
  await new Promise((r) => setTimeout(r, 100));
const drained = (performance.now() - start) / 1000;

latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
console.log(
  `slack ack latency: ${total} signed Approve clicks at ${RATE}/s over ${elapsed.toFixed(1)} s (${cycles} cycles x ${VOTERS} voters, Update ${UPDATE_MS} ms after the ack, database ${db.kind})`,
);
console.log(`  p50 ${q(50).toFixed(1)} ms   p99 ${q(99).toFixed(1)} ms   max ${latencies.at(-1)!.toFixed(1)} ms`);
console.log(
  `  after the acks: ${service.callsOf('approve').length - WARMUP}/${total} votes, ${fake.callsTo('chat.postEphemeral').length} ephemeral replies, ${fake.callsTo('chat.update').length} chat.update, all done ${drained.toFixed(1)} s after the first click`,
);

await Promise.race([Promise.all([server.close(), fake.close(), db.close()]), new Promise((r) => setTimeout(r, 3000))]);
// Bolt's HTTP agents and the embedded database keep handles open; the figures are printed.
process.exit(0);
