// pusher-relay ops console: keeps the overview and a replay's progress
// current. Served from /ui/assets (the Content-Security-Policy allows no
// inline script); values are set with textContent, never as markup.
'use strict';

(function () {
  const POLL_MS = 3000;

  function get(obj, path) {
    return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function fmt(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'boolean') return v ? 'up' : 'down';
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(1);
    return String(v);
  }

  const CHARTS = {
    throughput: [['consumed_per_s', 'consumed', '#2563eb'], ['delivered_per_s', 'delivered', '#16a34a'], ['requests_per_s', 'requests', '#9333ea']],
    failures: [['retries_per_s', 'retries', '#d97706'], ['dead_letters_per_s', 'dead letters', '#dc2626']],
    latency: [['latency_p50_ms', 'p50', '#2563eb'], ['latency_p99_ms', 'p99', '#dc2626']],
    concurrency: [['in_flight', 'in flight', '#2563eb'], ['concurrency_limit', 'limit', '#6b7280']],
    backlog: [['backlog', 'ready', '#d97706']],
  };
  const plots = {};

  function chartData(name, samples) {
    const xs = samples.map((s) => s.at_ms / 1000);
    return [xs].concat(CHARTS[name].map(([k]) => samples.map((s) => s[k])));
  }

  // The x axis always spans the history's 15 minutes up to now, so a young
  // history grows from the right instead of stretching over the width.
  const WINDOW_S = 15 * 60;
  let nowS = Date.now() / 1000;

  function drawCharts(samples) {
    if (typeof uPlot === 'undefined') return;
    document.querySelectorAll('[data-chart]').forEach((el) => {
      const name = el.dataset.chart;
      const data = chartData(name, samples);
      if (plots[name]) {
        plots[name].setData(data);
        return;
      }
      const width = Math.max(240, el.clientWidth || 300);
      plots[name] = new uPlot({
        width,
        height: 140,
        legend: { live: false },
        scales: {
          x: { time: true, range: () => [nowS - WINDOW_S, nowS] },
          y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
        },
        series: [{}].concat(CHARTS[name].map(([, label, stroke]) => ({ label, stroke, width: 1.5, points: { size: 4 } }))),
        axes: [{ space: 70 }, { size: 50 }],
      }, data, el);
    });
  }

  function overview() {
    if (!document.querySelector('[data-chart]')) return;
    async function tick() {
      try {
        const r = await fetch('/ui/api/overview', { headers: { Accept: 'application/json' } });
        if (r.status === 401) { window.location.assign('/ui/login'); return; }
        if (!r.ok) return;
        const d = await r.json();
        nowS = d.now_ms / 1000;
        const iso = (ms) => (ms ? new Date(ms).toISOString() : null);
        d.circuit.since = iso(d.circuit.since_ms);
        d.circuit.next_probe = iso(d.circuit.next_probe_ms);
        document.querySelectorAll('[data-k]').forEach((el) => {
          el.textContent = fmt(get(d, el.dataset.k));
        });
        const c = document.querySelector('[data-k="circuit.state"]');
        if (c) c.dataset.state = d.circuit.state;
        drawCharts(d.samples);
      } catch (e) {
        // The worker restarting: try again on the next tick.
      }
    }
    tick();
    setInterval(tick, POLL_MS);
    window.addEventListener('resize', () => {
      Object.entries(plots).forEach(([name, p]) => {
        const el = document.querySelector(`[data-chart="${name}"]`);
        if (el) p.setSize({ width: Math.max(240, el.clientWidth), height: 140 });
      });
    });
  }

  function replayProgress() {
    const box = document.querySelector('[data-replay]');
    if (!box) return;
    const id = box.dataset.replay;
    const timer = setInterval(async () => {
      try {
        const r = await fetch(`/ui/api/replays/${encodeURIComponent(id)}`);
        if (!r.ok) return;
        const j = await r.json();
        box.querySelectorAll('[data-j]').forEach((el) => { el.textContent = fmt(j[el.dataset.j]); });
        const s = box.querySelector('[data-j="state"]');
        if (s) s.dataset.state = j.state;
        const p = box.querySelector('progress');
        if (p) { p.max = Math.max(1, j.eligible); p.value = j.done; }
        const ul = box.querySelector('ul.errors');
        if (ul) {
          ul.replaceChildren(...j.errors.map((e) => { const li = document.createElement('li'); li.textContent = e; return li; }));
        }
        if (j.state !== 'running') clearInterval(timer);
      } catch (e) {
        // Try again on the next tick.
      }
    }, 1000);
  }

  document.addEventListener('DOMContentLoaded', () => { overview(); replayProgress(); });
})();
