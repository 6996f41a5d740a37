// Small DOM helpers: building elements, keyed updates in place, toasts.

export function $(id) { return document.getElementById(id); }

export function el(tag, attrs = {}, ...children) {
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

export function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

export function toast(text, kind = "info") {
  const node = el("div", { class: "toast", "data-kind": kind, role: "status", text });
  $("toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 9000 : 4000);
}

// Keep ``container``'s children in step with ``items`` by key, creating and updating in place,
// so a button a person is about to click is never replaced under the pointer.
export function sync(container, items, key, create, update) {
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
