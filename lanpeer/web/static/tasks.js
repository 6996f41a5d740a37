// The task center: operations with live progress, finished ones with their error, and the
// host's throughput over the last minutes.
import { $, el, setText, sync } from "./dom.js";
import { fmtAgo, fmtBytes, fmtEta, fmtRate, percent } from "./format.js";
import { S, command, daemonNow, gameName, history, ops, peerName } from "./state.js";

export const GRAPH_SECONDS = 300;

function createOp() {
  const title = el("b");
  const sub = el("span", { class: "sub" });
  const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": 0,
    "aria-valuemax": 100 }, el("span"));
  const amount = el("span");
  const speed = el("b");
  const eta = el("b");
  const cancel = el("button", { class: "btn danger", "data-action": "cancel", text: "Cancel" });
  const sources = el("div", { class: "sources" });
  const row = el("div", { class: "row op" },
    el("div", { class: "title" }, title, sub),
    el("div", { class: "progress-cell" }, bar,
      el("div", { class: "meta" }, amount, el("span", {}, "speed ", speed),
        el("span", {}, "ETA ", eta))),
    el("div", { class: "row-actions" }, cancel), sources);
  row.refs = { title, sub, bar, amount, speed, eta, cancel, sources };
  return row;
}

function updateOp(row, op) {
  const r = row.refs;
  row.dataset.op = op.game_id;
  setText(r.title, gameName(op.game_id));
  const where = op.queue_position ? `queued #${op.queue_position}` : op.state;
  setText(r.sub, `${op.kind} · ${op.lane} lane · ${where}`);
  row.dataset.state = op.state;
  const pct = percent(op.bytes_done, op.bytes_total);
  r.bar.firstChild.style.width = `${pct}%`;
  r.bar.setAttribute("aria-valuenow", pct.toFixed(1));
  r.bar.dataset.state = op.queue_position ? "queued" : op.state;
  setText(r.amount, op.bytes_total
    ? `${fmtBytes(op.bytes_done)} of ${fmtBytes(op.bytes_total)} · ${pct.toFixed(0)}%` : "");
  setText(r.speed, fmtRate(op.rate));
  setText(r.eta, fmtEta(op.eta));
  r.cancel.onclick = () => command({ cmd: "cancel", game_id: op.game_id }, r.cancel);
  const rates = S.rates.get(op.game_id) ?? {};
  const ids = [...new Set([...(op.sources ?? []), ...Object.keys(rates)])];
  const key = JSON.stringify(ids.map((id) => [id, Math.round((rates[id] ?? 0) / 1e5)]));
  if (r.sources.dataset.key !== key) {
    r.sources.dataset.key = key;
    const partial = new Set(op.partial_sources ?? []);
    r.sources.replaceChildren(...ids.map((id) => {
      const name = partial.has(id) ? `${peerName(id)} (partial)` : peerName(id);
      const text = rates[id] !== undefined ? `${name} ${fmtRate(rates[id])}` : name;
      return el("span", { class: "tag", "data-source": id, text });
    }));
  }
}

const DONE_LABELS = {
  download: "downloaded", install: "installed", update: "updated", uninstall: "uninstalled",
  remove: "removed",
};

// How many finished operations the page lists (the daemon remembers up to 500).
const HISTORY_SHOWN = 50;

function finishedRow(op) {
  const cancelled = op.state === "cancelled";
  const done = DONE_LABELS[op.kind] ?? `${op.kind} done`;
  const outcome = op.ok ? done : cancelled ? "cancelled" : `${op.kind} failed`;
  const facts = [op.bytes_done ? fmtBytes(op.bytes_done) : "", fmtAgo(op.finished_at, daemonNow())];
  return el("div", { class: "row finished", "data-finished": op.game_id },
    el("div", { class: "title" }, el("b", { text: gameName(op.game_id) }),
      el("span", { class: "sub", text: op.game_id })),
    el("div", { class: "meta" }, el("span", { class: "outcome", "data-ok": String(Boolean(op.ok)),
      "data-cancelled": String(cancelled), text: outcome }),
      el("span", { text: facts.filter(Boolean).join(" · ") })),
    el("div"),
    el("div", { class: "error", text: !op.ok && !cancelled ? op.error ?? "" : "" }),
    el("div", { class: "hint", text: op.hint ?? "" }));
}

export function renderTasks() {
  const list = ops();
  sync($("ops"), list, (op) => op.game_id, createOp, updateOp);
  $("ops-empty").hidden = list.length > 0;
  const finished = history().slice(0, HISTORY_SHOWN);
  const key = JSON.stringify(finished.map((op) => [op.game_id, op.finished_at]));
  const box = $("finished");
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...finished.map(finishedRow));
  }
  $("finished-empty").hidden = finished.length > 0;
  drawGraph();
}

export function drawGraph() {
  const canvas = $("graph");
  if (S.page !== "tasks" || !canvas.clientWidth) return;
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
  if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const now = daemonNow();
  const points = S.samples.filter((s) => s[0] >= now - GRAPH_SECONDS);
  const top = Math.max(1e6, ...points.map((s) => Math.max(s[1], s[2] ?? 0))) * 1.15;
  const x = (t) => ((t - (now - GRAPH_SECONDS)) / GRAPH_SECONDS) * w;
  const y = (v) => h - 16 - (v / top) * (h - 26);
  ctx.strokeStyle = "#2a3140";
  ctx.fillStyle = "#8b93a5";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (const f of [0.5, 1]) {
    ctx.beginPath(); ctx.moveTo(0, y((top / 1.15) * f)); ctx.lineTo(w, y((top / 1.15) * f));
    ctx.stroke();
    ctx.fillText(fmtRate((top / 1.15) * f), 4, y((top / 1.15) * f) - 4);
  }
  ctx.fillText("5 min ago", 4, h - 3);
  ctx.fillText("now", w - 24, h - 3);
  const measuresUp = points.some((s) => s[2] !== null);
  for (const [index, color] of [[1, "#4f8cff"], [2, "#3ecf8e"]]) {
    if (points.length < 2 || (index === 2 && !measuresUp)) break;
    ctx.beginPath();
    points.forEach((s, i) => (i ? ctx.lineTo(x(s[0]), y(s[index])) : ctx.moveTo(x(s[0]), y(s[index]))));
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.stroke();
    ctx.lineTo(x(points.at(-1)[0]), y(0)); ctx.lineTo(x(points[0][0]), y(0)); ctx.closePath();
    ctx.fillStyle = index === 1 ? "rgba(79,140,255,.12)" : "rgba(62,207,142,.10)";
    ctx.fill();
  }
  const last = S.samples.at(-1);
  setText($("rate-down"), fmtRate(last ? last[1] : 0));
  setText($("rate-up"), last && last[2] !== null ? fmtRate(last[2]) : "not measured");
}
