/**
 * The README's screenshots, taken by the project's own browser test so they stay true: the dashboard's
 * overview over a seeded fleet (the real server and pages), and the demo's approval-card page (the real
 * src/runtime/demo-page.ts) showing the Slack and Teams cards that the real card builders make, read out
 * the way the demo reads them from its fakes. Written to docs/images/ on every run; with the fixed clock a
 * run changes them only when the pages change: commit them then.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTIVE_CARD_CONTENT_TYPE, approvalAdaptiveCard } from '../../src/chat/core/adaptive';
import { approvalBlocks } from '../../src/chat/core/blocks';
import { approvalModelFromRequest } from '../../src/chat/core/card';
import type { ApprovalRequest } from '../../src/domain/ports';
import { createLogger } from '../../src/logging';
import { startDemoPage, textsOf, type DemoPage } from '../../src/runtime/demo-page';
import { buildServer } from '../../src/server/app';
import { addWebUser } from '../../src/server/dashboard/auth';
import { dashboardRoutes } from '../../src/server/dashboard/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { findChromium, launchChromium } from './chromium';
import { fakeCycleService } from './fixtures';
import { seedShowcaseFleet } from './showcase-fleet';

const executable = findChromium();
const imagesDir = path.resolve(import.meta.dirname, '..', '..', 'docs', 'images');
/** A fixed clock for the seed and the server, so the pictures (trend dates included) only change when the pages do. */
const NOW = new Date('2026-12-05T09:00:00.000Z');

/** An approval request like the demo's: the pilot ring passed, the broad waves wait for one Slack and one Teams approval. */
const approvalRequest: ApprovalRequest = {
  cycleId: 'PC-20261205-0001',
  policyName: 'demo',
  emergency: false,
  requestedBy: 'cli:ops',
  scope: { groups: ['web-servers', 'db-servers', 'workstations'] },
  endpoints: 32,
  bySeverity: { critical: 14, important: 6, moderate: 3 },
  byType: { security: 23 },
  topPatches: [
    {
      patchId: 'DSA-5496-1',
      title: 'libwebp security update',
      severity: 'critical',
      type: 'security',
      cvss: 8.8,
      cves: ['CVE-2023-4863'],
      knownExploited: true,
      endpoints: 3,
    },
    {
      patchId: 'KB5036893',
      title: '2024-04 Cumulative Update for Windows 11',
      severity: 'critical',
      type: 'security',
      cvss: 7.8,
      cves: ['CVE-2024-26234', 'CVE-2024-29988'],
      knownExploited: true,
      endpoints: 3,
    },
    {
      patchId: 'DSA-5702-1',
      title: 'openssh security update',
      severity: 'critical',
      type: 'security',
      cvss: 8.1,
      cves: ['CVE-2024-6387'],
      knownExploited: false,
      endpoints: 8,
    },
  ],
  changeNumber: 'CHG0030042',
  approvalsNeeded: 2,
  deadline: '2026-12-06T09:00:00.000Z',
};

describe.skipIf(!executable)('README screenshots in Chromium', () => {
  let t: TestDatabase;
  let app: FastifyInstance;
  let base: string;
  let demoPage: DemoPage;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedShowcaseFleet(t.db, NOW);
    await addWebUser(t.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
    app = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [
        dashboardRoutes({ db: t.db, logger: createLogger('silent'), cycles: fakeCycleService(), now: () => NOW }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    const model = approvalModelFromRequest(approvalRequest);
    demoPage = await startDemoPage({
      cards: () => ({
        slack: textsOf(approvalBlocks(model).blocks),
        teams: textsOf([{ contentType: ADAPTIVE_CARD_CONTENT_TYPE, content: approvalAdaptiveCard(model) }]),
      }),
      click: async () => 'not clicked in this test',
      mails: () => [],
    });
    browser = await launchChromium(executable!);
    fs.mkdirSync(imagesDir, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await demoPage?.close();
    await app?.close();
    await t?.close();
  });

  it('saves the dashboard overview (docs/images/dashboard-overview.png)', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${base}/`);
    await page.fill('input[name=username]', 'ada');
    await page.fill('input[name=password]', 'ada-password-1');
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    expect(await page.locator('.charts svg').count()).toBe(5);
    // The charts share the page's width: at least two side by side.
    const [first, second] = await Promise.all([
      page.locator('.charts svg').nth(0).boundingBox(),
      page.locator('.charts svg').nth(1).boundingBox(),
    ]);
    expect(second!.y).toBe(first!.y);
    const file = path.join(imagesDir, 'dashboard-overview.png');
    await page.screenshot({ path: file, fullPage: false });
    expect(fs.statSync(file).size).toBeGreaterThan(10_000);
    await page.close();
  });

  it('saves the demo approval card page (docs/images/approval-card.png)', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(`${demoPage.url}/`);
    expect(await page.locator('.card').count()).toBe(2);
    expect(await page.locator('button:not([disabled])').count()).toBe(2);
    expect(await page.textContent('body')).toContain('CVE-2023-4863');
    const file = path.join(imagesDir, 'approval-card.png');
    await page.screenshot({ path: file, fullPage: true });
    expect(fs.statSync(file).size).toBeGreaterThan(10_000);
    await page.close();
  });
});
