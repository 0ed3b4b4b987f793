import { afterEach, expect, it } from 'vitest';
import { startDemoPage, textsOf, type DemoPage } from './demo-page';

let page: DemoPage | undefined;
afterEach(async () => {
  await page?.close();
  page = undefined;
});

it('collects the texts of Block Kit and Adaptive Card documents in order', () => {
  const blocks = [
    { type: 'section', text: { type: 'mrkdwn', text: '*Cycle PC-1* needs approval' } },
    { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Approve' } }] },
  ];
  expect(textsOf(blocks)).toEqual(['*Cycle PC-1* needs approval', 'Approve']);
  expect(textsOf([{ content: { body: [{ type: 'TextBlock', text: 'Teams card' }] } }])).toEqual(['Teams card']);
  expect(textsOf(undefined)).toEqual([]);
});

it('shows the cards escaped, sends a click through the source, and serves the e-mail sandboxed', async () => {
  const clicked: string[] = [];
  page = await startDemoPage({
    cards: () => ({ slack: ['<script>alert(1)</script> approve PC-1'], teams: [] }),
    click: async (platform) => {
      clicked.push(platform);
      return `${platform}: Approve clicked`;
    },
    mails: () => [{ to: ['cab@example.test'], subject: 'Cycle completed', html: '<h1>Report</h1>', text: 'Report' }],
  });
  const home = await (await fetch(`${page.url}/`)).text();
  expect(home).toContain('&lt;script&gt;alert(1)&lt;/script&gt; approve PC-1');
  expect(home).not.toContain('<script>alert(1)');
  expect(home).toMatch(/<button disabled>Approve \(Teams\)/); // not posted yet: nothing to click
  const click = await fetch(`${page.url}/click/slack`, { method: 'POST', redirect: 'manual' });
  expect(click.status).toBe(303);
  expect(clicked).toEqual(['slack']);
  expect(await (await fetch(`${page.url}/`)).text()).toContain('slack: Approve clicked');

  expect(await (await fetch(`${page.url}/mail`)).text()).toContain('Cycle completed');
  const mail = await fetch(`${page.url}/mail/0`);
  expect(mail.headers.get('content-security-policy')).toBe('sandbox');
  expect(await mail.text()).toBe('<h1>Report</h1>');
  expect((await fetch(`${page.url}/mail/7`)).status).toBe(404);
});
