// What the page knows (the last snapshot and what came since), and the one way it acts:
// a control command, the same request peer-cli sends.
import { toast } from "./dom.js";

export const S = {
  snap: null,          // the last snapshot: status, games, ops (and history), peers, uploads
  rates: new Map(),    // game id -> per-peer rates of its last progress event
  samples: [],         // [time, down, up] of the host, one a second
  page: "library",
  filter: "all",
  query: "",
  checks: null,
  fresh: false,        // a snapshot arrived on the current live channel
  skew: 0,             // the daemon's clock minus this device's, in seconds
};

// The daemon's clock, as far as this device can tell (a phone's clock may be off by minutes).
export function daemonNow() { return Date.now() / 1000 + S.skew; }

export function games() { return S.snap?.games?.games ?? []; }
// ``ops --all``: running and queued operations, then finished ones (``finished_at`` set).
export function ops() { return (S.snap?.ops?.ops ?? []).filter((op) => op.finished_at == null); }
export function history() {
  const done = (S.snap?.ops?.ops ?? []).filter((op) => op.finished_at != null);
  return done.sort((a, b) => b.finished_at - a.finished_at);
}
export function uploads() { return S.snap?.uploads?.uploads ?? []; }
export function peers() { return S.snap?.peers?.peers ?? []; }
export function gameName(id) { return games().find((g) => g.id === id)?.name ?? id; }
export function peerName(id) {
  const peer = peers().find((p) => p.peer_id === id);
  return peer ? peer.name || id.slice(0, 8) : id.slice(0, 8);
}
export function opOf(id) { return ops().find((op) => op.game_id === id); }


// ------------------------------------------------------------------ commands

export async function command(request, button) {
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
