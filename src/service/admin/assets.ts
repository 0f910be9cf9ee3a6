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
      <div class="tile"><span class="label">Errors since start</span><span class="value" id="tile-errors">–</span></div>
      <div class="tile"><span class="label">Created since start</span><span class="value" id="tile-created">–</span></div>
      <div class="tile"><span class="label">Expired since start</span><span class="value" id="tile-expired">–</span></div>
      <div class="tile"><span class="label" id="tile-active-label">Active sessions</span><span class="value" id="tile-active">–</span></div>
      <div class="tile"><span class="label">Store keys</span><span class="value" id="tile-keys">–</span></div>
      <div class="tile"><span class="label">Store size</span><span class="value" id="tile-bytes">–</span></div>
    </section>
    <section class="charts">
      <figure class="card"><figcaption>API requests per second</figcaption><svg id="chart-rps" class="chart" viewBox="0 0 600 170" role="img" aria-label="Requests per second"></svg></figure>
      <figure class="card"><figcaption>Latency (ms): <span class="key a">p50</span> <span class="key b">p99</span></figcaption><svg id="chart-latency" class="chart" viewBox="0 0 600 170" role="img" aria-label="Latency"></svg></figure>
      <figure class="card"><figcaption>Errors per minute</figcaption><svg id="chart-errors" class="chart" viewBox="0 0 600 170" role="img" aria-label="Errors per minute"></svg></figure>
      <figure class="card"><figcaption>Sessions per minute: <span class="key a">created</span> <span class="key b">expired</span></figcaption><svg id="chart-sessions" class="chart" viewBox="0 0 600 170" role="img" aria-label="Sessions created and expired per minute"></svg></figure>
      <figure class="card"><figcaption>Store keys</figcaption><svg id="chart-keys" class="chart" viewBox="0 0 600 170" role="img" aria-label="Store keys"></svg></figure>
      <figure class="card"><figcaption>Store size</figcaption><svg id="chart-bytes" class="chart" viewBox="0 0 600 170" role="img" aria-label="Store bytes"></svg></figure>
    </section>
    <section class="columns">
      <div class="card">
        <h2>Errors by code</h2>
        <table id="errors-table"><thead><tr><th>code</th><th class="num">since start</th></tr></thead><tbody></tbody></table>
        <p id="errors-empty" class="muted">No errors.</p>
      </div>
      <div class="card">
        <h2>Sessions of a user</h2>
        <form id="lookup-form" autocomplete="off">
          <input id="user-id" placeholder="user ID" aria-label="user ID" required maxlength="512">
          <button type="submit">Look up</button>
        </form>
        <p id="lookup-status" class="muted" role="status"></p>
        <table id="user-sessions" hidden><thead><tr><th>handle</th><th>created</th><th>last seen</th><th>expires</th><th></th></tr></thead><tbody></tbody></table>
        <button id="revoke-all" type="button" class="danger" hidden>Revoke all sessions of this user</button>
      </div>
    </section>
  </div>
</main>
</body>
</html>
`;

export const ADMIN_CSS = String.raw`:root {
  --bg: #f6f7f9; --card: #fff; --text: #1d2330; --muted: #6b7385; --line: #e3e6ec;
  --a: #2563eb; --b: #e0621b; --danger: #c62828; --ok: #1b8a4a;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 14px; color: var(--text); background: var(--bg);
}
* { box-sizing: border-box; }
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
td.handle { font-family: ui-monospace, monospace; }
#revoke-all { margin-top: 10px; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
`;

export const ADMIN_JS = String.raw`(function () {
  'use strict';
  var STORAGE_KEY = 'elastic-session-admin-key';
  var SVG = 'http://www.w3.org/2000/svg';
  var state = { key: null, timer: null, userId: null, armedUntil: 0 };
  try { state.key = window.sessionStorage.getItem(STORAGE_KEY); } catch (e) { state.key = null; }

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value; }

  function AuthError() { this.message = 'unauthorized'; }

  function request(method, path) {
    var headers = { accept: 'application/json' };
    if (state.key) headers.authorization = 'Bearer ' + state.key;
    return fetch(path, { method: method, headers: headers, cache: 'no-store', credentials: 'omit', redirect: 'error' }).then(function (response) {
      if (response.status === 401) throw new AuthError();
      if (response.status === 204) return null;
      return response.json().then(function (body) {
        if (!response.ok) throw new Error((body && (body.detail || body.title)) || ('HTTP ' + response.status));
        return body;
      });
    });
  }

  // ---- formatting ----
  function number(value, digits) {
    if (value === null || value === undefined || !isFinite(value)) return '–';
    if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(1) + 'M';
    if (Math.abs(value) >= 1e4) return (value / 1e3).toFixed(1) + 'k';
    return value.toFixed(digits === undefined ? 0 : digits);
  }
  function rate(value) { return number(value, value !== null && value !== undefined && value < 10 ? 1 : 0); }
  function millis(value) {
    if (value === null || value === undefined || !isFinite(value)) return '–';
    return (value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)) + ' ms';
  }
  function bytes(value) {
    if (value === null || value === undefined || !isFinite(value)) return '–';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return (i === 0 ? value.toFixed(0) : value.toFixed(1)) + ' ' + units[i];
  }
  function time(iso) { var d = new Date(iso); return d.toLocaleString(); }
  function last(list) {
    for (var i = list.length - 1; i >= 0; i--) if (list[i] !== null && list[i] !== undefined) return list[i];
    return null;
  }

  // ---- charts: hand-drawn SVG ----
  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }
  function el(name, attributes, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attributes) node.setAttribute(key, String(attributes[key]));
    if (parent) parent.appendChild(node);
    return node;
  }
  function drawChart(svg, times, lines, format) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = 600, H = 170, left = 58, right = 8, top = 8, bottom = 22;
    var max = 0, any = false;
    lines.forEach(function (line) { line.values.forEach(function (v) { if (v !== null && isFinite(v)) { any = true; if (v > max) max = v; } }); });
    max = niceMax(max);
    for (var g = 0; g <= 2; g++) {
      var gy = top + (H - top - bottom) * (1 - g / 2);
      el('line', { x1: left, x2: W - right, y1: gy, y2: gy, 'class': 'grid' }, svg);
      el('text', { x: left - 6, y: gy + 4, 'text-anchor': 'end', 'class': 'axis' }, svg).textContent = format(max * g / 2);
    }
    if (!any || times.length < 1) {
      el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', 'class': 'empty' }, svg).textContent = 'collecting…';
      return;
    }
    var t0 = times[0], t1 = times[times.length - 1];
    var span = Math.max(t1 - t0, 1);
    function x(t) { return times.length === 1 ? W - right : left + (W - left - right) * (t - t0) / span; }
    function y(v) { return top + (H - top - bottom) * (1 - v / max); }
    el('text', { x: left, y: H - 5, 'class': 'axis' }, svg).textContent = new Date(t0).toLocaleTimeString();
    el('text', { x: W - right, y: H - 5, 'text-anchor': 'end', 'class': 'axis' }, svg).textContent = new Date(t1).toLocaleTimeString();
    lines.forEach(function (line, index) {
      var points = [];
      line.values.forEach(function (v, i) { if (v !== null && isFinite(v)) points.push(x(times[i]).toFixed(1) + ',' + y(v).toFixed(1)); });
      if (points.length === 1) points.push((x(times[0]) - 4).toFixed(1) + ',' + points[0].split(',')[1]);
      if (index === 0 && lines.length === 1 && points.length > 1) {
        var first = points[0].split(','), lastPoint = points[points.length - 1].split(',');
        el('polygon', { points: first[0] + ',' + y(0) + ' ' + points.join(' ') + ' ' + lastPoint[0] + ',' + y(0), 'class': 'area' }, svg);
      }
      el('polyline', { points: points.join(' '), 'class': 'line ' + (index === 0 ? 'a' : 'b') }, svg);
    });
  }

  // ---- stats ----
  function render(stats) {
    var s = stats.series, t = stats.totals;
    text('store', stats.store.name);
    text('version', 'v' + stats.version);
    text('updated', 'updated ' + new Date(stats.updatedAt).toLocaleTimeString());
    text('tile-rps', rate(last(s.rps)));
    text('tile-p50', millis(last(s.p50)));
    text('tile-p99', millis(last(s.p99)));
    text('tile-errors', number(t.errors));
    text('tile-created', number(t.created));
    text('tile-expired', number(t.expired));
    text('tile-active', t.activeSessions ? number(t.activeSessions.value) : '–');
    text('tile-active-label', t.activeSessions && t.activeSessions.accuracy !== 'exact' ? 'Active sessions (estimate)' : 'Active sessions');
    text('tile-keys', number(t.storeKeys));
    text('tile-bytes', bytes(t.storeBytes));
    drawChart($('chart-rps'), s.t, [{ values: s.rps }], rate);
    drawChart($('chart-latency'), s.t, [{ values: s.p50 }, { values: s.p99 }], millis);
    drawChart($('chart-errors'), s.t, [{ values: s.errorsPerMin }], rate);
    drawChart($('chart-sessions'), s.t, [{ values: s.createdPerMin }, { values: s.expiredPerMin }], rate);
    drawChart($('chart-keys'), s.t, [{ values: s.storeKeys }], number);
    drawChart($('chart-bytes'), s.t, [{ values: s.storeBytes }], bytes);
    var body = $('errors-table').tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    stats.errorsByCode.forEach(function (entry) {
      var row = body.insertRow();
      row.insertCell().textContent = entry.code;
      var cell = row.insertCell();
      cell.className = 'num';
      cell.textContent = number(entry.count);
    });
    $('errors-empty').hidden = stats.errorsByCode.length > 0;
    $('lookup-form').hidden = !stats.store.userIndex;
    if (!stats.store.userIndex) text('lookup-status', 'The ' + stats.store.name + ' store keeps no user index.');
    document.body.setAttribute('data-samples', String(s.t.length));
  }

  function poll() {
    clearTimeout(state.timer);
    request('GET', 'admin/api/stats').then(function (stats) {
      showDashboard();
      text('message', '');
      render(stats);
      state.timer = setTimeout(poll, stats.intervalMs || 2000);
    }, function (error) {
      if (error instanceof AuthError) { showLogin(state.key ? 'That key was not accepted.' : ''); return; }
      text('message', 'Cannot reach the service: ' + error.message);
      state.timer = setTimeout(poll, 5000);
    });
  }

  function showLogin(problem) {
    clearTimeout(state.timer);
    $('dashboard').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    text('login-error', problem || '');
    $('key').focus();
  }
  function showDashboard() {
    $('login').hidden = true;
    $('dashboard').hidden = false;
    $('logout').hidden = !state.key;
  }

  // ---- user sessions ----
  function userPath(userId) { return 'v1/users/' + encodeURIComponent(userId) + '/sessions'; }

  function lookup(userId, note) {
    state.userId = userId;
    text('lookup-status', 'Looking up…');
    return request('GET', userPath(userId)).then(function (result) {
      var table = $('user-sessions'), body = table.tBodies[0];
      while (body.firstChild) body.removeChild(body.firstChild);
      result.sessions.forEach(function (session) {
        var row = body.insertRow();
        var handle = row.insertCell();
        handle.className = 'handle';
        handle.textContent = session.handle.slice(0, 12) + '…';
        handle.title = session.handle;
        row.insertCell().textContent = time(session.createdAt);
        row.insertCell().textContent = time(session.lastSeenAt);
        row.insertCell().textContent = time(session.expiresAt);
        var button = document.createElement('button');
        button.type = 'button';
        button.className = 'revoke';
        button.textContent = 'Revoke';
        button.addEventListener('click', function () { revokeOne(userId, session.handle); });
        row.insertCell().appendChild(button);
      });
      table.hidden = result.sessions.length === 0;
      $('revoke-all').hidden = result.sessions.length === 0;
      disarm();
      var count = result.sessions.length + ' live session' + (result.sessions.length === 1 ? '' : 's');
      text('lookup-status', (note ? note + ' ' : '') + count + ' for ' + userId + '.');
    }, lookupFailed);
  }

  function lookupFailed(error) {
    if (error instanceof AuthError) { showLogin('That key was not accepted.'); return; }
    text('lookup-status', 'Failed: ' + error.message);
  }

  function revokeOne(userId, handle) {
    request('DELETE', userPath(userId) + '/' + encodeURIComponent(handle)).then(function () {
      return lookup(userId, 'Revoked 1 session.');
    }, lookupFailed);
  }

  function disarm() {
    state.armedUntil = 0;
    var button = $('revoke-all');
    button.classList.remove('armed');
    button.textContent = 'Revoke all sessions of this user';
  }

  function revokeAll() {
    var button = $('revoke-all');
    if (Date.now() > state.armedUntil) {
      state.armedUntil = Date.now() + 5000;
      button.classList.add('armed');
      button.textContent = 'Click again to revoke all';
      return;
    }
    disarm();
    var userId = state.userId;
    request('DELETE', userPath(userId)).then(function (result) {
      return lookup(userId, 'Revoked ' + result.revoked + ' session' + (result.revoked === 1 ? '' : 's') + '.');
    }, lookupFailed);
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('login-form').addEventListener('submit', function (event) {
      event.preventDefault();
      state.key = $('key').value.trim();
      $('key').value = '';
      try { window.sessionStorage.setItem(STORAGE_KEY, state.key); } catch (e) { /* private mode: keep it in memory */ }
      poll();
    });
    $('logout').addEventListener('click', function () {
      state.key = null;
      try { window.sessionStorage.removeItem(STORAGE_KEY); } catch (e) { /* nothing stored */ }
      showLogin('');
    });
    $('lookup-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var userId = $('user-id').value;
      if (userId) lookup(userId);
    });
    $('revoke-all').addEventListener('click', revokeAll);
    poll();
  });
})();
`;
