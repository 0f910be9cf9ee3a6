import type { Registry } from 'prom-client';
import type { SessionStore } from '../../core/types.js';
import { SessionError } from '../../core/errors.js';
import type { Reply, Route } from '../http.js';
import { ADMIN_CSS, ADMIN_HTML, indexHtml } from './assets.js';
import { ADMIN_JS } from './script.js';
import { recentOf, seriesOf, statusOfCode, StatsHistory } from './stats.js';
import type { StatsHistoryOptions, StatsReport } from './stats.js';

export { quantile, readSample, recentOf, seriesOf, StatsHistory } from './stats.js';
export type { RecentStats, StatsReport, StatsSample, StatsSeries } from './stats.js';

export interface AdminOptions {
  registry: Registry;
  store: SessionStore;
  version: string;
  history?: StatsHistoryOptions;
}

/**
 * The page may only load its own script and stylesheet and talk to its own origin: no inline
 * script or style, no framing, and no form that could post the API key anywhere.
 */
export const ADMIN_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE_HEADERS = {
  'content-security-policy': ADMIN_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

const ASSETS: Record<string, { text: string; contentType: string }> = {
  'admin.js': { text: ADMIN_JS, contentType: 'text/javascript; charset=utf-8' },
  'admin.css': { text: ADMIN_CSS, contentType: 'text/css; charset=utf-8' },
};

/** Where to go from `GET /`. */
const INDEX_LINKS = { admin: '/admin', openapi: '/openapi.json', health: '/healthz', metrics: '/metrics' } as const;

/** Whether an Accept header asks for HTML before JSON (a browser's does; curl's and fetch's do not). */
function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const html = accept.search(/\btext\/html\b/i);
  const json = accept.search(/\bapplication\/json\b/i);
  return html !== -1 && (json === -1 || html < json);
}

/**
 * The admin dashboard: the page and its assets (public: they hold no data), and the stats it
 * polls (behind the API keys, like `/v1`). User lookup and revocation use the `/v1` routes.
 * Also `GET /`, the service's index: links to the dashboard, the OpenAPI document and health.
 */
export function adminRoutes(options: AdminOptions): { routes: Route[]; close(): void } {
  const history = new StatsHistory(options.registry, options.history);
  const { store } = options;
  const storeInfo = { name: store.name, nativeTtl: store.capabilities.nativeTtl, userIndex: store.capabilities.userIndex };

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/',
      operationId: 'index',
      async handler(context): Promise<Reply> {
        const headers = { vary: 'accept' };
        if (prefersHtml(context.req.headers.accept)) {
          return { status: 200, text: indexHtml(options.version), contentType: 'text/html; charset=utf-8', headers: { ...PAGE_HEADERS, ...headers } };
        }
        return { status: 200, body: { service: 'elastic-session', version: options.version, links: INDEX_LINKS }, headers };
      },
    },
    {
      method: 'GET',
      path: '/admin',
      operationId: 'adminDashboard',
      async handler(): Promise<Reply> {
        return { status: 200, text: ADMIN_HTML, contentType: 'text/html; charset=utf-8', headers: PAGE_HEADERS };
      },
    },
    {
      method: 'GET',
      path: '/admin/assets/{file}',
      operationId: 'adminAsset',
      async handler(context): Promise<Reply> {
        const asset = Object.hasOwn(ASSETS, context.params.file ?? '') ? ASSETS[context.params.file as string] : undefined;
        if (!asset) throw new SessionError('ESESS_NOT_FOUND', { message: 'No such asset' });
        return { status: 200, text: asset.text, contentType: asset.contentType, headers: PAGE_HEADERS };
      },
    },
    {
      method: 'GET',
      path: '/admin/api/stats',
      operationId: 'adminStats',
      async handler(): Promise<Reply> {
        const samples = await history.samples();
        const latest = await history.latest();
        const { at: _at, latency: _latency, errorsByCode, expiredUnswept: _unswept, ...totals } = latest;
        const report: StatsReport = {
          intervalMs: history.intervalMs,
          updatedAt: new Date(latest.at).toISOString(),
          store: storeInfo,
          version: options.version,
          totals,
          errorsByCode: Object.entries(errorsByCode)
            .map(([code, count]) => ({ code, status: statusOfCode(code), count }))
            .sort((a, b) => b.count - a.count),
          recent: recentOf(samples, latest, history.recentMs),
          series: seriesOf(samples),
        };
        return { status: 200, body: report };
      },
    },
  ];
  return { routes, close: () => history.close() };
}
