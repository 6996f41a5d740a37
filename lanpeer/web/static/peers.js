// The peers page: who is there, connected or not, their traffic; adding one by address.
import { $, el, setText, sync, toast } from "./dom.js";
import { fmtAgo, fmtRate } from "./format.js";
import { S, command, daemonNow, peerRates, peers } from "./state.js";

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
    ["seen", fmtAgo(peer.last_seen, daemonNow())],
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
