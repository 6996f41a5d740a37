// The peers page: who is there, connected or not, their traffic; adding one by address.
import { $, el, setText, sync, toast } from "./dom.js";
import { fmtAgo, fmtBytes, fmtRate } from "./format.js";
import { S, command, daemonNow, gameName, peers, uploads } from "./state.js";

function createPeer() {
  const name = el("b");
  const id = el("span", { class: "sub" });
  const conn = el("span", { class: "conn" });
  const meta = el("div", { class: "meta" });
  const sending = el("div", { class: "sources" });
  const row = el("div", { class: "row peer" }, el("div", { class: "title" }, name, id), meta,
    conn, sending);
  row.refs = { name, id, conn, meta, sending };
  return row;
}

function updatePeer(row, peer) {
  const r = row.refs;
  row.dataset.peer = peer.peer_id;
  setText(r.name, peer.name || peer.peer_id.slice(0, 8));
  setText(r.id, `${peer.peer_id.slice(0, 12)}… · ${peer.address}`);
  setText(r.conn, peer.connected ? "connected" : "not connected");
  r.conn.dataset.connected = String(peer.connected);
  const facts = [
    ["↓ from it", fmtRate(peer.rate_down ?? 0)],
    ["↑ to it", fmtRate(peer.rate_up ?? 0)],
    ["games", String(peer.games)],
    ["protocol", `v${peer.proto_ver}`],
    ["seen", fmtAgo(peer.last_seen, daemonNow())],
  ];
  const key = JSON.stringify(facts);
  if (r.meta.dataset.key !== key) {
    r.meta.dataset.key = key;
    r.meta.replaceChildren(...facts.map(([label, value]) =>
      el("span", {}, `${label} `, el("b", { text: value }))));
  }
  // What it pulls from this host right now (``peer-cli uploads``).
  const pulls = uploads().filter((u) => u.peer_id === peer.peer_id);
  const pullKey = JSON.stringify(pulls.map((u) => [u.game_id, Math.round(u.rate / 1e5)]));
  if (r.sending.dataset.key !== pullKey) {
    r.sending.dataset.key = pullKey;
    r.sending.replaceChildren(...pulls.map((u) => el("span", { class: "tag", "data-upload": u.game_id,
      text: `uploading ${gameName(u.game_id)} · ${fmtRate(u.rate)} · ${fmtBytes(u.bytes)}` })));
  }
}

export function renderPeers() {
  const list = [...peers()].sort((a, b) => Number(b.connected) - Number(a.connected)
    || a.name.localeCompare(b.name));
  sync($("peers"), list, (p) => p.peer_id, createPeer, updatePeer);
  $("peers-empty").hidden = list.length > 0;
  const problem = S.snap?.errors?.peers;
  $("peers-notice").hidden = !problem;
  $("peers-notice").textContent = problem ?? "";
}

export function initPeers() {
  $("add-peer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("peer-address").value.trim();
    const match = text.match(/^\[?([^\]]+?)\]?:(\d{1,5})$/);
    if (!match) { toast("Write the peer as host:port, e.g. 192.168.1.20:47600", "error"); return; }
    const answer = await command({ cmd: "add_peer", host: match[1], port: Number(match[2]) });
    if (answer?.type === "result") $("peer-address").value = "";
  });
}
