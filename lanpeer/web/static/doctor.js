// The doctor page: the daemon's checks with their hints, run on demand.
import { $, el } from "./dom.js";
import { S } from "./state.js";

export async function runDoctor() {
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
