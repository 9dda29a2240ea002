// imeilockd dashboard: plain JavaScript over the operator API (/v1). It opens
// on the fleet (GET /v1/fleet); an ICCID opens that SIM. The token lives in
// sessionStorage (gone when the tab closes). The fleet, or the open SIM, is
// polled every few seconds so bars and order progress show without reload.
'use strict';

const POLL_MS = 3000;
const TOKEN_KEY = 'imeilock.token';

const $ = (id) => document.getElementById(id);
let current = null;      // ICCID on screen
let currentSim = null;   // its last JSON
let nextCursor = null;
let polling = null;
let inFlight = false;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (token()) headers['Authorization'] = 'Bearer ' + token();
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : ('HTTP ' + res.status);
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return data;
}

function say(text, kind) {
  const m = $('message');
  m.textContent = text;
  m.className = kind || '';
  m.hidden = !text;
}

function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  return d.toLocaleString();
}

const LOCK_LABEL = { off: 'off', awaiting_first_imei: 'locking to next seen IMEI', locked: 'locked' };
const BAR_LABEL = { none: 'not barred', bar_pending: 'bar pending', barred: 'barred',
                    unbar_pending: 'unbar pending' };
const REASON_LABEL = { imei_lock: 'IMEI lock', manual: 'manual' };
const ACTION_LABEL = { bar: 'bar', alert: 'alert only (monitor mode)',
                       disconnect_and_bar: 'disconnect, then bar' };

function badge(el, state, label) {
  el.textContent = '';
  const span = document.createElement('span');
  span.className = 'badge ' + state;
  span.textContent = label;
  el.appendChild(span);
  el.dataset.state = state;
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '—' : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}

// -- Search ------------------------------------------------------------------

async function search(append) {
  const iccid = $('search-iccid').value.trim();
  if (iccid && !append) return openSim(iccid);
  const q = new URLSearchParams();
  if ($('filter-lock').value) q.set('lock_state', $('filter-lock').value);
  if ($('filter-bar').value) q.set('bar_state', $('filter-bar').value);
  if ($('filter-network').value.trim()) q.set('network', $('filter-network').value.trim());
  if ($('filter-alerted').checked) q.set('alerted', 'true');
  if ($('filter-no-imei').checked) q.set('never_with_imei', 'true');
  q.set('limit', '50');
  if (append && nextCursor) q.set('cursor', nextCursor);
  try {
    const page = await api('GET', '/v1/sims?' + q.toString());
    const body = $('sim-list').querySelector('tbody');
    if (!append) body.textContent = '';
    for (const s of page.items) {
      const tr = document.createElement('tr');
      cell(tr, s.iccid, 'imei');
      cell(tr, s.network);
      cell(tr, s.status);
      cell(tr, LOCK_LABEL[s.lock.state]);
      cell(tr, s.lock.imei, 'imei');
      cell(tr, BAR_LABEL[s.bar.state]);
      tr.addEventListener('click', () => openSim(s.iccid));
      body.appendChild(tr);
    }
    $('sim-list').hidden = false;
    nextCursor = page.next_cursor;
    $('more').hidden = !nextCursor;
    say(page.items.length || append ? '' : 'No SIM matches.');
  } catch (e) { say(e.message, 'error'); }
}

// -- SIMs that violated in monitor mode --------------------------------------

async function loadAlerted() {
  if (!token()) return;
  try {
    const page = await api('GET', '/v1/sims?alerted=true&limit=100');
    const body = $('alerted-list').querySelector('tbody');
    body.textContent = '';
    for (const s of page.items) {
      const tr = document.createElement('tr');
      cell(tr, s.iccid, 'imei');
      cell(tr, s.network);
      cell(tr, s.lock.imei, 'imei');
      cell(tr, s.last_seen_imei, 'imei');
      cell(tr, BAR_LABEL[s.bar.state]);
      cell(tr, ACTION_LABEL[s.violation_action] || s.violation_action);
      tr.addEventListener('click', () => openSim(s.iccid));
      body.appendChild(tr);
    }
    $('alerted').hidden = page.items.length === 0;
  } catch (e) { /* the search and SIM views report API errors */ }
}

// -- The fleet ---------------------------------------------------------------
// The first page: every network's SIMs by state, its open orders against its
// limits, the last 24 hours of violations, the latest violations and bars
// (each ICCID opens its SIM), running bulk jobs. Polled while on screen.

let fleetInFlight = false;

function simLink(tr, iccid) {
  const td = document.createElement('td');
  const a = document.createElement('a');
  a.href = '#sim=' + iccid;
  a.className = 'imei sim-link';
  a.textContent = iccid;
  a.addEventListener('click', (ev) => { ev.preventDefault(); openSim(iccid); });
  td.appendChild(a);
  tr.appendChild(td);
}

async function loadFleet() {
  if (!token()) {
    $('fleet-body').hidden = true;
    $('fleet-login').hidden = false;
    return;
  }
  if ($('fleet').hidden || fleetInFlight) return;
  fleetInFlight = true;
  try {
    renderFleet(await api('GET', '/v1/fleet'));
    $('fleet-note').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    $('fleet-note').textContent = 'not updated: ' + e.message;
  } finally {
    fleetInFlight = false;
  }
}

function renderFleet(f) {
  $('fleet-login').hidden = true;
  $('fleet-body').hidden = false;
  const nets = $('fleet-networks').querySelector('tbody');
  nets.textContent = '';
  for (const n of f.networks) {
    const tr = document.createElement('tr');
    tr.dataset.network = n.network;
    cell(tr, n.network);
    cell(tr, n.sims);
    cell(tr, n.lock.locked);
    cell(tr, n.lock.awaiting_first_imei);
    cell(tr, n.lock.off);
    cell(tr, n.bar.barred, n.bar.barred ? 'bad' : '');
    cell(tr, n.bar.bar_pending, n.bar.bar_pending ? 'bad' : '');
    cell(tr, n.bar.unbar_pending);
    const o = n.orders;
    cell(tr, o.queued + ' / ' + o.max_queue, o.queued >= 0.8 * o.max_queue ? 'warn' : '');
    cell(tr, o.in_flight + ' / ' + o.max_in_flight,
         o.in_flight >= 0.8 * o.max_in_flight ? 'warn' : '');
    cell(tr, o.rate_per_second + '/s, burst ' + o.burst);
    nets.appendChild(tr);
  }
  // One bar per hour, the current hour last; heights relative to the busiest.
  const chart = $('violations-chart');
  chart.textContent = '';
  const peak = Math.max(1, ...f.violations.per_hour.map((h) => h.violations));
  for (const h of f.violations.per_hour) {
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.dataset.count = h.violations;
    bar.style.height = (100 * h.violations / peak) + '%';
    const at = new Date(h.hour);
    bar.title = at.toLocaleString() + ': ' + h.violations + ' violation' +
                (h.violations === 1 ? '' : 's');
    chart.appendChild(bar);
  }
  $('violations-total').textContent = f.violations.total + ' since ' +
    new Date(f.violations.since).toLocaleString();
  const events = (id, list, row) => {
    const body = $(id).querySelector('tbody');
    body.textContent = '';
    for (const e of list) {
      const tr = document.createElement('tr');
      cell(tr, fmtTime(e.at));
      simLink(tr, e.iccid);
      row(tr, e);
      body.appendChild(tr);
    }
  };
  events('latest-violations', f.latest_violations, (tr, e) => {
    cell(tr, e.imei, 'imei');
    cell(tr, e.locked_imei, 'imei');
  });
  events('latest-bars', f.latest_bars,
         (tr, e) => cell(tr, REASON_LABEL[e.bar_reason] || e.bar_reason));
  const jobs = $('fleet-jobs').querySelector('tbody');
  jobs.textContent = '';
  for (const j of f.running_jobs) {
    const tr = document.createElement('tr');
    cell(tr, '#' + j.id);
    cell(tr, j.type + (j.unbar_mode ? ' (' + j.unbar_mode + ')' : ''));
    cell(tr, j.processed + ' / ' + j.total);
    cell(tr, j.placed);
    cell(tr, j.refused);
    cell(tr, j.orders.open);
    jobs.appendChild(tr);
  }
  $('fleet-jobs').hidden = f.running_jobs.length === 0;
  $('no-jobs').hidden = f.running_jobs.length !== 0;
}

function showFleet() {
  current = null;
  if (polling) clearInterval(polling);
  polling = null;
  history.replaceState(null, '', location.pathname);
  $('sim-view').hidden = true;
  $('fleet').hidden = false;
  loadFleet();
}

// -- One SIM -----------------------------------------------------------------

function openSim(iccid) {
  current = iccid;
  if (location.hash !== '#sim=' + iccid) history.replaceState(null, '', '#sim=' + iccid);
  $('fleet').hidden = true;
  $('sim-view').hidden = false;
  say('');
  refresh();
  if (polling) clearInterval(polling);
  polling = setInterval(refresh, POLL_MS);
}

async function refresh() {
  if (!current || inFlight) return;
  inFlight = true;
  const iccid = current;
  try {
    const [sim, orders, events] = await Promise.all([
      api('GET', '/v1/sims/' + encodeURIComponent(iccid)),
      api('GET', '/v1/sims/' + encodeURIComponent(iccid) + '/orders'),
      api('GET', '/v1/sims/' + encodeURIComponent(iccid) + '/events?limit=100'),
    ]);
    if (iccid !== current) return;
    renderSim(sim);
    renderOrders(orders.items);
    renderEvents(events.items);
    $('refresh-note').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    say(e.message, 'error');
    if (e.status === 404 || e.status === 422) {
      $('sim-view').hidden = true;
      clearInterval(polling);
      polling = null;
    }
  } finally {
    inFlight = false;
  }
}

function renderSim(s) {
  currentSim = s;
  $('sim-iccid').textContent = s.iccid;
  $('sim-imsis').textContent = s.imsis.join(', ');
  $('sim-msisdn').textContent = s.msisdn || '—';
  $('sim-network').textContent = s.network;
  $('sim-status').textContent = s.status;
  badge($('lock-state'), s.lock.state, LOCK_LABEL[s.lock.state]);
  $('lock-imei').textContent = s.lock.imei || '—';
  $('lock-scope-shown').textContent = !s.lock.scope ? '—'
    : s.lock.scope === 'device_model' ? 'device model (TAC ' +
      (s.lock.imei ? s.lock.imei.slice(0, 8) : 'of the first device seen') + ')'
    : 'this device (IMEI)';
  $('lock-scope-shown').dataset.scope = s.lock.scope || '';
  $('last-seen-imei').textContent = s.last_seen_imei || '—';
  badge($('bar-state'), s.bar.state, BAR_LABEL[s.bar.state]);
  $('bar-reason').textContent = s.bar.reason ? REASON_LABEL[s.bar.reason] || s.bar.reason : '—';
  $('trigger-imei').textContent = s.bar.trigger_imei || '—';
  $('pending-order').textContent = s.pending_order
    ? '#' + s.pending_order.id + ' ' + s.pending_order.type +
      (s.pending_order.unbar_mode ? ' (' + s.pending_order.unbar_mode + ')' : '')
    : '—';
  $('sim-updated').textContent = fmtTime(s.updated_at);
  $('last-observed').textContent = s.last_observed_at ? fmtTime(s.last_observed_at) : 'never';
  $('last-imei-at').textContent = s.last_imei_at ? fmtTime(s.last_imei_at) : 'never';
  if (s.last_observed_at && !s.last_imei_at)
    badge($('last-imei-at'), 'no-imei',
      'never — this SIM\'s network does not report an IMEI: the lock cannot take and ' +
      'no change event can bar it');
  if (s.violation_action)
    $('violation-action').textContent = ACTION_LABEL[s.violation_action] || s.violation_action;
  if (s.alerted) badge($('violation-action'), 'alerted',
    ($('violation-action').textContent || '') + ' \u2014 violated in monitor mode, not barred');

  // Offer what makes sense now; the daemon still checks every order.
  const active = s.status === 'active';
  const pending = !!s.pending_order;
  const barredBy = (r) => s.bar.state === 'barred' && s.bar.reason === r;
  // The configured eligibility (R1, R13) comes with the SIM; the daemon still
  // has the final word and refuses an ineligible order with its reason.
  const eligible = !!(s.eligibility && s.eligibility.imei_lock);
  $('enable-lock').disabled = pending || s.lock.state !== 'off' || !eligible;
  $('disable-lock').disabled = pending || s.lock.state === 'off';
  $('unbar-keep').disabled = pending || !barredBy('imei_lock');
  $('unbar-update').disabled = pending || !barredBy('imei_lock');
  $('unbar-manual').disabled = pending || !barredBy('manual');
  $('bar').disabled = pending || !active || s.bar.state !== 'none';
  $('activate').disabled = pending || active;
  const lockable = !!(s.eligibility && s.eligibility.lock_on_activation);
  renderActivationBox(lockable, s);
  if ($('activate-lock')) $('activate-lock').disabled = active;
  renderCaveats(s);
}

// The activation tick box exists only where the SIM's network allows IMEI
// locking on activation (R13); elsewhere it is not rendered at all and the
// daemon refuses such an order with its reason. Kept across polls (its tick).
function renderActivationBox(lockable, s) {
  const slot = $('activate-lock-slot');
  if (!lockable) {
    slot.textContent = '';
    $('activate-lock-unavailable').textContent =
      'IMEI Locking on activation is not available for ' + s.network + ' SIMs.';
    $('activate-lock-unavailable').hidden = false;
    return;
  }
  $('activate-lock-unavailable').hidden = true;
  if (!$('activate-lock')) {
    const label = document.createElement('label');
    label.id = 'activate-lock-label';
    const box = document.createElement('input');
    box.id = 'activate-lock';
    box.type = 'checkbox';
    label.append(box, ' Enable IMEI Locking');
    const tip = document.createElement('span');
    tip.className = 'tip';
    tip.id = 'tip-activate';
    tip.tabIndex = 0;
    tip.textContent = '?';
    slot.append(label, ' ', tip);
  }
  $('tip-activate').dataset.tip = (s.caveats && s.caveats.lock_on_activation) || '';
}

// The product text's caveats, as GET /v1/sims/{iccid} words them (the one
// table of lock/caveats.hpp): beside the action each concerns.
function renderCaveats(s) {
  const c = s.caveats || {};
  $('caveat-test').textContent = c.test_in_another_device || '';
  $('caveat-bar').textContent = c.bar_lead_time || '';
  $('tip-keep').dataset.tip = c.keep_lock || '';
  $('tip-update').dataset.tip = c.update_to_last_seen || '';
  // The keep-lock caveat in full where that option is offered (an IMEI-lock bar).
  const keepOffered = s.bar.state === 'barred' && s.bar.reason === 'imei_lock';
  $('caveat-keep').textContent = keepOffered ? c.keep_lock || '' : '';
  $('caveat-keep').hidden = !keepOffered;
  // A bar on its way (placed by hand or raised by a violation): it takes
  // effect after the network's lead time.
  const pendingBar = s.bar.state === 'bar_pending';
  $('caveat-bar-pending').textContent = !pendingBar ? ''
    : s.bar.reason === 'imei_lock' ? c.imei_lock_bar || '' : c.bar_lead_time || '';
  $('caveat-bar-pending').hidden = !pendingBar;
}

function renderOrders(items) {
  const body = $('orders-table').querySelector('tbody');
  body.textContent = '';
  for (const o of items) {
    const tr = document.createElement('tr');
    tr.dataset.status = o.status;
    cell(tr, o.id);
    cell(tr, o.type);
    cell(tr, o.unbar_mode || (o.enable_imei_lock ? 'with IMEI lock' : (o.bar_reason || '')));
    cell(tr, o.status);
    cell(tr, fmtTime(o.created_at));
    cell(tr, fmtTime(o.due_at));
    cell(tr, fmtTime(o.completed_at));
    cell(tr, o.failure_reason || '');
    body.appendChild(tr);
  }
}

function renderEvents(items) {
  const body = $('events-table').querySelector('tbody');
  body.textContent = '';
  for (const e of items) {
    const tr = document.createElement('tr');
    cell(tr, fmtTime(e.at));
    cell(tr, e.cause);
    cell(tr, e.imei, 'imei');
    cell(tr, LOCK_LABEL[e.before.lock.state] + ' → ' + LOCK_LABEL[e.after.lock.state] +
             (e.after.lock.imei ? ' ' + e.after.lock.imei : ''));
    cell(tr, e.after.last_seen_imei, 'imei');
    cell(tr, BAR_LABEL[e.before.bar.state] + ' → ' + BAR_LABEL[e.after.bar.state]);
    cell(tr, e.detail || '');
    body.appendChild(tr);
  }
}

async function order(body, label) {
  if (!current) return;
  try {
    const o = await api('POST', '/v1/sims/' + encodeURIComponent(current) + '/orders', body);
    const warn = o.warnings && o.warnings.length ? ' Warning: ' + o.warnings.join(' ') : '';
    say(label + ': order ' + (o.id === null ? '' : '#' + o.id + ' ') + o.status + '.' + warn,
        warn ? 'warning' : '');
  } catch (e) {
    say(label + ' refused: ' + e.message, 'error');
  }
  refresh();
}

function showTab(name) {
  for (const b of document.querySelectorAll('button.tab'))
    b.classList.toggle('active', b.dataset.tab === name);
  $('tab-orders').hidden = name !== 'orders';
  $('tab-history').hidden = name !== 'history';
}

// -- Wiring ------------------------------------------------------------------

function showLogin() {
  const has = !!token();
  $('logout').hidden = !has;
  $('token').placeholder = has ? 'token set' : 'Bearer token';
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    showLogin();
    say('Token set for this tab.');
    if (current) refresh();
    loadAlerted();
    loadFleet();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
    loadFleet();
  });
  $('back-to-fleet').addEventListener('click', showFleet);
  $('search-form').addEventListener('submit', (ev) => { ev.preventDefault(); search(false); });
  $('more').addEventListener('click', () => search(true));
  for (const b of document.querySelectorAll('button.tab'))
    b.addEventListener('click', () => showTab(b.dataset.tab));
  $('enable-lock').addEventListener('click',
    () => order({ type: 'enable_imei_lock', lock_scope: $('lock-scope').value },
                'Enable IMEI Locking'));
  $('disable-lock').addEventListener('click',
    () => order({ type: 'disable_imei_lock' }, 'Disable IMEI Locking'));
  $('unbar-keep').addEventListener('click',
    () => order({ type: 'unbar', unbar_mode: 'keep_lock' }, 'Unbar and keep existing IMEI Lock'));
  $('unbar-update').addEventListener('click',
    () => order({ type: 'unbar', unbar_mode: 'update_to_last_seen' },
                'Unbar and update to last seen IMEI'));
  $('unbar-manual').addEventListener('click', () => order({ type: 'unbar' }, 'Unbar'));
  $('bar').addEventListener('click', () => order({ type: 'bar' }, 'Bar'));
  $('activate').addEventListener('click', () => {
    const body = { type: 'activate' };
    const box = $('activate-lock');
    if (box && !box.disabled) body.enable_imei_lock = box.checked;
    order(body, 'Activation');
  });
  showLogin();
  loadAlerted();
  setInterval(loadAlerted, POLL_MS);
  setInterval(loadFleet, POLL_MS);
  const m = /^#sim=(\d+)$/.exec(location.hash);
  if (m) openSim(m[1]);
  else loadFleet();
});
