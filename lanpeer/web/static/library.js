// The library page: cards with cover, versions, peers, actions (asking first where the
// action deletes something), search and filters.
import { $, el, setText, sync } from "./dom.js";
import { fmtBytes, fmtRate, percent } from "./format.js";
import { S, command, games, opOf } from "./state.js";

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
  if (!game.downloaded) {
    if (game.peers.length) {
      list.push(["download", "Download", "primary", { cmd: "download", game_id: game.id }]);
      list.push(["download-only", "Download only", "",
        { cmd: "download", game_id: game.id, install: false }]);
    }
    return list;
  }
  if (game.update_available) {
    // The daemon's ``update`` fetches a newer version a peer offers, or installs a downloaded
    // one newer than local/: one button for both, as ``peer-cli update``.
    list.push(["update", "Update", "primary", { cmd: "update", game_id: game.id }]);
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

export function renderLibrary() {
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
