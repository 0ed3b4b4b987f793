/**
 * The dashboard in a real Chromium (Debian's package, driven by playwright-core) over the real server
 * and a database the test fills itself. A failing test leaves a screenshot under test-results/.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { listAudit } from '../../src/db/dashboard';
import { createLogger } from '../../src/logging';
import { buildServer } from '../../src/server/app';
import { addWebUser } from '../../src/server/dashboard/auth';
import { dashboardRoutes } from '../../src/server/dashboard/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { findChromium, launchChromium } from './chromium';
import { fakeCycleService, seedFleet, type Fleet } from './fixtures';

const executable = findChromium();
const resultsDir = path.resolve(import.meta.dirname, '..', '..', 'test-results');

describe.skipIf(!executable)('dashboard in Chromium', () => {
  let t: TestDatabase;
  let app: FastifyInstance;
  let base: string;
  let fleet: Fleet;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let cycles: ReturnType<typeof fakeCycleService>;

  beforeAll(async () => {
    t = await createTestDatabase();
    fleet = await seedFleet(t.db, 'b');
    cycles = fakeCycleService({ [fleet.cycleId]: 'web:someone-else' });
    await addWebUser(t.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
    await addWebUser(t.db, { username: 'vic', password: 'vic-password-1', role: 'viewer', by: 'test' });
    app = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [
        dashboardRoutes({
          db: t.db,
          logger: createLogger('silent'),
          cycles,
          temporalUiUrl: 'http://127.0.0.1:8233',
          temporalNamespace: 'default',
        }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    browser = await launchChromium(executable!);
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await t?.close();
  });

  /** A new page (own cookies per context page is not enough: each user gets a cleared context). */
  async function pageFor(name: string): Promise<Page> {
    await browser.context.clearCookies();
    const page = await browser.context.newPage();
    onTestFailed(async () => {
      fs.mkdirSync(resultsDir, { recursive: true });
      const file = path.join(resultsDir, `browser-${name}-${Date.now()}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      process.stderr.write(`browser test failed: screenshot kept at ${file}\n`);
    });
    return page;
  }

  async function signIn(page: Page, username: string, password: string) {
    await page.goto(`${base}/`);
    await page.waitForURL(/\/login/);
    await page.fill('input[name=username]', username);
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
    expect(await page.textContent('[data-testid=whoami]')).toContain(username);
  }

  it("loads the overview over the test's data and follows a cycle", async () => {
    const page = await pageFor('viewer-follow');
    await signIn(page, 'vic', 'vic-password-1');
    expect(await page.textContent('[data-testid=compliance-pct]')).toBe(`${fleet.expected.pct}%`);
    expect(await page.textContent('[data-testid=overdue]')).toBe(String(fleet.expected.overdue));
    expect(await page.locator('.charts svg').count()).toBe(5);
    const groupBar = await page.locator('.charts svg').first().boundingBox();
    expect(groupBar!.width).toBeGreaterThan(200);

    await page.click('nav >> text=Endpoints');
    await page.selectOption('select[name=compliance]', 'noncompliant');
    await page.click('form.filters button');
    await expect.poll(() => page.locator('[data-testid=endpoints] tbody tr').count()).toBe(2);
    await page.click('text=b-web-1.example.net');
    expect(await page.textContent('[data-testid=failed]')).toContain('dpkg: lock held by another process');

    await page.click('nav >> text=Cycles');
    await page.click(`a:has-text("${fleet.cycleId}")`);
    await page.waitForURL(new RegExp(`/cycles/${fleet.cycleId}`));
    expect(await page.textContent('[data-testid=change-number]')).toContain('CHG0031337');
    const stages = await page.locator('[data-testid=timeline] li .badge').allTextContents();
    expect(stages).toEqual(['IDENTIFY', 'ASSESS', 'AWAIT_APPROVAL', 'DEPLOYING']);
    expect(await page.locator('[data-testid=approvals]').textContent()).toContain('slack:U0APPROVER');
    expect(await page.getAttribute('[data-testid=temporal-link]', 'href')).toBe(
      `http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(`patch-cycle:${fleet.cycleId}`)}`,
    );
    expect(await page.locator('[data-testid=waves] tbody tr').count()).toBe(1);
    expect(await page.locator('[data-testid=action-pause]').count()).toBe(0);
    await page.close();
  });

  it('runs an admin action as admin and sees the same action refused as viewer', async () => {
    const admin = await pageFor('admin-pause');
    await signIn(admin, 'ada', 'ada-password-1');
    await admin.goto(`${base}/cycles/${fleet.cycleId}`);
    await admin.fill('form[action$="/pause"] input[name=reason]', 'change freeze');
    await Promise.all([admin.waitForURL(/ok=/), admin.click('[data-testid=action-pause]')]);
    expect(await admin.textContent('[data-testid=flash]')).toContain('Pause requested.');
    expect(cycles.calls.filter((c) => c.method === 'pause').map((c) => c.args)).toEqual([
      [fleet.cycleId, 'web:ada', 'change freeze'],
    ]);
    await admin.close();

    const viewer = await pageFor('viewer-refused');
    await signIn(viewer, 'vic', 'vic-password-1');
    await viewer.goto(`${base}/cycles/${fleet.cycleId}`);
    // The viewer has no button; post the same form by hand with the viewer's own valid CSRF token.
    const response = await Promise.all([
      viewer.waitForResponse((r) => r.url().endsWith('/pause')),
      // A string, so this file needs no DOM typings: it runs in the page.
      viewer.evaluate(`(() => {
        const token = document.querySelector('input[name=_csrf]').value;
        const f = document.createElement('form');
        f.method = 'post';
        f.action = '/cycles/${fleet.cycleId}/pause';
        f.innerHTML = '<input name="_csrf" value="' + token + '"><input name="reason" value="viewer try">';
        document.body.appendChild(f);
        f.submit();
      })()`),
    ]).then(([r]) => r);
    expect(response.status()).toBe(403);
    await viewer.waitForSelector('[data-testid=flash]');
    expect(await viewer.textContent('[data-testid=flash]')).toContain('you need the admin role');
    expect(cycles.calls.filter((c) => c.method === 'pause')).toHaveLength(1);
    await viewer.close();
  });

  it('adds and removes an exception from the browser (audited)', async () => {
    const page = await pageFor('exceptions');
    page.on('dialog', (d) => void d.accept());
    await signIn(page, 'ada', 'ada-password-1');
    await page.goto(`${base}/exceptions`);
    await page.fill('input[name=patchId]', 'b-KB5034441');
    await page.fill('input[name=reason]', 'waiting for vendor fix');
    await page.fill('input[name=expiresAt]', new Date(Date.now() + 14 * 86_400_000).toISOString().slice(0, 10));
    await Promise.all([page.waitForURL(/ok=/), page.click('[data-testid=exception-form] button')]);
    expect(await page.textContent('[data-testid=exceptions]')).toContain('waiting for vendor fix');
    await Promise.all([page.waitForURL(/removed/), page.click('[data-testid=exceptions] button:has-text("Remove")')]);
    expect(await page.locator('[data-testid=exceptions]').count()).toBe(0);
    const audit = await listAudit(t.db, { action: 'exception.' });
    expect(audit.map((a) => [a.action, a.actor])).toEqual([
      ['exception.removed', 'web:ada'],
      ['exception.added', 'web:ada'],
    ]);
    await page.close();
  });
});
