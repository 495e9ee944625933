// kvsim console: draws the cluster from the server's live feed (GET /console/stream, one
// `frame` event every 250 ms), drives the simulator controls (/admin/...) and browses data
// through the DynamoDB API. Plain browser JavaScript: no build step, no library.
//
// Any node serves the feed about the whole cluster. When the node this page talks to goes
// down (crashed from this very page, say), the page moves to another node and carries on:
// every node accepts the console's calls from the cluster's own origins.

const $ = (selector) => document.querySelector(selector);
const SVG = 'http://www.w3.org/2000/svg';
const NODE_COLORS = ['#2f6fb3', '#d08700', '#2e7d32', '#b03cb0', '#c62828', '#00838f', '#6d4c41', '#5e35b1', '#9e9d24'];
const KIND_COLORS = {
  // Raft's messages
  append: 'var(--append)', append_response: 'var(--response)', heartbeat: 'var(--heartbeat)',
  heartbeat_response: 'var(--heartbeat)', vote: 'var(--vote)', vote_response: 'var(--vote)',
  snapshot: 'var(--snapshot)', other: 'var(--muted)',
  // the leaderless engine's (--mode dynamo)
  write: 'var(--append)', write_ack: 'var(--response)', read: 'var(--vote)', read_reply: 'var(--vote)',
  handoff: 'var(--snapshot)', gossip: 'var(--heartbeat)', anti_entropy: 'var(--muted)',
};
const LEGENDS = {
  raft: [['append', 'append'], ['ack', 'append_response'], ['heartbeat', 'heartbeat'], ['vote', 'vote'], ['snapshot', 'snapshot']],
  dynamo: [['write', 'write'], ['ack', 'write_ack'], ['read', 'read'], ['handoff', 'handoff'], ['gossip', 'gossip'], ['anti-entropy', 'anti_entropy']],
};
// Small dots for the background chatter of each engine.
const QUIET_KINDS = new Set(['heartbeat', 'heartbeat_response', 'gossip']);
const CHART_SECONDS = 60;

const state = {
  base: location.origin, // the node this page talks to
  addrs: new Map(), // node id -> "host:port"
  frame: null,
  source: null,
  retry: 0,
  positions: new Map(),
  dots: [],
  samples: [], // one per second: {t, nodes: Map(id -> {rate, latency})}
  window: null, // requests and micros since the last sample
  last: new Map(), // node id -> {requests, micros}
  controls: { enabled: false, reason: 'connecting' },
  table: null, // {name, pk: {name, type}, sk: {name, type} | null}
  nextKey: null,
  editing: null,
  shown: new Set(), // events already in the timeline, as "node:seq" (every node sends them)
};

const nodeUrl = (id) => (state.addrs.has(id) ? `http://${state.addrs.get(id)}` : state.base);
const color = (id) => NODE_COLORS[(id - 1) % NODE_COLORS.length];

// ---------------------------------------------------------------- the live feed

function connect() {
  if (state.source) state.source.close();
  const source = new EventSource(`${state.base}/console/stream`);
  state.source = source;
  source.addEventListener('frame', (event) => {
    state.retry = 0;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    render(frame);
  });
  source.onerror = () => {
    // The node went away (or restarts): move to the next node we know of.
    source.close();
    if (state.source !== source) return;
    setConnection('lost', `lost node ${state.frame ? state.frame.via : ''}; trying another…`);
    const urls = [...state.addrs.values()].map((a) => `http://${a}`);
    if (urls.length === 0) urls.push(location.origin);
    const at = urls.indexOf(state.base);
    state.base = urls[(at + 1) % urls.length];
    state.retry += 1;
    setTimeout(connect, Math.min(2000, 200 * state.retry));
  };
}

function setConnection(kind, text) {
  const badge = $('#connection');
  badge.dataset.state = kind;
  badge.textContent = text;
}

function render(frame) {
  state.frame = frame;
  for (const n of frame.nodes) state.addrs.set(n.node_id, n.addr);
  setConnection('live', `live via node ${frame.via}`);
  document.body.dataset.mode = frame.mode;
  if (frame.mode === 'dynamo') {
    const q = frame.quorum;
    const suspicious = frame.nodes.filter((n) => n.up && n.suspected.length).length;
    $('#summary').textContent = `leaderless · N=${q.replicas} R=${q.read_quorum} W=${q.write_quorum} · merger ${q.merger}`
      + (suspicious ? ` · ${suspicious} node(s) suspect others` : ' · every node sees every other');
  } else {
    const leader = frame.nodes.find((n) => n.node_id === frame.leader_id);
    $('#summary').textContent = leader
      ? `leader: node ${leader.node_id} · term ${leader.term} · commit ${leader.commit_index}`
      : 'no leader: an election is under way or a majority is down';
  }
  state.controls = frame.controls;
  drawCluster(frame);
  drawCards(frame);
  drawControls(frame);
  sample(frame);
  addEvents(frame.events);
  fillNodeSelect(frame);
}

// ---------------------------------------------------------------- the cluster picture

function layout(ids) {
  const [cx, cy, r] = [210, 150, 105];
  ids.forEach((id, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / ids.length;
    state.positions.set(id, { x: cx + r * Math.cos(angle), y: cy + r * Math.sin(angle) });
  });
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function drawCluster(frame) {
  const root = $('#cluster');
  const ids = frame.nodes.map((n) => n.node_id);
  if (state.positions.size !== ids.length || state.mode !== frame.mode) {
    state.mode = frame.mode;
    layout(ids);
    root.replaceChildren();
    svg('g', { id: 'links' }, root);
    svg('g', { id: 'dots' }, root);
    svg('g', { id: 'node-shapes' }, root);
    drawLegend(frame.mode);
  }
  const links = $('#links');
  links.replaceChildren();
  for (const l of frame.links) {
    const [a, b] = [state.positions.get(l.a), state.positions.get(l.b)];
    const cls = l.cut ? 'link cut' : l.delay_ms > 0 || l.drop_rate > 0 ? 'link slow' : 'link';
    const line = svg('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: cls }, links);
    const title = svg('title', {}, line);
    title.textContent = l.cut
      ? `nodes ${l.a} and ${l.b} are cut off from each other`
      : `nodes ${l.a}–${l.b}: ${l.delay_ms} ms delay, ${Math.round(l.drop_rate * 100)}% loss`;
  }
  const shapes = $('#node-shapes');
  shapes.replaceChildren();
  for (const n of frame.nodes) {
    const p = state.positions.get(n.node_id);
    const g = svg('g', { class: 'node', 'data-node': n.node_id, 'data-role': n.role }, shapes);
    svg('circle', { cx: p.x, cy: p.y, r: 38 }, g);
    text(g, p.x, p.y - 10, `node ${n.node_id}`, 'title');
    text(g, p.x, p.y + 5, n.up ? n.role.replace('_', '-') : n.role);
    if (frame.mode === 'dynamo') {
      text(g, p.x, p.y + 19, n.up && n.hints ? `${n.hints} hint(s)` : '');
      text(g, p.x, p.y + 54, n.up && n.suspected.length ? `suspects ${n.suspected.join(', ')}` : '');
    } else {
      text(g, p.x, p.y + 19, n.up ? `term ${n.term}` : '');
      text(g, p.x, p.y + 54, n.up ? `applied ${n.applied_index}${n.lag ? ` (−${n.lag})` : ''}` : '');
    }
  }
  const down = new Set(frame.nodes.filter((n) => !n.up).map((n) => n.node_id));
  const cut = new Set(frame.links.filter((l) => l.cut).flatMap((l) => [`${l.a}-${l.b}`, `${l.b}-${l.a}`]));
  for (const f of frame.flows) {
    const [from, to] = [state.positions.get(f.from), state.positions.get(f.to)];
    if (!from || !to) continue;
    // Sent into a cut link or to a node that is down: drawn as lost halfway.
    const lost = down.has(f.to) || cut.has(`${f.from}-${f.to}`);
    state.dots.push({ from, to, lost, kind: f.kind, count: f.count, start: performance.now(), el: null });
  }
  if (state.dots.length > 200) {
    for (const d of state.dots.splice(0, state.dots.length - 200)) if (d.el) d.el.remove();
  }
}

function text(parent, x, y, content, cls) {
  const t = svg('text', { x, y }, parent);
  if (cls) t.setAttribute('class', cls);
  t.textContent = content;
  return t;
}

function drawLegend(mode) {
  const legend = $('#legend');
  legend.replaceChildren();
  for (const [label, kind] of LEGENDS[mode] || LEGENDS.raft) {
    const span = document.createElement('span');
    const dot = document.createElement('i');
    dot.style.background = KIND_COLORS[kind];
    span.append(dot, label);
    legend.append(span);
  }
}

// Moves each message dot along its link; a dot lives 450 ms.
function animate(now) {
  const layer = $('#dots');
  if (layer) {
    state.dots = state.dots.filter((d) => {
      const t = (now - d.start) / 450;
      if (t >= (d.lost ? 0.5 : 1)) {
        if (d.el) d.el.remove();
        return false;
      }
      if (!d.el) {
        const r = QUIET_KINDS.has(d.kind) ? 3 : Math.min(8, 4 + Math.log2(d.count));
        d.el = svg('circle', { r, class: 'dot', fill: KIND_COLORS[d.kind] || 'gray' }, layer);
        const title = svg('title', {}, d.el);
        title.textContent = `${d.count} ${d.kind.replace('_', ' ')}${d.lost ? ', lost' : ''}`;
      }
      if (d.lost) d.el.setAttribute('opacity', String(1 - 2 * t));
      // Start and end at the circles' edges.
      const dx = d.to.x - d.from.x;
      const dy = d.to.y - d.from.y;
      const len = Math.hypot(dx, dy) || 1;
      const s = 38 / len + t * (1 - 76 / len);
      d.el.setAttribute('cx', d.from.x + dx * s);
      d.el.setAttribute('cy', d.from.y + dy * s);
      return true;
    });
  }
  requestAnimationFrame(animate);
}

// ---------------------------------------------------------------- node cards and controls

function drawCards(frame) {
  const box = $('#nodes');
  for (const n of frame.nodes) {
    let card = box.querySelector(`.card[data-node="${n.node_id}"]`);
    if (card && card.dataset.mode !== frame.mode) {
      card.remove();
      card = null;
    }
    if (!card) {
      card = makeCard(n.node_id, frame.mode);
      box.append(card);
    }
    card.dataset.role = n.role;
    card.dataset.up = n.up;
    card.querySelector('.role').textContent = n.role.replace('_', '-');
    const values = frame.mode === 'dynamo' ? {
      suspects: n.up ? (n.suspected.length ? n.suspected.join(', ') : 'none') : '–',
      hints: n.up ? n.hints : '–',
      incarnation: n.up ? n.incarnation : '–',
      health: n.failure ? `failed: ${n.failure}` : n.up ? 'running' : 'down',
    } : {
      term: n.up ? n.term : '–',
      commit: n.up ? n.commit_index : '–',
      applied: n.up ? n.applied_index : '–',
      lag: n.lag == null ? '–' : n.lag,
      pending: n.up ? `${n.pending_proposals} writes, ${n.pending_reads} reads` : '–',
      health: n.health ? (n.health.error ? `failed: ${n.health.error}` : n.health.state) : 'down',
    };
    for (const [k, v] of Object.entries(values)) card.querySelector(`dd[data-field="${k}"]`).textContent = v;
    const faults = [...n.faults];
    if (n.failing_disk) faults.push('disk fails writes');
    card.querySelector('.faults').textContent = faults.join('; ');
    const restart = !n.up || n.role === 'failed';
    const crash = card.querySelector('[data-action="crash"]');
    card.querySelector('[data-action="restart"]').hidden = !restart;
    crash.hidden = restart;
    const transfer = card.querySelector('[data-action="transfer"]');
    if (transfer) transfer.disabled = !state.controls.enabled || !n.up || n.role === 'leader';
  }
}

const CARD_FIELDS = {
  raft: ['term', 'commit', 'applied', 'lag', 'pending', 'health'],
  dynamo: ['suspects', 'hints', 'incarnation', 'health'],
};

function makeCard(id, mode) {
  const card = document.createElement('article');
  card.className = 'card';
  card.dataset.node = id;
  card.dataset.mode = mode;
  const fields = (CARD_FIELDS[mode] || CARD_FIELDS.raft).map((f) => `<dt>${f}</dt><dd data-field="${f}"></dd>`).join('');
  // Leadership is Raft mode's.
  const raftOnly = mode === 'dynamo' ? ' hidden' : '';
  card.innerHTML = `
    <h3><span>node ${id}</span><span class="role"></span></h3>
    <dl>${fields}</dl>
    <div class="faults"></div>
    <div class="actions">
      <button type="button" data-control data-action="crash">crash</button>
      <button type="button" data-control data-action="restart">restart</button>
      <button type="button" data-control data-action="isolate">isolate</button>
      <button type="button" data-control data-action="transfer"${raftOnly}>make leader</button>
      <button type="button" data-control data-action="fail-disk">fail disk</button>
    </div>
    <div class="actions">
      <input type="number" min="0" max="60000" step="50" value="200" aria-label="delay in ms" data-input="ms">
      <button type="button" data-control data-action="delay">delay ms</button>
      <input type="number" min="0" max="1" step="0.1" value="0.3" aria-label="loss rate" data-input="rate">
      <button type="button" data-control data-action="drop">drop rate</button>
    </div>`;
  card.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (button) nodeAction(id, button.dataset.action, card);
  });
  return card;
}

async function nodeAction(id, action, card) {
  const input = (name) => Number(card.querySelector(`[data-input="${name}"]`).value);
  switch (action) {
    case 'crash':
    case 'restart':
    case 'fail-disk':
      // A node crashing itself answers before it goes; any other live node serves the rest.
      return admin(`/admin/nodes/${id}/${action}`, null, action === 'restart' ? id : null);
    case 'isolate':
      return admin('/admin/faults/isolate', { node: id });
    case 'delay':
      return admin('/admin/faults/delay', { node: id, ms: input('ms') });
    case 'drop':
      return admin('/admin/faults/drop', { node: id, rate: input('rate') });
    case 'transfer':
      return admin('/admin/transfer-leader', { to: id });
    default:
      return undefined;
  }
}

// Calls a control on a live node (not `avoid`, which may be the one being restarted).
async function admin(path, body, avoid) {
  const live = state.frame ? state.frame.nodes.filter((n) => n.up && n.role !== 'failed' && n.node_id !== avoid) : [];
  const via = live.some((n) => nodeUrl(n.node_id) === state.base) || live.length === 0 ? state.base : nodeUrl(live[0].node_id);
  try {
    const response = await fetch(`${via}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.message || answer.Message || `HTTP ${response.status}`);
    note('#controls-note', answer.applied || 'done', false);
  } catch (e) {
    note('#controls-note', `${path}: ${e.message}`, true);
  }
}

function note(selector, text, error) {
  const el = $(selector);
  el.hidden = false;
  el.textContent = text;
  el.classList.toggle('error', !!error);
}

function drawControls(frame) {
  const box = $('#partition-nodes');
  if (box.childElementCount !== frame.nodes.length) {
    box.replaceChildren();
    for (const n of frame.nodes) {
      const label = document.createElement('label');
      label.innerHTML = `<input type="checkbox" value="${n.node_id}"> ${n.node_id}`;
      box.append(label);
    }
  }
  for (const b of document.querySelectorAll('[data-control]')) {
    if (b.dataset.action !== 'transfer') b.disabled = !frame.controls.enabled;
  }
  const why = $('#controls-note');
  if (!frame.controls.enabled) note('#controls-note', `controls disabled: ${frame.controls.reason}`, false);
  else if (why.textContent.startsWith('controls disabled')) why.hidden = true;
  const faults = $('#faults-list');
  faults.textContent = frame.faults.length ? `in force: ${frame.faults.join('; ')}` : 'no faults in force';
  faults.toggleAttribute('data-none', frame.faults.length === 0);
}

function wireControls() {
  $('#partition-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const all = [...document.querySelectorAll('#partition-nodes input')];
    const a = all.filter((i) => i.checked).map((i) => Number(i.value));
    const b = all.filter((i) => !i.checked).map((i) => Number(i.value));
    if (a.length === 0 || b.length === 0) {
      note('#controls-note', 'pick some nodes for group A and leave some for the rest', true);
      return;
    }
    admin('/admin/faults/partition', { groups: [a, b] });
  });
  $('#errors-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const f = event.target;
    admin('/admin/faults/errors', { op: f.op.value.trim(), error: f.error.value, rate: Number(f.rate.value) });
  });
  $('#clear-errors').addEventListener('click', () => admin('/admin/faults/clear-errors'));
  $('#heal').addEventListener('click', () => admin('/admin/faults/heal'));
}

// ---------------------------------------------------------------- charts

function sample(frame) {
  const now = frame.time_ms;
  if (!state.window) state.window = { start: now, nodes: new Map() };
  for (const n of frame.nodes) {
    const last = state.last.get(n.node_id);
    state.last.set(n.node_id, { requests: n.requests, micros: n.micros });
    if (!last) continue;
    // A restarted node counts from zero.
    const requests = n.requests >= last.requests ? n.requests - last.requests : n.requests;
    const micros = n.micros >= last.micros ? n.micros - last.micros : n.micros;
    const w = state.window.nodes.get(n.node_id) || { requests: 0, micros: 0 };
    state.window.nodes.set(n.node_id, { requests: w.requests + requests, micros: w.micros + micros });
  }
  const elapsed = now - state.window.start;
  if (elapsed < 1000) return;
  const point = { t: now, nodes: new Map() };
  for (const n of frame.nodes) {
    const w = state.window.nodes.get(n.node_id) || { requests: 0, micros: 0 };
    point.nodes.set(n.node_id, {
      rate: (w.requests * 1000) / elapsed,
      latency: w.requests ? w.micros / w.requests / 1000 : null,
    });
  }
  state.samples.push(point);
  if (state.samples.length > CHART_SECONDS) state.samples.shift();
  state.window = { start: now, nodes: new Map() };
  chart($('#rate-chart'), 'rate', (v) => v.toFixed(0));
  chart($('#latency-chart'), 'latency', (v) => v.toFixed(2));
}

function chart(canvas, field, label) {
  const ratio = window.devicePixelRatio || 1;
  const [w, h] = [canvas.clientWidth || 480, canvas.clientHeight || 110];
  if (canvas.width !== Math.round(w * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const ids = state.frame ? state.frame.nodes.map((n) => n.node_id) : [];
  let max = 0;
  for (const s of state.samples) for (const v of s.nodes.values()) if (v[field] != null) max = Math.max(max, v[field]);
  max = max > 0 ? max * 1.15 : 1;
  const muted = getComputedStyle(document.documentElement).getPropertyValue('--muted');
  ctx.fillStyle = muted;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillText(label(max), 4, 12);
  ctx.fillText('0', 4, h - 4);
  const x = (i) => w - (state.samples.length - 1 - i) * (w / (CHART_SECONDS - 1));
  ids.forEach((id, k) => {
    ctx.strokeStyle = color(id);
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let drawing = false;
    state.samples.forEach((s, i) => {
      const v = s.nodes.get(id);
      if (!v || v[field] == null) {
        drawing = false;
        return;
      }
      const y = h - 4 - (v[field] / max) * (h - 18);
      if (drawing) ctx.lineTo(x(i), y);
      else ctx.moveTo(x(i), y);
      drawing = true;
    });
    ctx.stroke();
    ctx.fillStyle = color(id);
    ctx.fillText(`node ${id}`, w - 60, 12 + k * 12);
  });
}

// ---------------------------------------------------------------- events

function addEvents(events) {
  const list = $('#timeline');
  for (const e of events) {
    // A feed's first frame repeats recent history: after moving to another node, skip it.
    const id = `${e.node_id}:${e.seq}`;
    if (state.shown.has(id)) continue;
    state.shown.add(id);
    if (state.shown.size > 5000) state.shown.delete(state.shown.values().next().value);
    const li = document.createElement('li');
    li.dataset.kind = e.kind;
    const time = document.createElement('time');
    time.textContent = new Date(e.time_ms).toLocaleTimeString();
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = `node ${e.node_id} ${e.kind.replaceAll('_', ' ')}`;
    li.append(time, kind, document.createTextNode(e.detail));
    list.prepend(li);
  }
  while (list.childElementCount > 300) list.lastElementChild.remove();
}

// ---------------------------------------------------------------- data browser

async function ddb(operation, body, url) {
  const response = await fetch(`${url || state.base}/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': `DynamoDB_20120810.${operation}` },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = String(answer.__type || 'Error').split('#').pop();
    throw new Error(`${type}: ${answer.message || answer.Message || response.status}`);
  }
  return answer;
}

function fillNodeSelect(frame) {
  const select = $('#read-node');
  if (select.childElementCount === frame.nodes.length + 1) return;
  select.replaceChildren(new Option('the one serving this page', ''));
  for (const n of frame.nodes) select.append(new Option(`node ${n.node_id}`, String(n.node_id)));
}

function readUrl() {
  const id = Number($('#read-node').value);
  return id ? nodeUrl(id) : state.base;
}

async function refreshTables() {
  try {
    const names = [];
    let start;
    do {
      const page = await ddb('ListTables', start ? { ExclusiveStartTableName: start } : {});
      names.push(...page.TableNames);
      start = page.LastEvaluatedTableName;
    } while (start);
    const select = $('#tables');
    const current = select.value;
    select.replaceChildren(new Option(names.length ? 'pick a table' : 'no tables yet', ''));
    for (const n of names) select.append(new Option(n, n));
    if (names.includes(current)) select.value = current;
    note('#data-note', `${names.length} table(s)`, false);
  } catch (e) {
    note('#data-note', e.message, true);
  }
}

async function openTable(name) {
  state.table = null;
  state.editing = null;
  $('#editor').hidden = true;
  $('#items tbody').replaceChildren();
  $('#items thead').replaceChildren();
  if (!name) return;
  try {
    const { Table } = await ddb('DescribeTable', { TableName: name });
    $('#description').textContent = JSON.stringify(Table, null, 2);
    const type = (attr) => (Table.AttributeDefinitions.find((d) => d.AttributeName === attr) || {}).AttributeType || 'S';
    const key = (kind) => Table.KeySchema.find((k) => k.KeyType === kind);
    const sk = key('RANGE');
    state.table = {
      name,
      pk: { name: key('HASH').AttributeName, type: type(key('HASH').AttributeName) },
      sk: sk ? { name: sk.AttributeName, type: type(sk.AttributeName) } : null,
    };
    await read(null);
  } catch (e) {
    note('#data-note', e.message, true);
  }
}

async function read(startKey) {
  const t = state.table;
  if (!t) return;
  const form = $('#query-form');
  const pk = form.pk.value.trim();
  const prefix = form.prefix.value;
  const body = { TableName: t.name, Limit: 25, ConsistentRead: $('#consistent').checked };
  if (startKey) body.ExclusiveStartKey = startKey;
  let operation = 'Scan';
  if (pk) {
    operation = 'Query';
    body.KeyConditionExpression = '#pk = :pk';
    body.ExpressionAttributeNames = { '#pk': t.pk.name };
    body.ExpressionAttributeValues = { ':pk': { [t.pk.type]: pk } };
    if (prefix && t.sk) {
      body.KeyConditionExpression += ' AND begins_with(#sk, :sk)';
      body.ExpressionAttributeNames['#sk'] = t.sk.name;
      body.ExpressionAttributeValues[':sk'] = { [t.sk.type]: prefix };
    }
  }
  try {
    const answer = await ddb(operation, body, readUrl());
    state.nextKey = answer.LastEvaluatedKey || null;
    $('#next-page').disabled = !state.nextKey;
    showItems(answer.Items || []);
    const from = $('#read-node').value ? `node ${$('#read-node').value}` : 'the serving node';
    note('#data-note', `${operation}: ${answer.Count} item(s) from ${from}, ${body.ConsistentRead ? 'consistent' : 'eventually consistent'} read${state.nextKey ? '; more on the next page' : ''}`, false);
  } catch (e) {
    note('#data-note', e.message, true);
  }
}

// One attribute value, shortened for a table cell.
function brief(value) {
  const [type, v] = Object.entries(value)[0] || ['', ''];
  if (type === 'S' || type === 'N' || type === 'B') return String(v);
  if (type === 'BOOL') return String(v);
  if (type === 'NULL') return 'null';
  return JSON.stringify(v);
}

function showItems(items) {
  const t = state.table;
  const keys = [t.pk.name, ...(t.sk ? [t.sk.name] : [])];
  const others = new Set();
  for (const item of items) for (const a of Object.keys(item)) if (!keys.includes(a)) others.add(a);
  const columns = [...keys, ...[...others].sort().slice(0, 8)];
  const head = document.createElement('tr');
  for (const c of columns) {
    const th = document.createElement('th');
    th.textContent = c;
    head.append(th);
  }
  $('#items thead').replaceChildren(head);
  const body = $('#items tbody');
  body.replaceChildren();
  for (const item of items) {
    const tr = document.createElement('tr');
    tr.dataset.key = keys.map((k) => (item[k] ? brief(item[k]) : '')).join('/');
    for (const c of columns) {
      const td = document.createElement('td');
      td.textContent = item[c] ? brief(item[c]) : '';
      tr.append(td);
    }
    tr.addEventListener('click', () => edit(item));
    body.append(tr);
  }
}

function edit(item) {
  state.editing = item;
  $('#editor').hidden = false;
  $('#item-json').value = JSON.stringify(item, null, 2);
  $('#delete-item').disabled = !item;
  $('#item-json').focus();
}

function keyOf(item) {
  const t = state.table;
  const key = { [t.pk.name]: item[t.pk.name] };
  if (t.sk) key[t.sk.name] = item[t.sk.name];
  return key;
}

function wireData() {
  $('#refresh-tables').addEventListener('click', refreshTables);
  $('#tables').addEventListener('change', (e) => openTable(e.target.value));
  $('#query-form').addEventListener('submit', (e) => {
    e.preventDefault();
    read(null);
  });
  $('#next-page').addEventListener('click', () => read(state.nextKey));
  $('#new-item').addEventListener('click', () => {
    if (!state.table) return note('#data-note', 'pick a table first', true);
    const t = state.table;
    const item = { [t.pk.name]: { [t.pk.type]: t.pk.type === 'N' ? '1' : 'new' } };
    if (t.sk) item[t.sk.name] = { [t.sk.type]: t.sk.type === 'N' ? '1' : 'new' };
    edit(item);
    state.editing = null;
    $('#delete-item').disabled = true;
    return undefined;
  });
  $('#editor').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.table) return note('#data-note', 'pick a table first', true);
    let item;
    try {
      item = JSON.parse($('#item-json').value);
    } catch (err) {
      return note('#data-note', `the item is not valid JSON: ${err.message}`, true);
    }
    try {
      // Saving under a changed key is a new item; the old one stays until deleted.
      await ddb('PutItem', { TableName: state.table.name, Item: item });
      note('#data-note', 'saved', false);
      state.editing = item;
      $('#delete-item').disabled = false;
      await read(null);
      note('#data-note', 'saved', false);
    } catch (err) {
      note('#data-note', err.message, true);
    }
    return undefined;
  });
  $('#delete-item').addEventListener('click', async () => {
    if (!state.editing) return;
    try {
      await ddb('DeleteItem', { TableName: state.table.name, Key: keyOf(state.editing) });
      $('#editor').hidden = true;
      await read(null);
      note('#data-note', 'deleted', false);
    } catch (err) {
      note('#data-note', err.message, true);
    }
  });
  $('#close-editor').addEventListener('click', () => {
    $('#editor').hidden = true;
  });
}

wireControls();
wireData();
connect();
refreshTables();
requestAnimationFrame(animate);
