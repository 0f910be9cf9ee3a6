/** The dashboard's script, served as /admin/assets/admin.js (no build step, no dependencies). */
export const ADMIN_JS = String.raw`(function () {
  'use strict';
  var STORAGE_KEY = 'elastic-session-admin-key';
  var SVG = 'http://www.w3.org/2000/svg';
  var PAGE_SIZE = 10;
  var state = { key: null, timer: null, userId: null, armedUntil: 0, sessions: [], page: 0 };
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
    // The "now" tiles are over the last few seconds: no request in them shows "–", not an old value.
    text('tile-rps', rate(stats.recent.rps));
    text('tile-p50', millis(stats.recent.p50));
    text('tile-p99', millis(stats.recent.p99));
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
      if (entry.status < 500) row.className = 'client';
      row.insertCell().textContent = entry.code;
      var status = row.insertCell();
      status.className = 'num';
      status.textContent = String(entry.status);
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
      state.sessions = result.sessions;
      state.page = 0;
      renderSessions();
      $('revoke-all').hidden = result.sessions.length === 0;
      disarm();
      var count = result.sessions.length + ' live session' + (result.sessions.length === 1 ? '' : 's');
      text('lookup-status', (note ? note + ' ' : '') + count + ' for ' + userId + '.');
    }, lookupFailed);
  }

  // One page of the user's sessions; handles in full (they are what support staff copy).
  function renderSessions() {
    var sessions = state.sessions, userId = state.userId;
    var pages = Math.max(1, Math.ceil(sessions.length / PAGE_SIZE));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    var first = state.page * PAGE_SIZE;
    var table = $('user-sessions'), body = table.tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    sessions.slice(first, first + PAGE_SIZE).forEach(function (session) {
      var row = body.insertRow();
      var handle = row.insertCell();
      handle.className = 'handle';
      handle.title = session.handle;
      var code = document.createElement('code');
      code.textContent = session.handle;
      handle.appendChild(code);
      var copy = document.createElement('button');
      copy.type = 'button';
      copy.className = 'copy';
      copy.textContent = 'Copy';
      copy.addEventListener('click', function () { copyHandle(code, copy); });
      handle.appendChild(copy);
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
    table.hidden = sessions.length === 0;
    $('pager').hidden = sessions.length <= PAGE_SIZE;
    $('page-prev').disabled = state.page === 0;
    $('page-next').disabled = state.page >= pages - 1;
    text('page-status', sessions.length === 0 ? '' : (first + 1) + '–' + Math.min(first + PAGE_SIZE, sessions.length) + ' of ' + sessions.length);
  }

  function showPage(delta) {
    state.page += delta;
    renderSessions();
  }

  // The clipboard API needs a secure context (https or localhost); elsewhere the handle is selected for Ctrl-C.
  function copyHandle(code, button) {
    function done(label) {
      button.textContent = label;
      setTimeout(function () { button.textContent = 'Copy'; }, 1500);
    }
    function select() {
      var range = document.createRange();
      range.selectNodeContents(code);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      done('Selected');
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(code.textContent).then(function () { done('Copied'); }, select);
    else select();
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
    $('page-prev').addEventListener('click', function () { showPage(-1); });
    $('page-next').addEventListener('click', function () { showPage(1); });
    poll();
  });
})();
`;
