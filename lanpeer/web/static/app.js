// lanpeer web UI: pages by URL hash and one live channel per tab (snapshot, events, samples).
import { $, setText } from "./dom.js";
import { runDoctor } from "./doctor.js";
import { renderLibrary } from "./library.js";
import { initPeers, renderPeers } from "./peers.js";
import { S, opOf, ops, peers } from "./state.js";
import { GRAPH_SECONDS, drawGraph, renderTasks } from "./tasks.js";

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
  initPeers();
  $("doctor-run").addEventListener("click", runDoctor);
  setInterval(() => { if (S.page === "peers") render(); }, 5000);  // "seen ... ago" ages
  showPage();
  connect();
}

init();
