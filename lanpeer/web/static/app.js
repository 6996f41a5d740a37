// lanpeer web UI: one live channel per tab; every action is a control command (as peer-cli's).
"use strict";

const S = {
  snap: null,          // the last snapshot: status, games, ops, peers, finished, errors
  rates: new Map(),    // game id -> per-peer rates of its last progress event
  samples: [],         // [time, down, up] of the host, one a second
  page: "library",
  filter: "all",
  query: "",
  checks: null,
  fresh: false,        // a snapshot arrived on the current live channel
  skew: 0,             // the daemon's clock minus this device's, in seconds
};
const GRAPH_SECONDS = 300;

// ------------------------------------------------------------------ small helpers

function $(id) { return document.getElementById(id); }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function fmtBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}
function fmtRate(n) { return `${fmtBytes(n)}/s`; }
function fmtEta(s) {
  if (s === null || s === undefined) return "—";
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
// The daemon's clock, as far as this device can tell (a phone's clock may be off by minutes).
function daemonNow() { return Date.now() / 1000 + S.skew; }

function fmtAgo(t) {
  const s = Math.max(0, daemonNow() - t);
  if (s < 5) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
function percent(done, total) { return total > 0 ? Math.min(100, (100 * done) / total) : 0; }

function games() { return S.snap?.games?.games ?? []; }
function ops() { return S.snap?.ops?.ops ?? []; }
function peers() { return S.snap?.peers?.peers ?? []; }
function gameName(id) { return games().find((g) => g.id === id)?.name ?? id; }
function peerName(id) {
  const peer = peers().find((p) => p.peer_id === id);
  return peer ? peer.name || id.slice(0, 8) : id.slice(0, 8);
}
function opOf(id) { return ops().find((op) => op.game_id === id); }

// A peer's traffic rates, whichever fields this daemon reports.
function peerRates(peer) {
  const up = peer.up_rate ?? peer.upload_rate ?? peer.rate_up ?? null;
  const down = peer.down_rate ?? peer.download_rate ?? peer.rate_down ?? null;
  return { up, down };
}

function toast(text, kind = "info") {
  const node = el("div", { class: "toast", "data-kind": kind, role: "status", text });
  $("toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 9000 : 4000);
}

// Keep ``container``'s children in step with ``items`` by key, creating and updating in place,
// so a button a person is about to click is never replaced under the pointer.
function sync(container, items, key, create, update) {
  const existing = new Map([...container.children].map((node) => [node.dataset.key, node]));
  let previous = null;
  for (const item of items) {
    const k = key(item);
    let node = existing.get(k);
    if (node) existing.delete(k);
    else { node = create(item); node.dataset.key = k; }
    update(node, item);
    const want = previous ? previous.nextSibling : container.firstChild;
    if (node !== want) container.insertBefore(node, want);
    previous = node;
  }
  for (const node of existing.values()) node.remove();
}

// ------------------------------------------------------------------ commands

async function command(request, button) {
  if (button) button.disabled = true;
  try {
    const response = await fetch("/api/command", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
      credentials: "same-origin",
    });
    const answer = await response.json();
    if (answer.type === "error") toast(answer.message, "error");
    else toast(answer.result.message ?? `${request.cmd} done`);
    return answer;
  } catch (error) {
    toast(`lanpeerd did not answer: ${error}`, "error");
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

const CONFIRM = {
  uninstall: (name) => [`Uninstall ${name}?`,
    "The installed game (local/) is deleted. The downloaded copy stays, so you can install it again."],
  remove: (name) => [`Remove ${name} from this host?`,
    "Its downloaded files are deleted. Peers that have it can send it again."],
};

function confirmThen(cmd, game, run) {
  const text = CONFIRM[cmd];
  if (!text) { run(); return; }
  const [title, body] = text(game.name);
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = body;
  $("confirm-ok").textContent = cmd[0].toUpperCase() + cmd.slice(1);
  dialog.returnValue = "";
  dialog.addEventListener("close", () => { if (dialog.returnValue === "ok") run(); },
    { once: true });
  dialog.showModal();
}

// ------------------------------------------------------------------ library

function gameActions(game) {
  const op = opOf(game.id);
  if (op) return [["cancel", "Cancel", "danger", { cmd: "cancel", game_id: game.id }]];
  const list = [];
  const installedVersion = game.installed_version ?? null;
  if (!game.downloaded) {
    if (game.peers.length) {
      list.push(["download", "Download", "primary", { cmd: "download", game_id: game.id }]);
      list.push(["download-only", "Download only", "",
        { cmd: "download", game_id: game.id, install: false }]);
    }
    return list;
  }
  if (game.update_available && game.peers.length) {
    list.push(["download", "Update", "primary", { cmd: "download", game_id: game.id }]);
  }
  if (game.installed && installedVersion && game.version && installedVersion !== game.version) {
    list.push(["update", `Apply ${game.version}`, "primary", { cmd: "update", game_id: game.id }]);
  }
  if (!game.installed) {
    list.push(["install", "Install", "primary", { cmd: "install", game_id: game.id }]);
    list.push(["remove", "Remove", "danger", { cmd: "remove", game_id: game.id }]);
  } else {
    list.push(["uninstall", "Uninstall", "danger", { cmd: "uninstall", game_id: game.id }]);
  }
  return list;
}

function matches(game) {
  const q = S.query.trim().toLowerCase();
  if (q && !game.name.toLowerCase().includes(q) && !game.id.includes(q)) return false;
  switch (S.filter) {
    case "installed": return game.installed;
    case "downloaded": return game.downloaded;
    case "remote": return !game.downloaded;
    case "updates": return game.update_available;
    default: return true;
  }
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

function initials(name) {
  const words = name.replace(/[-_]/g, " ").split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => w[0].toUpperCase()).join("") || "?";
}

// The words a player reads for the daemon's states (``data-state`` keeps the daemon's own).
const STATE_LABELS = {
  remote: "on peers", downloaded: "downloaded", installed: "installed", partial: "partial",
  hashing: "checking", busy: "busy", "local-only": "this host only",
};
const OP_LABELS = {
  download: "downloading", install: "installing", update: "updating",
  uninstall: "uninstalling", remove: "removing",
};

function createCard(game) {
  const cover = el("div", { class: "cover" });
  const h = hue(game.id);
  cover.style.background =
    `linear-gradient(135deg, hsl(${h} 55% 38%), hsl(${(h + 50) % 360} 60% 22%))`;
  cover.append(el("span", { class: "initials", text: initials(game.name) }));
  const state = el("span", { class: "state" });
  cover.append(state);
  const title = el("b");
  const size = el("span", { class: "size" });
  const facts = el("div", { class: "facts" });
  const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": 0,
    "aria-valuemax": 100 }, el("span"));
  const progressText = el("div", { class: "progress-text" });
  const progress = el("div", { class: "progress" }, bar, progressText);
  const actions = el("div", { class: "actions" });
  const card = el("article", { class: "card", "data-game": game.id }, cover,
    el("div", { class: "card-body" },
      el("div", { class: "card-title" }, title, size), facts, progress, actions));
  card.refs = { cover, state, title, size, facts, bar, progressText, progress, actions };
  return card;
}

function updateCard(card, game) {
  const r = card.refs;
  const op = opOf(game.id);
  setText(r.title, game.name);
  r.title.title = `${game.name} (${game.id})`;
  setText(r.size, fmtBytes(game.size));
  const shown = op ? OP_LABELS[op.kind] ?? op.kind : STATE_LABELS[game.state] ?? game.state;
  setText(r.state, shown);
  r.state.dataset.state = op ? "busy" : game.state;
  // A cover is served once the game is here and hashed; ask again when its state moves on.
  const coverable = game.downloaded && ["downloaded", "installed"].includes(game.state);
  if (coverable && !card.coverShown && card.coverTriedIn !== game.state) {
    card.coverTriedIn = game.state;
    const img = el("img", { alt: "", src: `/api/cover/${game.id}` });
    img.addEventListener("error", () => img.remove());
    img.addEventListener("load", () => {
      card.coverShown = true;
      r.cover.querySelector(".initials")?.remove();
    });
    r.cover.prepend(img);
  }
  const facts = [];
  const installedVersion = game.installed_version ?? (game.installed ? game.version : null);
  if (installedVersion) facts.push(["good", `installed ${installedVersion}`]);
  if (game.downloaded && game.version) facts.push(["", `downloaded ${game.version}`]);
  if (game.update_available) facts.push(["update", `update ${game.newest_version}`]);
  else if (!game.downloaded && game.newest_version) facts.push(["", `v${game.newest_version}`]);
  const partial = game.partial_peers?.length
    ?? (game.sources ?? []).filter((source) => source.partial).length;
  const full = game.peers.length;
  facts.push(["", full ? `${full} peer${full === 1 ? "" : "s"}${partial ? ` + ${partial} partial` : ""}`
    : "no peer offers it"]);
  const factKey = JSON.stringify(facts);
  if (r.facts.dataset.key !== factKey) {
    r.facts.dataset.key = factKey;
    r.facts.replaceChildren(...facts.map(([cls, text]) => el("span", { class: `tag ${cls}`, text })));
  }
  r.progress.hidden = !op;
  if (op) {
    const pct = percent(op.bytes_done, op.bytes_total);
    r.bar.firstChild.style.width = `${pct}%`;
    r.bar.setAttribute("aria-valuenow", pct.toFixed(1));
    r.bar.dataset.state = op.state;
    const where = op.queue_position ? `queued #${op.queue_position}` : op.state;
    setText(r.progressText, op.bytes_total
      ? `${where} · ${pct.toFixed(0)}% · ${fmtRate(op.rate)}` : where);
  }
  const actions = gameActions(game);
  const actionKey = JSON.stringify(actions.map((a) => a[0]));
  if (r.actions.dataset.key !== actionKey) {
    r.actions.dataset.key = actionKey;
    r.actions.replaceChildren(...actions.map(([action, label, cls, request]) => {
      const button = el("button", { class: `btn ${cls}`, "data-action": action, text: label });
      button.addEventListener("click", () =>
        confirmThen(request.cmd, game, () => command(request, button)));
      return button;
    }));
  }
}

function renderLibrary() {
  const list = games().filter(matches);
  sync($("games"), list, (g) => g.id, createCard, updateCard);
  const empty = $("games-empty");
  empty.hidden = list.length > 0;
  empty.textContent = games().length
    ? "No game matches." : "No games yet: games on this host and on peers show up here.";
  const problem = S.snap?.errors?.games;
  $("library-notice").hidden = !problem;
  $("library-notice").textContent = problem ?? "";
}

// ------------------------------------------------------------------ tasks

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

function finishedRow(event) {
  const cancelled = event.error === "cancelled";
  const outcome = event.ok ? `${event.kind} done` : cancelled ? "cancelled" : `${event.kind} failed`;
  const rate = event.seconds > 0 ? ` · ${fmtRate(event.bytes / event.seconds)}` : "";
  const facts = event.bytes ? `${fmtBytes(event.bytes)} in ${fmtEta(event.seconds)}${rate}` : "";
  return el("div", { class: "row finished", "data-finished": event.game_id },
    el("div", { class: "title" }, el("b", { text: gameName(event.game_id) }),
      el("span", { class: "sub", text: event.kind })),
    el("div", { class: "meta" }, el("span", { class: "outcome", "data-ok": String(event.ok),
      "data-cancelled": String(cancelled), text: outcome }), el("span", { text: facts })),
    el("div"),
    el("div", { class: "error", text: !event.ok && !cancelled ? event.error ?? "" : "" }),
    el("div", { class: "hint", text: event.hint ?? "" }));
}

function renderTasks() {
  const list = ops();
  sync($("ops"), list, (op) => op.game_id, createOp, updateOp);
  $("ops-empty").hidden = list.length > 0;
  const finished = [...(S.snap?.finished ?? [])].reverse();
  const key = JSON.stringify(finished.map((e) => [e.game_id, e.ok, e.error, e.seconds]));
  const box = $("finished");
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...finished.map(finishedRow));
  }
  $("finished-empty").hidden = finished.length > 0;
  drawGraph();
}

function drawGraph() {
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
  const top = Math.max(1e6, ...points.map((s) => Math.max(s[1], s[2]))) * 1.15;
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
  for (const [index, color] of [[1, "#4f8cff"], [2, "#3ecf8e"]]) {
    if (points.length < 2) break;
    ctx.beginPath();
    points.forEach((s, i) => (i ? ctx.lineTo(x(s[0]), y(s[index])) : ctx.moveTo(x(s[0]), y(s[index]))));
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.stroke();
    ctx.lineTo(x(points.at(-1)[0]), y(0)); ctx.lineTo(x(points[0][0]), y(0)); ctx.closePath();
    ctx.fillStyle = index === 1 ? "rgba(79,140,255,.12)" : "rgba(62,207,142,.10)";
    ctx.fill();
  }
  const last = S.samples.at(-1);
  setText($("rate-down"), fmtRate(last ? last[1] : 0));
  setText($("rate-up"), fmtRate(last ? last[2] : 0));
}

// ------------------------------------------------------------------ peers

function createPeer() {
  const name = el("b");
  const id = el("span", { class: "sub" });
  const conn = el("span", { class: "conn" });
  const meta = el("div", { class: "meta" });
  const row = el("div", { class: "row peer" }, el("div", { class: "title" }, name, id), meta,
    conn);
  row.refs = { name, id, conn, meta };
  return row;
}

function updatePeer(row, peer) {
  const r = row.refs;
  row.dataset.peer = peer.peer_id;
  setText(r.name, peer.name || peer.peer_id.slice(0, 8));
  setText(r.id, `${peer.peer_id.slice(0, 12)}… · ${peer.address}`);
  setText(r.conn, peer.connected ? "connected" : "not connected");
  r.conn.dataset.connected = String(peer.connected);
  const { up, down } = peerRates(peer);
  const facts = [
    ["games", String(peer.games)],
    ["protocol", `v${peer.proto_ver}`],
    ["library rev", String(peer.library_rev)],
    ["seen", fmtAgo(peer.last_seen)],
  ];
  if (down !== null) facts.push(["from it", fmtRate(down)]);
  if (up !== null) facts.push(["to it", fmtRate(up)]);
  const key = JSON.stringify(facts);
  if (r.meta.dataset.key !== key) {
    r.meta.dataset.key = key;
    r.meta.replaceChildren(...facts.map(([label, value]) =>
      el("span", {}, `${label} `, el("b", { text: value }))));
  }
}

function renderPeers() {
  const list = [...peers()].sort((a, b) => Number(b.connected) - Number(a.connected)
    || a.name.localeCompare(b.name));
  sync($("peers"), list, (p) => p.peer_id, createPeer, updatePeer);
  $("peers-empty").hidden = list.length > 0;
  const problem = S.snap?.errors?.peers;
  $("peers-notice").hidden = !problem;
  $("peers-notice").textContent = problem ?? "";
}

// ------------------------------------------------------------------ doctor

async function runDoctor() {
  $("checks-empty").hidden = false;
  $("checks-empty").textContent = "Running the checks…";
  try {
    const response = await fetch("/api/doctor", { credentials: "same-origin" });
    const answer = await response.json();
    if (answer.type === "error") throw new Error(answer.message);
    S.checks = answer.result.checks;
  } catch (error) {
    S.checks = null;
    $("checks-empty").textContent = `The checks could not run: ${error.message}`;
    $("checks").replaceChildren();
    return;
  }
  $("checks-empty").hidden = true;
  $("checks").replaceChildren(...S.checks.map((check) =>
    el("div", { class: "row check", "data-check": check.name },
      el("span", { class: "badge", "data-status": check.status, text: check.status }),
      el("div", { class: "title" }, el("b", { text: check.name }),
        el("span", { class: "sub", text: check.summary })),
      el("div", { class: "hint", text: check.hint ?? "" }))));
}

// ------------------------------------------------------------------ pages, live channel

let frame = 0;
function render() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    if (!S.snap) return;
    setText($("host-name"), S.snap.status?.name ?? "");
    setText($("tasks-count"), ops().length ? String(ops().length) : "");
    const connected = peers().filter((p) => p.connected).length;
    setText($("peers-count"), connected ? String(connected) : "");
    if (S.page === "library") renderLibrary();
    else if (S.page === "tasks") renderTasks();
    else if (S.page === "peers") renderPeers();
    if (S.fresh) setLive("live", "live");  // only once what the page shows is current
  });
}

function showPage() {
  const page = (location.hash || "#library").slice(1);
  S.page = ["library", "tasks", "peers", "doctor"].includes(page) ? page : "library";
  for (const section of document.querySelectorAll(".page")) {
    section.hidden = section.id !== `page-${S.page}`;
  }
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.page === S.page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `lanpeer · ${S.page[0].toUpperCase()}${S.page.slice(1)}`;
  if (S.page === "doctor") runDoctor();
  render();
}

function applyEvent(event) {
  if (event.event !== "progress" || !S.snap) return;
  const op = opOf(event.game_id);
  if (op) {
    Object.assign(op, { state: event.state, bytes_done: event.bytes_done,
      bytes_total: event.bytes_total, rate: event.rate, eta: event.eta });
  }
  S.rates.set(event.game_id, event.peer_rates);
}

function onMessage(message) {
  if (message.type === "snapshot") {
    S.snap = message;
    S.fresh = true;
    S.skew = message.now - Date.now() / 1000;
    if (message.throughput) S.samples = message.throughput;
  } else if (message.type === "event") {
    applyEvent(message.event);
  } else if (message.type === "sample") {
    S.samples.push(message.sample);
    while (S.samples.length > GRAPH_SECONDS + 5) S.samples.shift();
    if (S.page === "tasks") drawGraph();
    return;
  }
  render();
}

function setLive(state, text) {
  $("live").dataset.state = state;
  setText($("live").querySelector(".live-text"), text);
}

let retry = 500;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/live`);
  socket.addEventListener("open", () => { retry = 500; });
  socket.addEventListener("message", (e) => onMessage(JSON.parse(e.data)));
  socket.addEventListener("close", (e) => {
    S.fresh = false;
    setLive("offline", "reconnecting…");
    // 4000: we fell behind and get a fresh snapshot at once; otherwise back off up to 5 s.
    setTimeout(connect, e.code === 4000 ? 0 : retry);
    retry = Math.min(5000, retry * 2);
  });
}

function init() {
  window.addEventListener("hashchange", showPage);
  window.addEventListener("resize", () => { if (S.page === "tasks") drawGraph(); });
  $("search").addEventListener("input", (e) => { S.query = e.target.value; render(); });
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => {
      S.filter = chip.dataset.filter;
      for (const other of document.querySelectorAll(".chip")) {
        other.setAttribute("aria-pressed", String(other === chip));
      }
      render();
    });
  }
  $("add-peer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("peer-address").value.trim();
    const match = text.match(/^\[?([^\]]+?)\]?:(\d{1,5})$/);
    if (!match) { toast("Write the peer as host:port, e.g. 192.168.1.20:47600", "error"); return; }
    const answer = await command({ cmd: "add_peer", host: match[1], port: Number(match[2]) });
    if (answer?.type === "result") $("peer-address").value = "";
  });
  $("doctor-run").addEventListener("click", runDoctor);
  setInterval(() => { if (S.page === "peers") render(); }, 5000);  // "seen ... ago" ages
  showPage();
  connect();
}

init();
