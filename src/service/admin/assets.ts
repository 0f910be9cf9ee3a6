/**
 * The admin dashboard's page, stylesheet and script, shipped as strings so that the plain `tsc`
 * build carries them into dist/ and nothing is fetched from elsewhere. The script is plain
 * ES2017 for any current browser, without dependencies; it writes data into the page only
 * through `textContent` and SVG attributes, never as HTML.
 */

export const ADMIN_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>elastic-session admin</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="admin/assets/admin.css">
<script src="admin/assets/admin.js" defer></script>
</head>
<body>
<header>
  <h1>elastic-session</h1>
  <span id="store" class="pill"></span>
  <span id="version" class="muted"></span>
  <span id="updated" class="muted"></span>
  <button id="logout" type="button" hidden>Forget key</button>
</header>
<main>
  <section id="login" class="card" hidden>
    <h2>API key</h2>
    <p class="muted">The dashboard needs one of the service's API keys. It is kept in this tab's sessionStorage and sent as a Bearer token to this service only.</p>
    <form id="login-form" autocomplete="off">
      <input id="key" type="password" placeholder="API key" aria-label="API key" required>
      <button type="submit">Open dashboard</button>
    </form>
    <p id="login-error" class="error" role="alert"></p>
  </section>
  <div id="dashboard" hidden>
    <p id="message" class="error" role="alert"></p>
    <section class="tiles" aria-label="Now">
      <div class="tile"><span class="label">Requests/s</span><span class="value" id="tile-rps">–</span></div>
      <div class="tile"><span class="label">p50 latency</span><span class="value" id="tile-p50">–</span></div>
      <div class="tile"><span class="label">p99 latency</span><span class="value" id="tile-p99">–</span></div>
      <div class="tile"><span class="label">Server errors since start</span><span class="value" id="tile-errors">–</span></div>
      <div class="tile"><span class="label">Created since start</span><span class="value" id="tile-created">–</span></div>
      <div class="tile"><span class="label">Expired since start</span><span class="value" id="tile-expired">–</span></div>
      <div class="tile"><span class="label" id="tile-active-label">Active sessions</span><span class="value" id="tile-active">–</span></div>
      <div class="tile"><span class="label">Store keys</span><span class="value" id="tile-keys">–</span></div>
      <div class="tile"><span class="label">Store size</span><span class="value" id="tile-bytes">–</span></div>
    </section>
    <section class="charts">
      <figure class="card"><figcaption>API requests per second</figcaption><svg id="chart-rps" class="chart" viewBox="0 0 600 170" role="img" aria-label="Requests per second"></svg></figure>
      <figure class="card"><figcaption>Latency (ms): <span class="key a">p50</span> <span class="key b">p99</span></figcaption><svg id="chart-latency" class="chart" viewBox="0 0 600 170" role="img" aria-label="Latency"></svg></figure>
      <figure class="card"><figcaption>Server errors per minute (5xx)</figcaption><svg id="chart-errors" class="chart" viewBox="0 0 600 170" role="img" aria-label="Server errors per minute"></svg></figure>
      <figure class="card"><figcaption>Sessions per minute: <span class="key a">created</span> <span class="key b">expired</span></figcaption><svg id="chart-sessions" class="chart" viewBox="0 0 600 170" role="img" aria-label="Sessions created and expired per minute"></svg></figure>
      <figure class="card"><figcaption>Store keys</figcaption><svg id="chart-keys" class="chart" viewBox="0 0 600 170" role="img" aria-label="Store keys"></svg></figure>
      <figure class="card"><figcaption>Store size</figcaption><svg id="chart-bytes" class="chart" viewBox="0 0 600 170" role="img" aria-label="Store bytes"></svg></figure>
    </section>
    <section class="columns">
      <div class="card">
        <h2>Problem responses by code</h2>
        <p class="muted">4xx are the caller's (unknown or expired IDs, bad input) and are not charted as errors.</p>
        <table id="errors-table"><thead><tr><th>code</th><th class="num">status</th><th class="num">since start</th></tr></thead><tbody></tbody></table>
        <p id="errors-empty" class="muted">No problem responses.</p>
      </div>
      <div class="card">
        <h2>Sessions of a user</h2>
        <form id="lookup-form" autocomplete="off">
          <input id="user-id" placeholder="user ID" aria-label="user ID" required maxlength="512">
          <button type="submit">Look up</button>
        </form>
        <p id="lookup-status" class="muted" role="status"></p>
        <table id="user-sessions" hidden><thead><tr><th>handle</th><th>created</th><th>last seen</th><th>expires</th><th></th></tr></thead><tbody></tbody></table>
        <nav id="pager" class="pager" aria-label="Pages of sessions" hidden>
          <button id="page-prev" type="button">‹ Previous</button>
          <span id="page-status" class="muted"></span>
          <button id="page-next" type="button">Next ›</button>
        </nav>
        <button id="revoke-all" type="button" class="danger" hidden>Revoke all sessions of this user</button>
      </div>
    </section>
  </div>
</main>
</body>
</html>
`;

/** The service's index page (`GET /` from a browser): where to go, no data, no script. */
export function indexHtml(version: string): string {
  const escaped = version.replace(/[^0-9A-Za-z.+-]/g, '');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>elastic-session</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="admin/assets/admin.css">
</head>
<body>
<header><h1>elastic-session</h1><span class="muted">v${escaped}</span></header>
<main>
  <section class="card">
    <h2>Session service</h2>
    <ul>
      <li><a href="admin">Admin dashboard</a>: live charts, user lookup and revocation</li>
      <li><a href="openapi.json">OpenAPI document</a>: the JSON API under <code>/v1</code></li>
      <li><a href="healthz">Health</a> and <a href="metrics">Prometheus metrics</a></li>
    </ul>
  </section>
</main>
</body>
</html>
`;
}

export const ADMIN_CSS = String.raw`:root {
  --bg: #f6f7f9; --card: #fff; --text: #1d2330; --muted: #6b7385; --line: #e3e6ec;
  --a: #2563eb; --b: #e0621b; --danger: #c62828; --ok: #1b8a4a;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 14px; color: var(--text); background: var(--bg);
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 12px; padding: 12px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header #logout { margin-left: auto; }
main { padding: 16px 20px; max-width: 1400px; margin: 0 auto; }
h2 { font-size: 15px; margin: 0 0 10px; }
.muted { color: var(--muted); }
.error { color: var(--danger); margin: 4px 0 10px; }
.error:empty { display: none; }
.pill { background: #e8eefc; color: var(--a); border-radius: 10px; padding: 2px 10px; font-weight: 600; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin: 0; }
#login { max-width: 520px; margin: 40px auto; }
form { display: flex; gap: 8px; }
input { flex: 1; padding: 7px 9px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
button { padding: 7px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; font: inherit; cursor: pointer; }
button[type=submit] { background: var(--a); color: #fff; border-color: var(--a); }
button.danger, button.revoke { color: var(--danger); border-color: #f0c4c4; }
button.danger.armed { background: var(--danger); color: #fff; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(110px, 1fr)); gap: 10px; margin-bottom: 14px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; display: flex; flex-direction: column; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; margin-bottom: 14px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
.key.a { color: var(--a); } .key.b { color: var(--b); }
.chart { width: 100%; height: auto; display: block; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .axis { fill: var(--muted); font-size: 11px; }
.chart .line { fill: none; stroke-width: 2; stroke-linejoin: round; }
.chart .line.a { stroke: var(--a); } .chart .line.b { stroke: var(--b); }
.chart .area { fill: #2563eb14; stroke: none; }
.chart .empty { fill: var(--muted); font-size: 13px; }
.columns { display: grid; grid-template-columns: 1fr 2fr; gap: 12px; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; }
th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
.num { text-align: right; }
td.handle { font-family: ui-monospace, monospace; white-space: nowrap; }
td.handle code { user-select: all; }
button.copy { margin-left: 6px; padding: 2px 8px; font-size: 12px; }
tr.client td { color: var(--muted); }
.pager { display: flex; align-items: center; gap: 10px; margin-top: 8px; }
#revoke-all { margin-top: 10px; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
`;
