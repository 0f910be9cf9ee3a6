import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsReport } from '../src/service/admin/stats.js';
import type { SessionResource, UserSessionResource } from '../src/service/index.js';
import { launchChromium } from './helpers/chromium.js';
import { randomKey, ROOT, startService } from './helpers/service.js';
import type { RunningService } from './helpers/service.js';

// Each run leaves its screenshot for review in test-results/ (ignored by git); docs/dashboard.png
// is a copy of one such run, refreshed by hand when the page changes.
const SCREENSHOT = join(ROOT, 'test-results', 'dashboard.png');

let browser: Browser;
let service: RunningService;
const key = randomKey();

beforeAll(async () => {
  [browser, service] = await Promise.all([launchChromium(), startService({ apiKeys: [key] })]);
});

afterAll(async () => {
  await Promise.all([browser?.close(), service?.close()]);
});

async function createSession(userId: string, data: Record<string, unknown> = {}): Promise<SessionResource> {
  const response = await service.request('POST', '/v1/sessions', { key, json: { userId, data } });
  expect(response.status).toBe(201);
  return (await response.json()) as SessionResource;
}

async function sessionsOf(userId: string): Promise<UserSessionResource[]> {
  const response = await service.request('GET', `/v1/users/${userId}/sessions`, { key });
  return ((await response.json()) as { sessions: UserSessionResource[] }).sessions;
}

/** API traffic in the background: reads, writes and a few 404s, until stopped. */
function traffic(ids: string[]): () => Promise<void> {
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const id = ids[i % ids.length] as string;
      await service.request('GET', `/v1/sessions/${id}`, { key });
      await service.request('PATCH', `/v1/sessions/${id}`, { key, json: { set: { [`f${i % 5}`]: i } } });
      if (i % 10 === 0) await service.request('GET', `/v1/sessions/${'A'.repeat(43)}`, { key });
      if (i % 7 === 0) await createSession(`visitor-${i}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

/** Runs in the page (the test program is compiled without the DOM library, hence the cast). */
const storedKeys = (): number => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length;

function watchErrors(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  page.on('requestfailed', (request) => problems.push(`requestfailed: ${request.url()}`));
  return problems;
}

describe('admin dashboard in headless Chromium', () => {
  it('logs in with the API key, charts live traffic, looks up a user, revokes one session and then all', async () => {
    const alice = [await createSession('alice', { cart: ['a'] }), await createSession('alice'), await createSession('alice')];
    const bob = await createSession('bob');
    const stop = traffic([...alice.map((session) => session.id), bob.id]);

    const page = await browser.newPage({ viewport: { width: 1280, height: 980 } });
    const problems = watchErrors(page);
    try {
      const response = await page.goto(`${service.url}/admin`);
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-security-policy']).toMatch(/default-src 'self'/);

      // Without a key only the login form shows; a wrong key is refused.
      await page.locator('#login').waitFor({ state: 'visible' });
      expect(await page.locator('#dashboard').isHidden()).toBe(true);
      await page.fill('#key', 'wrong-key-0123456789');
      await page.click('#login-form button[type=submit]');
      await expect.poll(() => page.textContent('#login-error')).toContain('not accepted');

      await page.fill('#key', key);
      await page.click('#login-form button[type=submit]');
      await page.locator('#dashboard').waitFor({ state: 'visible' });
      expect(await page.evaluate(storedKeys)).toBe(1);

      // Two samples make the first rates; wait for the charts to draw lines with numbers.
      await expect.poll(async () => Number(await page.getAttribute('body', 'data-samples')), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      await expect.poll(() => page.textContent('#tile-rps'), { timeout: 10_000 }).toMatch(/^(?!0(\.0)?$)[0-9.]+k?$/);
      for (const chart of ['#chart-rps', '#chart-latency', '#chart-sessions', '#chart-keys']) {
        const points = await page.getAttribute(`${chart} polyline`, 'points');
        expect(points?.split(' ').length, chart).toBeGreaterThanOrEqual(2);
      }
      expect(Number(await page.textContent('#tile-created'))).toBeGreaterThanOrEqual(4);
      expect(await page.textContent('#tile-p99')).toMatch(/^[0-9.]+ ms$/);
      expect(await page.textContent('#tile-active')).toMatch(/^[0-9]+$/);
      expect(await page.textContent('#tile-bytes')).toMatch(/(B|KiB|MiB)$/);
      expect(await page.textContent('#store')).toBe('memory');
      await expect.poll(() => page.textContent('#errors-table tbody')).toContain('ESESS_NOT_FOUND');
      const axis = await page.locator('#chart-rps text.axis').allTextContents();
      expect(axis.some((label) => /[1-9]/.test(label))).toBe(true);

      // Look up alice: three sessions, by handle.
      await page.fill('#user-id', 'alice');
      await page.click('#lookup-form button[type=submit]');
      await expect.poll(() => page.textContent('#lookup-status')).toBe('3 live sessions for alice.');
      expect(await page.locator('#user-sessions tbody tr').count()).toBe(3);
      expect(await page.isHidden('#pager')).toBe(true);

      // Revoke one: the page and the API agree.
      const handles = (await sessionsOf('alice')).map((session) => session.handle);
      const shown = await page.getAttribute('#user-sessions tbody tr:first-child td.handle', 'title');
      expect(handles).toContain(shown);
      await page.click('#user-sessions tbody tr:first-child button.revoke');
      await expect.poll(() => page.textContent('#lookup-status')).toBe('Revoked 1 session. 2 live sessions for alice.');
      expect((await sessionsOf('alice')).map((session) => session.handle)).not.toContain(shown);
      expect(await sessionsOf('alice')).toHaveLength(2);

      // One more sample drawn since, so the screenshot shows the charts moving on.
      const drawn = Number(await page.getAttribute('body', 'data-samples'));
      await expect.poll(async () => Number(await page.getAttribute('body', 'data-samples')), { timeout: 10_000 }).toBeGreaterThan(drawn);
      mkdirSync(join(ROOT, 'test-results'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // Revoke all takes a second click to confirm.
      await page.click('#revoke-all');
      expect(await page.textContent('#revoke-all')).toBe('Click again to revoke all');
      expect(await sessionsOf('alice')).toHaveLength(2);
      await page.click('#revoke-all');
      await expect.poll(() => page.textContent('#lookup-status')).toBe('Revoked 2 sessions. 0 live sessions for alice.');
      expect(await sessionsOf('alice')).toEqual([]);
      expect(await sessionsOf('bob')).toHaveLength(1);
      const revokedSession = await service.request('GET', `/v1/sessions/${alice[2]!.id}`, { key });
      expect(revokedSession.status).toBe(404);

      // Forgetting the key returns to the login form and clears the tab's storage.
      await page.click('#logout');
      await page.locator('#login').waitFor({ state: 'visible' });
      expect(await page.evaluate(storedKeys)).toBe(0);
      expect(problems.filter((problem) => !problem.includes('401'))).toEqual([]);
    } finally {
      await stop();
      await page.close();
    }
  });

  it("pages a user's sessions ten at a time, with full handles that copy to the clipboard", async () => {
    const user = `carol-${randomKey()}`;
    for (let i = 0; i < 25; i++) await createSession(user);
    const handles = (await sessionsOf(user)).map((session) => session.handle);
    expect(handles).toHaveLength(25);

    const context = await browser.newContext();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: service.url });
    const page = await context.newPage();
    const problems = watchErrors(page);
    try {
      await page.goto(`${service.url}/admin`);
      await page.fill('#key', key);
      await page.click('#login-form button[type=submit]');
      await page.locator('#dashboard').waitFor({ state: 'visible' });
      await page.fill('#user-id', user);
      await page.click('#lookup-form button[type=submit]');
      await expect.poll(() => page.textContent('#lookup-status')).toBe(`25 live sessions for ${user}.`);

      const shown = async (): Promise<string[]> => page.locator('#user-sessions tbody td.handle code').allTextContents();
      expect(await shown()).toEqual(handles.slice(0, 10));
      expect(await page.textContent('#page-status')).toBe('1–10 of 25');
      expect(await page.isDisabled('#page-prev')).toBe(true);
      await page.click('#page-next');
      expect(await shown()).toEqual(handles.slice(10, 20));
      expect(await page.textContent('#page-status')).toBe('11–20 of 25');
      await page.click('#page-next');
      expect(await shown()).toEqual(handles.slice(20));
      expect(await page.textContent('#page-status')).toBe('21–25 of 25');
      expect(await page.isDisabled('#page-next')).toBe(true);

      // Revoking on the last page keeps the list in step with the API.
      await page.click('#user-sessions tbody tr:first-child button.revoke');
      await expect.poll(() => page.textContent('#lookup-status')).toBe(`Revoked 1 session. 24 live sessions for ${user}.`);
      expect(await page.textContent('#page-status')).toBe('1–10 of 24');
      expect(await shown()).not.toContain(handles[20]);

      await page.click('#user-sessions tbody tr:nth-child(2) button.copy');
      await expect.poll(() => page.textContent('#user-sessions tbody tr:nth-child(2) button.copy')).toBe('Copied');
      const copied = await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText());
      expect(copied).toBe((await shown())[1]);
      // The first poll, before the key was given, is refused: that 401 is the login.
      expect(problems.filter((problem) => !problem.includes('401'))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('shows "–" for p50 and p99 when the last seconds had no request, whatever earlier samples said', async () => {
    const page = await browser.newPage();
    const problems = watchErrors(page);
    const now = Date.now();
    const report: StatsReport = {
      intervalMs: 60_000,
      updatedAt: new Date(now).toISOString(),
      store: { name: 'memory', nativeTtl: true, userIndex: true },
      version: '0.0.0',
      totals: { requests: 40, errors: 0, clientErrors: 0, created: 1, expired: 0, destroyed: 0, revoked: 0, regenerated: 0, storeKeys: 1, storeBytes: 10, activeSessions: null },
      errorsByCode: [],
      recent: { windowMs: 10_000, rps: 0, p50: null, p99: null },
      // Traffic a minute ago, none since: the series still holds its latencies.
      series: { t: [now - 60_000, now], rps: [20, 0], p50: [3, null], p99: [8, null], errorsPerMin: [0, 0], createdPerMin: [1, 0], expiredPerMin: [0, 0], storeKeys: [1, 1], storeBytes: [10, 10] },
    };
    try {
      // The page gets these stats whatever it sends, so it opens without asking for a key.
      await page.route('**/admin/api/stats', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(report) }));
      await page.goto(`${service.url}/admin`);
      await expect.poll(() => page.textContent('#store')).toBe('memory');
      expect(await page.textContent('#tile-p50')).toBe('–');
      expect(await page.textContent('#tile-p99')).toBe('–');
      expect(await page.textContent('#tile-rps')).toBe('0.0');
      expect(problems).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('needs no key when the service has none (loopback only)', async () => {
    const open = await startService();
    const page = await browser.newPage();
    const problems = watchErrors(page);
    try {
      await page.goto(`${open.url}/admin`);
      await page.locator('#dashboard').waitFor({ state: 'visible' });
      expect(await page.isHidden('#login')).toBe(true);
      expect(await page.isHidden('#logout')).toBe(true);
      await expect.poll(() => page.textContent('#store')).toBe('memory');
      expect(problems).toEqual([]);
    } finally {
      await page.close();
      await open.close();
    }
  });
});
